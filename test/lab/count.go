package lab

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Tables the lab adds in the ISPs' namespaces.
const (
	countTable = "lab_count"
	countChain = "count"
	bcp38Table = "lab_bcp38"
)

// Count is a packet counter that every ISP keeps on its access link (the
// router's side of the world), and the Internet namespace on all its
// links: packets whose source is in Src and, unless DPort is 0, that are
// UDP to port DPort. Counting at the ISPs shows which uplink a packet
// really left by, whatever the router's tables say; it also counts packets
// that ingress filtering (EnableIngressFilter6) or a blackhole drops next.
// The Internet's count is what arrived.
type Count struct {
	Name  string
	Src   netip.Prefix // IPv4 or IPv6
	DPort uint16
}

// AddCounts adds counters to every ISP and the Internet (they start at
// zero).
func (l *Lab) AddCounts(counts ...Count) error {
	for _, ns := range l.countNamespaces() {
		err := l.nft(ns, func(c *nftables.Conn) error {
			t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: countTable})
			ch := c.AddChain(&nftables.Chain{
				Name: countChain, Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle,
			})
			for _, n := range counts {
				exprs, err := countExprs(n, ns != Inet)
				if err != nil {
					return err
				}
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: []byte(n.Name)})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("lab: add counters at %s: %w", ns, err)
		}
	}
	return nil
}

// countNamespaces are the namespaces that count: the ISPs and Inet.
func (l *Lab) countNamespaces() []string {
	var ns []string
	for _, i := range l.isps {
		ns = append(ns, i.name)
	}
	return append(ns, Inet)
}

// countExprs: [iifname down0] <family> saddr & mask == src [udp dport P] counter.
func countExprs(n Count, access bool) ([]expr.Any, error) {
	if n.Name == "" || !n.Src.IsValid() {
		return nil, fmt.Errorf("counter %+v: want a name and a source prefix", n)
	}
	src := n.Src.Masked()
	proto, off := byte(unix.NFPROTO_IPV4), uint32(12)
	if src.Addr().Is6() {
		proto, off = unix.NFPROTO_IPV6, 8
	}
	addr := src.Addr().AsSlice()
	m := make([]byte, len(addr))
	for b := 0; b < src.Bits(); b++ {
		m[b/8] |= 0x80 >> (b % 8)
	}
	var exprs []expr.Any
	if access {
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(ispDownLink)})
	}
	exprs = append(exprs,
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(addr))},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: m, Xor: make([]byte, len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
	)
	if n.DPort != 0 {
		port := binary.BigEndian.AppendUint16(nil, n.DPort)
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
		)
	}
	return append(exprs, &expr.Counter{}), nil
}

// Counts returns every counter's packets per ISP and at the Internet:
// counts[name][ns], ns ISP1, ISP2, (ISP3) or Inet.
func (l *Lab) Counts() (map[string]map[string]uint64, error) {
	out := make(map[string]map[string]uint64)
	for _, ns := range l.countNamespaces() {
		err := l.nft(ns, func(c *nftables.Conn) error {
			rules, err := c.GetRules(&nftables.Table{Family: nftables.TableFamilyINet, Name: countTable}, &nftables.Chain{Name: countChain})
			if err != nil {
				return err
			}
			for _, r := range rules {
				for _, e := range r.Exprs {
					if ctr, ok := e.(*expr.Counter); ok {
						name := string(r.UserData)
						if out[name] == nil {
							out[name] = make(map[string]uint64)
						}
						out[name][ns] += ctr.Packets
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("lab: read counters at %s: %w", ns, err)
		}
	}
	return out, nil
}

// EnableIngressFilter6 makes every ISP drop IPv6 packets from the router
// whose source it does not route back to the router (BCP 38, strict
// reverse-path filtering: neither the access link's prefix nor the prefix
// it delegated), as real ISPs do: a packet sourced from isp1's prefix that
// leaves through isp2 goes nowhere. Counters (AddCounts) still count it.
func (l *Lab) EnableIngressFilter6() error {
	for _, i := range l.isps {
		err := l.nft(i.name, func(c *nftables.Conn) error {
			t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv6, Name: bcp38Table})
			ch := c.AddChain(&nftables.Chain{
				Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
				Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter,
			})
			// iifname down0 fib saddr . iif oif missing drop
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(ispDownLink)},
				&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
			return nil
		})
		if err != nil {
			return fmt.Errorf("lab: ingress filter at %s: %w", i.name, err)
		}
	}
	return nil
}

// nft runs fn with an nftables connection in the lab namespace ns and
// flushes what it queued.
func (l *Lab) nft(ns string, fn func(c *nftables.Conn) error) error {
	full, err := l.resolve(ns)
	if err != nil {
		return err
	}
	h, err := netns.GetFromName(full)
	if err != nil {
		return err
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := fn(c); err != nil {
		return err
	}
	return c.Flush()
}
