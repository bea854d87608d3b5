package netops

import (
	"bytes"
	"cmp"
	"math/bits"
	"slices"
)

// Plan's order: routes by Route.Key, rules by priority then Rule.String,
// both compared as bytes, ties in the order Plan made them. Formatting
// every key to sort them was half of a plan of 256 uplinks, so the
// common shapes get numeric keys whose order is exactly the byte order
// of their text (see decKey), and only the others are formatted, once
// and only when compared with one of another shape.

// sortKey is one element's place in the order.
type sortKey struct {
	prio int
	// class says how k1..k3 encode the element's key; 0: they do not
	// (compare its text). Elements of the same class compare by k1..k3.
	class      uint8
	k1, k2, k3 uint64
	i          int
}

// Key classes.
const (
	byText      uint8 = iota
	routeV4           // table, IPv4 destination
	sourceRule4       // IPv4: from PREFIX lookup T proto P
	fwmarkRule4       // IPv4: from all fwmark 0xM/0xK lookup T proto P
	fwmarkRule6       // the same, IPv6 (the text starts with "-6 ")
)

// decKey returns a number whose order is the byte order of v's decimal
// digits followed by something lower than any digit (a space, a dot, a
// slash, the end): digit d counts d+1, an absent digit 0, over width
// places (at most 10). ok is false when v has more than width digits.
func decKey(v uint64, width int) (key uint64, ok bool) {
	k := 1
	for t := v; t >= 10; t /= 10 {
		k++
	}
	if k > width {
		return 0, false
	}
	// The last digit is in place k-1 (from the left), worth 11^(width-k).
	for e := width - k; e < width; e++ {
		key += (v%10 + 1) * pow11[e]
		v /= 10
	}
	return key, true
}

// hexKey is decKey for the lower-case hexadecimal digits of v, over 8
// places.
func hexKey(v uint32) uint64 {
	k := max(1, (bits.Len32(v)+3)/4)
	var key uint64
	for j := range k {
		nibble := uint64(v>>(4*(k-1-j))) & 0xf
		key += (nibble + 1) * pow17[hexWidth-1-j]
	}
	return key
}

var (
	pow11 = powers(11)
	pow17 = powers(17)
	// octetKeys are the decKeys of bytes over 3 places, bitsKeys those of
	// IPv4 prefix lengths over 2.
	octetKeys = func() (k [256]uint64) {
		for i := range k {
			k[i], _ = decKey(uint64(i), 3)
		}
		return k
	}()
	bitsKeys = func() (k [33]uint64) {
		for i := range k {
			k[i], _ = decKey(uint64(i), 2)
		}
		return k
	}()
)

func powers(b uint64) (p [11]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * b
	}
	return p
}

// Widths and radixes of the numbers of a key.
const (
	tableWidth = 10 // up to 9,999,999,999: every uint32
	protoWidth = 3
	protoRadix = 11 * 11 * 11 // 11^protoWidth
	octetRadix = 11 * 11 * 11
	bitsRadix  = 11 * 11
	hexWidth   = 8
)

// tableProtoKey encodes "T ... proto P"-ordered text: the table's digits,
// then the protocol's (the text between them is the same for both
// elements of a class).
func tableProtoKey(table, proto int) uint64 {
	if table < 0 || proto < 0 {
		return noKey
	}
	t, ok1 := decKey(uint64(table), tableWidth)
	p, ok2 := decKey(uint64(proto), protoWidth)
	if !ok1 || !ok2 {
		return noKey
	}
	return t*protoRadix + p
}

// noKey stands for a number decKey cannot encode.
const noKey = ^uint64(0)

// tableSortKey is decKey of a table, or noKey.
func tableSortKey(table int) uint64 {
	if table < 0 {
		return noKey
	}
	if t, ok := decKey(uint64(table), tableWidth); ok {
		return t
	}
	return noKey
}

// prefix4Key encodes an IPv4 prefix written a.b.c.d/n.
func prefix4Key(a [4]byte, bits int) uint64 {
	k := ((octetKeys[a[0]]*octetRadix+octetKeys[a[1]])*octetRadix+octetKeys[a[2]])*octetRadix + octetKeys[a[3]]
	return k*bitsRadix + bitsKeys[bits]
}

// routeSortKey is the key of routes[i].
func routeSortKey(r *Route, i int) sortKey { return routeKeyWith(r, tableSortKey(r.Table), i) }

// routeKeyWith is routeSortKey with the route's tableSortKey.
func routeKeyWith(r *Route, table uint64, i int) sortKey {
	k := sortKey{i: i}
	if table == noKey || !r.Dst.IsValid() || !r.Dst.Addr().Is4() {
		return k
	}
	k.class, k.k1, k.k2 = routeV4, table, prefix4Key(r.Dst.Addr().As4(), r.Dst.Bits())
	return k
}

