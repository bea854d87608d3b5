package pin

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the name of uplinkd's nftables table (family inet).
const TableName = "uplinkd"

// schema names the layout of the table built here. It is part of every
// rule's comment, so a table written by a version that built different
// rules does not compare equal and is replaced.
const schema = "uplinkd/1"

// Names of the table's maps and base chains, and prefixes of the
// per-uplink chains.
const (
	mapOIF        = "oif"     // ifname -> jump pin-<uplink>: outbound
	mapIIF        = "iif"     // ifname -> jump pin-<uplink>: inbound
	mapRestore    = "restore" // ct mark & mask -> jump restore-<uplink>
	chainPre      = "prerouting"
	chainOut      = "output"
	chainPost     = "postrouting"
	pinPrefix     = "pin-"
	restorePrefix = "restore-"
)

// Uplink is one uplink as the table knows it.
type Uplink struct {
	Name   string // uplink name
	Ifname string // current interface name; "" while the interface does not exist
	Mark   uint32 // nonzero, all bits inside the table's mask
}

// ctDirOriginal is IP_CT_DIR_ORIGINAL of enum ip_conntrack_dir.
const ctDirOriginal = 0

// ruleset is the desired content of the table, built without the kernel.
type ruleset struct {
	chains []chainSpec // per-uplink chains first: the maps jump to them
	maps   []mapSpec
	base   []chainSpec // base chains last: their rules look up the maps
}

type chainSpec struct {
	name  string
	hook  *nftables.ChainHook // nil for a regular chain
	prio  nftables.ChainPriority
	ctype nftables.ChainType
	rules []ruleSpec
}

type ruleSpec struct {
	comment string // says what the rule does, with every constant in it
	exprs   []expr.Any
}

type mapSpec struct {
	name  string
	key   nftables.SetDatatype
	elems []elemSpec
}

type elemSpec struct {
	key   []byte
	chain string // jump target
}

// validate checks ups against mask: names, marks and interface names
// unique, marks inside the mask.
func validate(mask uint32, ups []Uplink) error {
	if mask == 0 {
		return errors.New("mark mask is 0")
	}
	names := map[string]bool{}
	marks := map[uint32]string{}
	ifs := map[string]string{}
	for _, u := range ups {
		switch {
		case u.Name == "":
			return errors.New("uplink with an empty name")
		case names[u.Name]:
			return fmt.Errorf("uplink %q listed twice", u.Name)
		case !validMark(u.Mark, mask):
			return fmt.Errorf("uplink %s: mark %#x is 0 or has bits outside the mask %#x", u.Name, u.Mark, mask)
		case marks[u.Mark] != "":
			return fmt.Errorf("uplinks %s and %s share mark %#x", marks[u.Mark], u.Name, u.Mark)
		case len(u.Ifname) >= unix.IFNAMSIZ:
			return fmt.Errorf("uplink %s: interface name %q is too long", u.Name, u.Ifname)
		case u.Ifname != "" && ifs[u.Ifname] != "":
			return fmt.Errorf("uplinks %s and %s share interface %s: pinning cannot tell their connections apart", ifs[u.Ifname], u.Name, u.Ifname)
		}
		names[u.Name] = true
		marks[u.Mark] = u.Name
		if u.Ifname != "" {
			ifs[u.Ifname] = u.Name
		}
	}
	return nil
}

