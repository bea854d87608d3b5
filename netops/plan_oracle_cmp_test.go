package netops

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// randomPlanInput makes settings and both families' uplinks as a
// configuration could give them (uplink names unique, slots unique), with
// everything Plan looks at varied: balancers, pinning, LAN interfaces,
// policies with tiers, rules with selectors of both families, degraded,
// down and carrierless uplinks, IPv6 delegated prefixes, tables and
// protocols of every width.
func randomPlanInput(rng *rand.Rand) (Settings, []Uplink, []Uplink) {
	pickInt := func(vals ...int) int { return vals[rng.IntN(len(vals))] }
	s := Settings{
		BalanceTable:  pickInt(250, 7, 1000, 99999, 4294967295),
		RulePriority:  pickInt(10000, 5, 32000),
		RouteProtocol: pickInt(201, 2, 99, 255, 1000, 0),
		Balancer:      Balancer(rng.IntN(3)),
		NexthopIDBase: 2010000000,
		IdleTimer:     time.Duration(rng.IntN(3)) * time.Minute,
		KeepDegraded:  rng.IntN(2) == 0,
	}
	if rng.IntN(2) == 0 {
		s.MarkMask = []uint32{0xff800000, 0xff, 0x1, 0xffffffff}[rng.IntN(4)]
	}
	for range rng.IntN(3) {
		s.LANInterfaces = append(s.LANInterfaces, fmt.Sprintf("lan%d", rng.IntN(12)))
	}
	n := rng.IntN(40)
	if rng.IntN(10) == 0 {
		n = 200 + rng.IntN(57)
	}
	slots := rng.Perm(MaxUplinks)
	names := make([]string, n)
	var v4, v6 []Uplink
	for i := range n {
		names[i] = fmt.Sprintf("u%d", rng.IntN(1000)*1000+i)
		u := Uplink{
			Name: names[i], Weight: 1 + rng.IntN(5), Slot: slots[i],
			Table: pickInt(100+i, 1000+i, 9+i, 100000+7*i, 4294967295-i),
		}
		if rng.IntN(20) == 0 && i > 0 {
			u.Table = v4[i-1].Table // a shared table: ties broken by position
		}
		if rng.IntN(8) != 0 {
			u.Index = 2 + rng.IntN(300)
		}
		u.Carrier = rng.IntN(6) != 0
		switch rng.IntN(5) {
		case 0:
			u.Degraded, u.Usable = true, true
		case 1:
		default:
			u.InBalance, u.Usable = true, true
		}
		if s.MarkMask != 0 && rng.IntN(8) != 0 {
			u.Mark = uint32(rng.IntN(1<<20)) << rng.IntN(12)
		}
		a4 := u
		if rng.IntN(10) != 0 {
			bits := pickInt(30, 24, 32, 29, 16, 8)
			a := netip.AddrFrom4([4]byte{198, byte(18 + rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))})
			a4.Addr = netip.PrefixFrom(a, bits)
			if rng.IntN(6) != 0 {
				gw := a.As4()
				gw[3] ^= byte(1 + rng.IntN(3))
				a4.Gateway = netip.AddrFrom4(gw)
			}
		}
		v4 = append(v4, a4)
		if rng.IntN(3) == 0 {
			a6 := u
			p := [16]byte{0x20, 0x01, 0x0d, 0xb8, byte(rng.IntN(256)), byte(rng.IntN(3))}
			switch rng.IntN(4) {
			case 0:
				a6.LANPrefix = netip.PrefixFrom(netip.AddrFrom16(p), 64)
				q := p
				q[15] = 1
				a6.Addr = netip.PrefixFrom(netip.AddrFrom16(q), 128)
			case 1:
				a6.LANPrefix = netip.PrefixFrom(netip.AddrFrom16(p), 56)
			case 2:
				q := p
				q[15] = byte(rng.IntN(256))
				a6.Addr = netip.PrefixFrom(netip.AddrFrom16(q), 64)
			}
			if rng.IntN(3) != 0 {
				a6.Gateway = netip.MustParseAddr("fe80::1")
			} else if a6.Addr.IsValid() {
				g := a6.Addr.Masked().Addr().As16()
				g[15] = 0xfe
				a6.Gateway = netip.AddrFrom16(g)
			}
			v6 = append(v6, a6)
		}
	}
	if rng.IntN(3) == 0 {
		return s, v4, v6
	}
	// Policies and rules.
	npol := 1 + rng.IntN(4)
	var pols []string
	for p := range npol {
		name := fmt.Sprintf("p%d", p)
		if p == 0 && rng.IntN(2) == 0 {
			name = DefaultPolicy
		}
		pol := Policy{Name: name, Table: 300 + p*pickInt(1, 10, 1000), LastResort: LastResort(rng.IntN(4)), KeepDegraded: rng.IntN(2) == 0}
		for range 1 + rng.IntN(3) {
			var tier []string
			for range rng.IntN(4) {
				if n > 0 {
					tier = append(tier, names[rng.IntN(n)])
				}
			}
			if rng.IntN(5) == 0 {
				tier = append(tier, "nosuch")
			}
			pol.Tiers = append(pol.Tiers, tier)
		}
		s.Policies = append(s.Policies, pol)
		pols = append(pols, name)
	}
	prefix := func() netip.Prefix {
		if rng.IntN(2) == 0 {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(256))}), pickInt(24, 32, 0, 28))
		}
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 9, byte(rng.IntN(256))}), pickInt(48, 64, 128, 0))
	}
	for range rng.IntN(6) {
		r := PolicyRule{Policy: pols[rng.IntN(len(pols))]}
		for range rng.IntN(3) {
			r.From = append(r.From, prefix())
		}
		for range rng.IntN(3) {
			r.To = append(r.To, prefix())
		}
		if rng.IntN(3) == 0 {
			r.IifName = "lan0"
		}
		if rng.IntN(3) == 0 {
			r.IPProto = pickInt(6, 17)
			r.Dport = &Range{uint32(rng.IntN(1000)), uint32(1000 + rng.IntN(1000))}
		}
		if rng.IntN(4) == 0 {
			r.Sport = &Range{443, 443}
		}
		if rng.IntN(4) == 0 {
			r.UID = &Range{1000, 1000 + uint32(rng.IntN(3))}
		}
		if rng.IntN(4) == 0 {
			r.Mark, r.Mask = uint32(rng.IntN(256)), 0xff
		}
		s.Rules = append(s.Rules, r)
	}
	return s, v4, v6
}