// ruleSortKey is the key of rules[i].
func ruleSortKey(r *Rule, i int) sortKey {
	return ruleKeyWith(r, r.Family, tableProtoKey(r.Table, r.Protocol), i)
}

// ruleKeyWith is ruleSortKey of the rule with family fam (whatever
// r.Family says) and the rule's tableProtoKey.
func ruleKeyWith(r *Rule, fam Family, tableProto uint64, i int) sortKey {
	k := sortKey{prio: r.Priority, i: i}
	if tableProto == noKey || r.Dst.IsValid() || r.IifName != "" || r.IPProto != 0 || r.Sport != nil || r.Dport != nil ||
		r.UID != nil || r.SuppressPrefixlen != -1 {
		return k
	}
	v4 := fam.norm() == V4
	switch {
	case r.Mask == 0 && v4 && r.Src.IsValid() && r.Src.Addr().Is4():
		k.class, k.k1, k.k2 = sourceRule4, prefix4Key(r.Src.Addr().As4(), r.Src.Bits()), tableProto
	case r.Mask != 0 && !r.Src.IsValid():
		k.class, k.k1, k.k2, k.k3 = fwmarkRule4, hexKey(r.Mark), hexKey(r.Mask), tableProto
		if !v4 {
			k.class = fwmarkRule6
		}
	}
	return k
}

// sortRoutes puts routes in Plan's order. keys are those of the first
// routes (routeSortKey's, made as they were); those of the others are
// made here. It returns keys, grown, for reuse.
func sortRoutes(routes []Route, keys []sortKey) []sortKey {
	for i := len(keys); i < len(routes); i++ {
		keys = append(keys, routeSortKey(&routes[i], i))
	}
	sortByKeys(routes, keys, Route.appendKey)
	return keys
}

// sortRules puts rules in Plan's order; keys as in sortRoutes.
func sortRules(rules []Rule, keys []sortKey) []sortKey {
	for i := len(keys); i < len(rules); i++ {
		keys = append(keys, ruleSortKey(&rules[i], i))
	}
	sortByKeys(rules, keys, Rule.appendTo)
	return keys
}

// sortByKeys sorts s by keys (keys[i] is s[i]'s): by prio, then by the
// numeric keys of elements of one class, else by the text appendKey
// gives (formatted once, when first needed), then by position; then it
// moves the elements in place.
func sortByKeys[T any](s []T, keys []sortKey, appendKey func(T, []byte) []byte) {
	var buf []byte
	type span struct{ i, start, end int32 }
	// The texts formatted so far: a few, looked up one by one, until
	// there are many (a plan of IPv6 sources), then by position.
	var few []span
	var byPos []span // start -1 until formatted
	textOf := func(i int) []byte {
		if byPos == nil {
			for _, t := range few {
				if int(t.i) == i {
					return buf[t.start:t.end]
				}
			}
			if len(few) == 8 {
				byPos = make([]span, len(s))
				for j := range byPos {
					byPos[j].start = -1
				}
				for _, t := range few {
					byPos[t.i] = t
				}
			}
		}
		if byPos != nil && byPos[i].start >= 0 {
			return buf[byPos[i].start:byPos[i].end]
		}
		start := len(buf)
		buf = appendKey(s[i], buf)
		t := span{int32(i), int32(start), int32(len(buf))}
		if byPos != nil {
			byPos[i] = t
		} else {
			few = append(few, t)
		}
		return buf[t.start:t.end]
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		switch {
		case a.prio != b.prio:
			return cmp.Compare(a.prio, b.prio)
		case a.class != b.class || a.class == byText:
			if c := bytes.Compare(textOf(a.i), textOf(b.i)); c != 0 {
				return c
			}
		case a.k1 != b.k1:
			return cmp.Compare(a.k1, b.k1)
		case a.k2 != b.k2:
			return cmp.Compare(a.k2, b.k2)
		case a.k3 != b.k3:
			return cmp.Compare(a.k3, b.k3)
		}
		return cmp.Compare(a.i, b.i)
	})
	// Position i takes s[keys[i].i]: follow each cycle of that
	// permutation in place (a sorted copy of the elements was a third of
	// a plan's garbage).
	for i := range keys {
		if keys[i].i == i {
			continue
		}
		first := s[i]
		j := i
		for {
			src := keys[j].i
			keys[j].i = j
			if src == i {
				s[j] = first
				break
			}
			s[j] = s[src]
			j = src
		}
	}
}