// build computes the table for ups (validated) under mask:
//
//	map oif, iif { type ifname : verdict }   # interface -> jump pin-<u>
//	map restore { type mark : verdict }      # M(u) -> jump restore-<u>
//	chain pin-<u>     { ct mark set ct mark & ~mask | M(u) }
//	chain restore-<u> { meta mark set meta mark & ~mask | M(u) }
//	chain prerouting  { type filter hook prerouting priority mangle
//	    meta mark 0 ct direction original ct mark & mask == 0 iifname vmap @iif
//	    meta mark 0 ct mark & mask vmap @restore }
//	chain output      { type route hook output priority mangle
//	    meta mark 0 ct mark & mask vmap @restore }
//	chain postrouting { type filter hook postrouting priority mangle
//	    meta mark 0 ct mark & mask == 0 oifname vmap @oif }
//
// Marking does not depend on ct state new: any connection whose bits are
// still zero is pinned by its next packet leaving through an uplink, so
// connections older than uplinkd get pinned too. Inbound marking only
// takes packets of the original direction: a reply arriving with zero bits
// belongs to a connection that left unpinned (older than uplinkd, and then
// pinned by its next outbound packet, or one that some other software
// marks, below). Packets that carry a mark (meta mark != 0) are neither
// pinned nor restored: whoever marked them routes them (wg-quick matches
// its fwmark 0xca6c exactly, and copies its whole ct mark back).
func build(mask uint32, ups []Uplink) ruleset {
	ups = slices.SortedFunc(slices.Values(ups), func(a, b Uplink) int { return cmp.Compare(a.Name, b.Name) })
	var rs ruleset
	oif := mapSpec{name: mapOIF, key: nftables.TypeIFName}
	iif := mapSpec{name: mapIIF, key: nftables.TypeIFName}
	restore := mapSpec{name: mapRestore, key: nftables.TypeMark}
	for _, u := range ups {
		pin, rst := pinPrefix+u.Name, restorePrefix+u.Name
		rs.chains = append(rs.chains,
			chainSpec{name: pin, rules: []ruleSpec{{
				comment: fmt.Sprintf("%s pin %s: ct mark set ct mark & %#08x | %#08x", schema, u.Name, ^mask, u.Mark),
				exprs:   setMark(ctMark(1), ctMarkSet(1), mask, u.Mark),
			}}},
			chainSpec{name: rst, rules: []ruleSpec{{
				comment: fmt.Sprintf("%s restore %s: meta mark set meta mark & %#08x | %#08x", schema, u.Name, ^mask, u.Mark),
				exprs:   setMark(metaMark(1), metaMarkSet(1), mask, u.Mark),
			}}},
		)
		if u.Ifname != "" {
			oif.elems = append(oif.elems, elemSpec{key: ifname(u.Ifname), chain: pin})
			iif.elems = append(iif.elems, elemSpec{key: ifname(u.Ifname), chain: pin})
		}
		restore.elems = append(restore.elems, elemSpec{key: binaryutil.NativeEndian.PutUint32(u.Mark), chain: rst})
	}
	slices.SortFunc(oif.elems, func(a, b elemSpec) int { return slices.Compare(a.key, b.key) })
	slices.SortFunc(iif.elems, func(a, b elemSpec) int { return slices.Compare(a.key, b.key) })
	slices.SortFunc(restore.elems, func(a, b elemSpec) int { return slices.Compare(a.key, b.key) })
	rs.maps = []mapSpec{oif, iif, restore}

	unmarked := []expr.Any{metaMark(1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(0)}}
	unpinned := append(ctMaskedMark(mask), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(0)})
	original := []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{ctDirOriginal}},
	}
	restoreRule := ruleSpec{
		comment: fmt.Sprintf("%s restore: meta mark 0 ct mark & %#08x vmap @%s", schema, mask, mapRestore),
		exprs:   concat(unmarked, ctMaskedMark(mask), vmap(mapRestore)),
	}
	rs.base = []chainSpec{
		{
			name: chainPre, hook: nftables.ChainHookPrerouting, prio: *nftables.ChainPriorityMangle, ctype: nftables.ChainTypeFilter,
			rules: []ruleSpec{
				{
					comment: fmt.Sprintf("%s pin inbound: meta mark 0 ct direction original ct mark & %#08x == 0 iifname vmap @%s", schema, mask, mapIIF),
					exprs:   concat(unmarked, original, unpinned, []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}}, vmap(mapIIF)),
				},
				restoreRule,
			},
		},
		{
			name: chainOut, hook: nftables.ChainHookOutput, prio: *nftables.ChainPriorityMangle, ctype: nftables.ChainTypeRoute,
			rules: []ruleSpec{restoreRule},
		},
		{
			name: chainPost, hook: nftables.ChainHookPostrouting, prio: *nftables.ChainPriorityMangle, ctype: nftables.ChainTypeFilter,
			rules: []ruleSpec{{
				comment: fmt.Sprintf("%s pin outbound: meta mark 0 ct mark & %#08x == 0 oifname vmap @%s", schema, mask, mapOIF),
				exprs:   concat(unmarked, unpinned, []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}}, vmap(mapOIF)),
			}},
		},
	}
	return rs
}

