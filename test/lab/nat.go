package lab

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// natTable is the nftables table EnableNAT adds to the router.
const natTable = "lab_nat"

// NAT is how EnableNAT translates LAN addresses.
type NAT int

const (
	// Masquerade translates to the address of the outgoing interface.
	// The kernel remembers the interface: a packet of the connection that
	// leaves through another one kills the conntrack entry (and is
	// dropped), so the next packet is translated anew.
	Masquerade NAT = iota
	// SNAT translates to the fixed address of each uplink ("snat to",
	// common with static addresses). A connection keeps its translated
	// address whichever interface it later leaves through.
	SNAT
)

func (n NAT) String() string {
	if n == SNAT {
		return "snat"
	}
	return "masquerade"
}

// EnableNAT makes the lab behave like a home router on real ISPs: the
// router translates the source address of everything it sends out of an
// uplink to that uplink's address (so LAN flows leave with the address of
// the uplink they take), and every ISP drops packets whose source address
// is not reachable through its link to the router (ingress filtering,
// BCP 38): a flow that moves to another uplink but keeps its old
// translated address goes nowhere. The rules are set with nftables through
// netlink, in the router's namespace, for the uplink interfaces as they are
// named and addressed now.
func (l *Lab) EnableNAT(ctx context.Context, mode NAT) error {
	ns, err := netns.GetFromName(l.NS(Router))
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("lab: nftables: %w", err)
	}
	if err := l.addNAT(c, mode); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("lab: add %s rules: %w", mode, err)
	}
	for _, i := range l.isps {
		// Strict reverse-path filtering on the ISP's access link.
		if err := l.sysctl(ctx, i.name, "net.ipv4.conf."+ispDownLink+".rp_filter=1"); err != nil {
			return err
		}
	}
	return nil
}

// ReloadFirewall does in the router what a firewall reload with `nft -f`
// of a ruleset that starts with `flush ruleset` does: in one transaction,
// every table goes (uplinkd's included) and the lab's NAT of mode comes
// back.
func (l *Lab) ReloadFirewall(mode NAT) error {
	ns, err := netns.GetFromName(l.NS(Router))
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("lab: nftables: %w", err)
	}
	c.FlushRuleset()
	if err := l.addNAT(c, mode); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("lab: flush ruleset and add %s rules: %w", mode, err)
	}
	return nil
}

// addNAT queues the lab's NAT table and rules on c.
func (l *Lab) addNAT(c *nftables.Conn, mode NAT) error {
	t, ch := addPostrouting(c, nftables.TableFamilyIPv4, natTable)
	for _, i := range l.isps {
		link, err := l.RouterLink(i.name)
		if err != nil {
			return err
		}
		addr, err := l.RouterAddr(i.name)
		if err != nil {
			return err
		}
		// oifname LINK masquerade, or oifname LINK snat to ADDR
		exprs := oifname(link)
		if mode == Masquerade {
			exprs = append(exprs, &expr.Masq{})
		} else {
			a := addr.Addr().As4()
			exprs = append(exprs,
				&expr.Immediate{Register: 1, Data: a[:]},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
			)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs})
	}
	return nil
}

// addPostrouting queues a table of family named name on c, with a NAT
// chain "postrouting" at source NAT priority.
func addPostrouting(c *nftables.Conn, family nftables.TableFamily, name string) (*nftables.Table, *nftables.Chain) {
	t := c.AddTable(&nftables.Table{Family: family, Name: name})
	ch := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	return t, ch
}

// oifname is the expressions of the match `oifname LINK`.
func oifname(link string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(link)},
	}
}

// ifname is an interface name as nftables compares it: IFNAMSIZ bytes,
// zero padded.
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// natTable6 is the nftables table EnableNAT66 adds to the router.
const natTable6 = "lab_nat6"

// EnableNAT66 makes the router masquerade LAN IPv6 traffic to the address
// of the uplink it leaves by, the "balanced like IPv4" way of running IPv6
// over several ISPs (NPTv6 or masquerade, no lan_prefix6). The source
// address the Internet sees then names the uplink (see Flows). Uplinks
// without a global address (Options.PrefixOnlyISP2) translate to whatever
// address the kernel picks for them.
func (l *Lab) EnableNAT66() error {
	return l.nft(Router, func(c *nftables.Conn) error {
		t, ch := addPostrouting(c, nftables.TableFamilyIPv6, natTable6)
		for _, i := range l.isps {
			link, err := l.RouterLink(i.name)
			if err != nil {
				return err
			}
			// oifname LINK masquerade
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(oifname(link), &expr.Masq{})})
		}
		return nil
	})
}