// Plan gives exactly what the implementation it replaced gave (kept in
// plan_oracle_test.go), order included, over many random inputs; Choose
// likewise.
func TestPlanOracle(t *testing.T) {
	cmpAddr := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	cmpPrefix := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	// 600 random inputs take some seconds with -race; a tenth of them
	// have 200 uplinks or more.
	runs := 600
	if testing.Short() {
		runs = 150
	}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 13))
		s, v4, v6 := randomPlanInput(rng)
		want := oldPlanAll(s, v4, v6)
		got := PlanAll(s, v4, v6)
		if d := cmp.Diff(want, got, cmpAddr, cmpPrefix); d != "" {
			t.Fatalf("seed %d: PlanAll differs from the old implementation (-old +new):\n%s", seed, d)
		}
		for _, f := range []Family{V4, V6} {
			s.Family = f
			in := v4
			if f == V6 {
				in = v6
			}
			if d := cmp.Diff(oldChoose(s, in), Choose(s, in)); d != "" {
				t.Fatalf("seed %d: Choose (%v) differs from the old implementation (-old +new):\n%s", seed, f, d)
			}
		}
	}
}

// decKey and hexKey order numbers as their digits order as text, followed by a
// space: checked against the text of random numbers, in both bases.
func TestKeysOrderAsText(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, base := range []int{10, 16} {
		width := tableWidth
		if base == 16 {
			width = hexWidth
		}
		var nums []uint64
		for range 2000 {
			nums = append(nums, uint64(rng.Uint32())>>rng.IntN(32))
		}
		text := func(v uint64) string { return strconv.FormatUint(v, base) + " " }
		byText := slices.Clone(nums)
		slices.SortFunc(byText, func(a, b uint64) int { return strings.Compare(text(a), text(b)) })
		byKey := slices.Clone(nums)
		slices.SortStableFunc(byKey, func(a, b uint64) int {
			ka, kb := hexKey(uint32(a)), hexKey(uint32(b))
			if base == 10 {
				ka, _ = decKey(a, width)
				kb, _ = decKey(b, width)
			}
			return cmpUint(ka, kb)
		})
		for i := range byText {
			if text(byText[i]) != text(byKey[i]) {
				t.Fatalf("base %d: at %d by text %s, by key %s", base, i, text(byText[i]), text(byKey[i]))
			}
		}
	}
	if _, ok := decKey(12345678901, tableWidth); ok {
		t.Error("decKey took 11 digits in 10 places")
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
