package kernelview

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
)

// Rule is one policy rule as `ip -j rule` shows it.
type Rule struct {
	Priority     int    `json:"priority"`
	Src          string `json:"src"`
	SrcLen       int    `json:"srclen"`
	Iif          string `json:"iif"`
	Fwmark       string `json:"fwmark"`
	Fwmask       string `json:"fwmask"`
	Table        string `json:"table"`
	SuppressPlen *int   `json:"suppress_prefixlen"`
	Protocol     string `json:"protocol"`
}

// String renders the rule like `ip rule`.
func (r Rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d: from %s", r.Priority, r.Src)
	if r.SrcLen != 0 && r.SrcLen != 32 {
		fmt.Fprintf(&b, "/%d", r.SrcLen)
	}
	if r.Iif != "" {
		fmt.Fprintf(&b, " iif %s", r.Iif)
	}
	if r.Fwmark != "" {
		fmt.Fprintf(&b, " fwmark %s", r.Fwmark)
		if r.Fwmask != "" {
			fmt.Fprintf(&b, "/%s", r.Fwmask)
		}
	}
	fmt.Fprintf(&b, " lookup %s", r.Table)
	if r.SuppressPlen != nil {
		fmt.Fprintf(&b, " suppress_prefixlength %d", *r.SuppressPlen)
	}
	if r.Protocol != "" {
		fmt.Fprintf(&b, " proto %s", r.Protocol)
	}
	return b.String()
}

// Route is one route as `ip -j -d route show table all` shows it.
type Route struct {
	Type     string `json:"type"`
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Dev      string `json:"dev"`
	Table    string `json:"table"`
	Protocol string `json:"protocol"`
	Scope    string `json:"scope"`
	PrefSrc  string `json:"prefsrc"`
	NHID     uint32 `json:"nhid"`
	Nexthops []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
		Weight  int    `json:"weight"`
	} `json:"nexthops"`
}

// String renders the route like `ip route`, with its table.
func (r Route) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s", r.Table, r.Dst)
	if r.NHID != 0 {
		fmt.Fprintf(&b, " nhid %d", r.NHID)
	}
	if r.Gateway != "" {
		fmt.Fprintf(&b, " via %s", r.Gateway)
	}
	if r.Dev != "" {
		fmt.Fprintf(&b, " dev %s", r.Dev)
	}
	if r.NHID == 0 {
		for _, h := range r.Nexthops {
			fmt.Fprintf(&b, " nexthop via %s dev %s weight %d", h.Gateway, h.Dev, h.Weight)
		}
	}
	if r.Scope != "" && r.Scope != "global" {
		fmt.Fprintf(&b, " scope %s", r.Scope)
	}
	if r.PrefSrc != "" {
		fmt.Fprintf(&b, " src %s", r.PrefSrc)
	}
	fmt.Fprintf(&b, " proto %s", r.Protocol)
	return b.String()
}

// Member is one member of a nexthop group.
type Member struct {
	ID     uint32 `json:"id"`
	Weight int    `json:"weight"` // 0 in the JSON means 1
}

// Nexthop is one nexthop object as `ip -j nexthop show` shows it.
type Nexthop struct {
	ID       uint32   `json:"id"`
	Gateway  string   `json:"gateway"`
	Dev      string   `json:"dev"`
	Group    []Member `json:"group"`
	Type     string   `json:"type"`
	Protocol string   `json:"protocol"`
}

// String renders the object like `ip nexthop`.
func (n Nexthop) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "id %d", n.ID)
	if len(n.Group) > 0 {
		var ms []string
		for _, m := range n.Group {
			ms = append(ms, fmt.Sprintf("%d,%d", m.ID, max(m.Weight, 1)))
		}
		fmt.Fprintf(&b, " group %s", strings.Join(ms, "/"))
		if n.Type != "" {
			fmt.Fprintf(&b, " type %s", n.Type)
		}
	} else {
		fmt.Fprintf(&b, " via %s dev %s", n.Gateway, n.Dev)
	}
	fmt.Fprintf(&b, " proto %s", n.Protocol)
	return b.String()
}

// Link is one interface with its IPv4 addresses.
type Link struct {
	Name    string
	AdminUp bool
	Carrier bool
	Addrs   []netip.Prefix
}

// View is one snapshot of a namespace's routing state.
type View struct {
	Rules    []Rule
	Routes   []Route // every table
	Nexthops []Nexthop
	Links    map[string]Link // by name
	// NFTables lists the inet tables by name.
	NFTables []string
}

// Read takes a snapshot of the routing state of the named network
// namespace (its full name, as `ip netns` lists it).
func Read(ctx context.Context, ns string) (*View, error) {
	v := &View{Links: make(map[string]Link)}
	if err := ipJSON(ctx, ns, &v.Rules, "rule", "show"); err != nil {
		return nil, err
	}
	if err := ipJSON(ctx, ns, &v.Routes, "-d", "route", "show", "table", "all"); err != nil {
		return nil, err
	}
	if err := ipJSON(ctx, ns, &v.Nexthops, "nexthop", "show"); err != nil {
		return nil, err
	}
	var links []struct {
		Name     string   `json:"ifname"`
		Flags    []string `json:"flags"`
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
			Len    int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := ipJSON(ctx, ns, &links, "addr", "show"); err != nil {
		return nil, err
	}
	for _, l := range links {
		k := Link{Name: l.Name, AdminUp: slices.Contains(l.Flags, "UP"), Carrier: slices.Contains(l.Flags, "LOWER_UP")}
		for _, a := range l.AddrInfo {
			if a.Family != "inet" {
				continue
			}
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("address %q of %s: %w", a.Local, l.Name, err)
			}
			k.Addrs = append(k.Addrs, netip.PrefixFrom(addr, a.Len))
		}
		v.Links[l.Name] = k
	}
	tables, err := nftTables(ns)
	if err != nil {
		return nil, err
	}
	v.NFTables = tables
	return v, nil
}

// ipJSON runs `ip -n NS -j args...` and decodes its output into out. An
// empty table list prints nothing at all.
func ipJSON(ctx context.Context, ns string, out any, args ...string) error {
	argv := append([]string{"-n", ns, "-j"}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	b := bytes.TrimSpace(stdout.Bytes())
	if len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("ip %s: decode %q: %w", strings.Join(argv, " "), b, err)
	}
	return nil
}

// nftTables lists the names of the namespace's inet nftables tables.
func nftTables(ns string) ([]string, error) {
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return nil, fmt.Errorf("nftables in %s: %w", ns, err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list nftables tables in %s: %w", ns, err)
	}
	var names []string
	for _, t := range tables {
		names = append(names, t.Name)
	}
	return names, nil
}

// Leftovers lists every rule, route and nexthop object carrying protocol
// proto, and the nftables table named nft if it exists: what a clean stop
// must leave behind (nothing).
func (v *View) Leftovers(proto int, nft string) []string {
	p := strconv.Itoa(proto)
	var out []string
	for _, r := range v.Rules {
		if r.Protocol == p {
			out = append(out, "rule "+r.String())
		}
	}
	for _, r := range v.Routes {
		if r.Protocol == p {
			out = append(out, "route "+r.String())
		}
	}
	for _, n := range v.Nexthops {
		if n.Protocol == p {
			out = append(out, "nexthop "+n.String())
		}
	}
	if slices.Contains(v.NFTables, nft) {
		out = append(out, "nftables table inet "+nft)
	}
	return out
}