// setMark loads a mark, keeps its bits outside mask, sets mark's and
// stores it back: (x & ~mask) ^ mark, which is x & ~mask | mark because
// mark lies inside mask.
func setMark(load, store expr.Any, mask, mark uint32) []expr.Any {
	return []expr.Any{
		load,
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(^mask), Xor: u32(mark)},
		store,
	}
}

func ctMaskedMark(mask uint32) []expr.Any {
	return []expr.Any{
		ctMark(1),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(mask), Xor: u32(0)},
	}
}

func ctMark(reg uint32) expr.Any { return &expr.Ct{Key: expr.CtKeyMARK, Register: reg} }
func ctMarkSet(reg uint32) expr.Any {
	return &expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true}
}
func metaMark(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyMARK, Register: reg} }
func metaMarkSet(reg uint32) expr.Any {
	return &expr.Meta{Key: expr.MetaKeyMARK, Register: reg, SourceRegister: true}
}

// vmap looks register 1 up in the named verdict map (the set ID is filled
// in when the batch is written).
func vmap(name string) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: name, IsDestRegSet: true, DestRegister: 0}}
}

func concat(parts ...[]expr.Any) []expr.Any { return slices.Concat(parts...) }

// u32 is a 32-bit value as nftables registers hold marks: host byte order.
func u32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// zero padded.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// view is what the comparison between the desired and the installed
// table looks at: chains with their hook, type, priority and rule
// comments (each comment spells out its rule's constants), and the maps'
// elements. An installed table that someone edited (a rule deleted or
// added, an element changed) has a different view.
type view struct {
	Chains map[string]chainView
	Maps   map[string]map[string]string // map -> key (hex) -> jump target
}

type chainView struct {
	Hook  string // "" for a regular chain
	Rules []string
}

func (rs ruleset) view() view {
	v := view{Chains: map[string]chainView{}, Maps: map[string]map[string]string{}}
	for _, c := range slices.Concat(rs.chains, rs.base) {
		cv := chainView{Hook: hookString(c.hook, c.prio, c.ctype)}
		for _, r := range c.rules {
			cv.Rules = append(cv.Rules, r.comment)
		}
		v.Chains[c.name] = cv
	}
	for _, m := range rs.maps {
		elems := map[string]string{}
		for _, e := range m.elems {
			elems[fmt.Sprintf("%x", e.key)] = e.chain
		}
		v.Maps[m.name] = elems
	}
	return v
}

// chainNames lists the view's chains, sorted.
func (v view) chainNames() []string {
	return slices.Sorted(maps.Keys(v.Chains))
}

func hookString(h *nftables.ChainHook, prio nftables.ChainPriority, t nftables.ChainType) string {
	if h == nil {
		return ""
	}
	return fmt.Sprintf("%s hook %d priority %d", t, *h, prio)
}

// uplinks reads the uplinks back from a view: the restore map gives names
// and marks, the oif map interface names.
func (v view) uplinks() []Uplink {
	var out []Uplink
	for key, chain := range v.Maps[mapRestore] {
		name, ok := strings.CutPrefix(chain, restorePrefix)
		var raw []byte
		if _, err := fmt.Sscanf(key, "%x", &raw); !ok || err != nil || len(raw) != 4 {
			continue
		}
		out = append(out, Uplink{Name: name, Mark: binaryutil.NativeEndian.Uint32(raw)})
	}
	for key, chain := range v.Maps[mapOIF] {
		var raw []byte
		if _, err := fmt.Sscanf(key, "%x", &raw); err != nil {
			continue
		}
		for i := range out {
			if pinPrefix+out[i].Name == chain {
				out[i].Ifname = strings.TrimRight(string(raw), "\x00")
			}
		}
	}
	slices.SortFunc(out, func(a, b Uplink) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
