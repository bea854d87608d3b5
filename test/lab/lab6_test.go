package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// newLab6 builds a dual-stack lab that is closed when the test ends.
func newLab6(t *testing.T, opts lab.Options) *lab.Lab {
	t.Helper()
	testutil.RequirePriv(t)
	opts.IPv6 = true
	l, err := lab.NewWithOptions(t.Context(), randomPrefix(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

type addr6 struct {
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Scope     string `json:"scope"`
	Tentative bool   `json:"tentative"`
}

// addrs6 lists the IPv6 addresses of link in ns as "addr/len".
func addrs6(t *testing.T, l *lab.Lab, ns, link string) []string {
	t.Helper()
	var links []struct {
		AddrInfo []addr6 `json:"addr_info"`
	}
	out := mustIP(t, l, ns, "-j", "-6", "addr", "show", "dev", link)
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	var a []string
	for _, lk := range links {
		for _, ai := range lk.AddrInfo {
			if ai.Tentative {
				t.Errorf("%s %s: %s is tentative (DAD should be off)", ns, link, ai.Local)
			}
			a = append(a, fmt.Sprintf("%s/%d", ai.Local, ai.PrefixLen))
		}
	}
	slices.Sort(a)
	return a
}

func wantAddrs6(t *testing.T, l *lab.Lab, ns, link string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := addrs6(t, l, ns, link); !slices.Equal(got, want) {
		t.Errorf("%s %s IPv6 addresses %v, want %v", ns, link, got, want)
	}
}

// send6 sends count datagrams from src in ns to dst (labtool udpsend).
func send6(t *testing.T, l *lab.Lab, ns string, src netip.Addr, dst netip.AddrPort, count int) {
	t.Helper()
	r := send(t, l, ns, "--from", src.String(), "--to", dst.String(), "--count", fmt.Sprint(count), "--interval", "1ms")
	if r.Sent != count || r.Errors != 0 {
		t.Fatalf("udpsend from %s to %s: %+v", src, dst, r)
	}
}

// eventuallyWithin is eventually with a deadline of d.
func eventuallyWithin(t *testing.T, d time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCounts waits until the ISPs' counters stop at want (name -> isp -> packets).
func waitCounts(t *testing.T, l *lab.Lab, want map[string]map[string]uint64) {
	t.Helper()
	var got map[string]map[string]uint64
	eventually(t, fmt.Sprintf("counters %v", want), func() bool {
		var err error
		if got, err = l.Counts(); err != nil {
			t.Fatal(err)
		}
		for name, per := range want {
			for isp, n := range per {
				if got[name][isp] != n {
					return false
				}
			}
		}
		return true
	})
}

func TestTopology6(t *testing.T) {
	l := newLab6(t, lab.Options{})
	wantAddrs6(t, l, lab.Router, "eth1", "fe80::2/64", "2001:db8:a1::2/64")
	wantAddrs6(t, l, lab.Router, "eth2", "fe80::2/64", "2001:db8:a2::2/64")
	wantAddrs6(t, l, lab.ISP1, "down0", "fe80::1/64", "2001:db8:a1::1/64")
	wantAddrs6(t, l, lab.ISP2, "down0", "fe80::1/64", "2001:db8:a2::1/64")
	lan := addrs6(t, l, lab.Router, "eth0")
	for _, a := range []string{"2001:db8:1100::1/64", "2001:db8:2200::1/64"} {
		if !slices.Contains(lan, a) {
			t.Errorf("router eth0 %v lacks %s", lan, a)
		}
	}
	for _, c := range []struct{ ns, key, want string }{
		{lab.Router, "net.ipv6.conf.eth1.accept_ra", "2"},
		{lab.Router, "net.ipv6.conf.eth2.accept_ra", "2"},
		{lab.Router, "net.ipv6.conf.all.forwarding", "1"},
		{lab.ISP1, "net.ipv6.conf.all.forwarding", "1"},
	} {
		if got := strings.TrimSpace(mustExec(t, l, c.ns, "sysctl", "-n", c.key)); got != c.want {
			t.Errorf("%s %s = %s, want %s", c.ns, c.key, got, c.want)
		}
	}
	if m := mustIP(t, l, lab.Router, "-6", "route", "show", "default"); !strings.Contains(m, "default via fe80::1 dev eth1") {
		t.Errorf("router's main IPv6 default: %q", m)
	}

	// Real packets from each of the host's prefixes reach the Internet
	// through the admin's default (isp1), counted at isp1, never at isp2.
	target := netip.AddrPortFrom(lab.Target6_1, 9000)
	if err := l.AddCounts(
		lab.Count{Name: "p1", Src: lab.ISP1LANPrefix6, DPort: 9000},
		lab.Count{Name: "p2", Src: lab.ISP2LANPrefix6, DPort: 9000},
	); err != nil {
		t.Fatal(err)
	}
	send6(t, l, lab.Host, lab.HostAddr6ISP1, target, 30)
	send6(t, l, lab.Host, lab.HostAddr6ISP2, target, 20)
	waitCounts(t, l, map[string]map[string]uint64{
		"p1": {lab.ISP1: 30, lab.ISP2: 0, lab.Inet: 30},
		"p2": {lab.ISP1: 20, lab.ISP2: 0, lab.Inet: 20},
	})

	// The router's own traffic through isp2 by its link-local gateway,
	// and the reply path: isp2 routes its prefix back to the router.
	mustIP(t, l, lab.Router, "route", "add", lab.Target6_2.String()+"/128", "via", "fe80::1", "dev", "eth2")
	if dev, err := l.RouteGet(t.Context(), lab.Target6_2, lab.RouterLANAddr6ISP2, "", 0, 0); err != nil || dev != "eth2" {
		t.Errorf("route to %s: %q, %v", lab.Target6_2, dev, err)
	}
	if r := mustIP(t, l, lab.ISP2, "-6", "route", "show", lab.ISP2LANPrefix6.String()); !strings.Contains(r, "via fe80::2 dev down0") {
		t.Errorf("isp2's route to its delegated prefix: %q", r)
	}
}

func TestIngressFilter6AndBlackhole6(t *testing.T) {
	l := newLab6(t, lab.Options{})
	target := netip.AddrPortFrom(lab.Target6_1, 9001)
	if err := l.EnableIngressFilter6(); err != nil {
		t.Fatal(err)
	}
	if err := l.AddCounts(
		lab.Count{Name: "p1", Src: lab.ISP1LANPrefix6, DPort: 9001},
		lab.Count{Name: "p2", Src: lab.ISP2LANPrefix6, DPort: 9001},
		lab.Count{Name: "b6", Src: lab.ISP1LANPrefix6, DPort: 9002},
		lab.Count{Name: "b4", Src: lab.LANPrefix, DPort: 9002},
	); err != nil {
		t.Fatal(err)
	}
	// isp2's prefix through isp1 (the main default): counted at isp1,
	// dropped there. isp1's own prefix passes.
	send6(t, l, lab.Host, lab.HostAddr6ISP2, target, 10)
	send6(t, l, lab.Host, lab.HostAddr6ISP1, target, 10)
	waitCounts(t, l, map[string]map[string]uint64{
		"p1": {lab.ISP1: 10, lab.Inet: 10},
		"p2": {lab.ISP1: 10, lab.ISP2: 0, lab.Inet: 0},
	})

	// Blackhole6 on isp1 drops IPv6 only; IPv4 still flows.
	if err := l.Blackhole6(t.Context(), lab.ISP1, true); err != nil {
		t.Fatal(err)
	}
	send6(t, l, lab.Host, lab.HostAddr6ISP1, netip.AddrPortFrom(lab.Target6_1, 9002), 10)
	send6(t, l, lab.Host, lab.HostAddr, netip.AddrPortFrom(lab.Target1, 9002), 10)
	waitCounts(t, l, map[string]map[string]uint64{
		"b6": {lab.ISP1: 10, lab.Inet: 0},
		"b4": {lab.ISP1: 10, lab.Inet: 10},
	})
	if err := l.BlackholeFamilies(t.Context(), lab.ISP1, true, true, false); err != nil {
		t.Fatal(err)
	}
	if err := l.Blackhole6(t.Context(), lab.ISP1, false); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
}

func TestFaults6(t *testing.T) {
	l := newLab6(t, lab.Options{})
	ctx := t.Context()
	if err := l.CarrierDown(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if err := l.CarrierUp(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	wantAddrs6(t, l, lab.ISP2, "down0", "fe80::1/64", "2001:db8:a2::1/64")
	wantAddrs6(t, l, lab.Router, "eth2", "fe80::2/64", "2001:db8:a2::2/64")
	if r := mustIP(t, l, lab.ISP2, "-6", "route", "show", lab.ISP2LANPrefix6.String()); !strings.Contains(r, "via fe80::2 dev down0") {
		t.Errorf("after CarrierUp, isp2's route to its prefix: %q", r)
	}

	if err := l.DeleteRouterLink(ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	if err := l.RecreateRouterLink(ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	wantAddrs6(t, l, lab.Router, "eth1", "fe80::2/64", "2001:db8:a1::2/64")
	wantAddrs6(t, l, lab.ISP1, "down0", "fe80::1/64", "2001:db8:a1::1/64")
	if m := mustIP(t, l, lab.Router, "-6", "route", "show", "default"); !strings.Contains(m, "default via fe80::1 dev eth1") {
		t.Errorf("admin's IPv6 default after re-creation: %q", m)
	}
	if got := strings.TrimSpace(mustExec(t, l, lab.Router, "sysctl", "-n", "net.ipv6.conf.eth1.accept_ra")); got != "2" {
		t.Errorf("re-created eth1 accept_ra = %s", got)
	}

	if err := l.RenameRouterLink(ctx, "eth1", "wan9"); err != nil {
		t.Fatal(err)
	}
	wantAddrs6(t, l, lab.Router, "wan9", "fe80::2/64", "2001:db8:a1::2/64")
	if m := mustIP(t, l, lab.Router, "-6", "route", "show", "default"); !strings.Contains(m, "default via fe80::1 dev wan9") {
		t.Errorf("admin's IPv6 default after rename: %q", m)
	}

	// Real packets still flow through isp1 after all that.
	if err := l.AddCounts(lab.Count{Name: "p1", Src: lab.ISP1LANPrefix6}); err != nil {
		t.Fatal(err)
	}
	send6(t, l, lab.Host, lab.HostAddr6ISP1, netip.AddrPortFrom(lab.Target6_3, 9002), 10)
	waitCounts(t, l, map[string]map[string]uint64{"p1": {lab.ISP1: 10, lab.Inet: 10}})
}

func TestPrefixOnlyISP2(t *testing.T) {
	l := newLab6(t, lab.Options{PrefixOnlyISP2: true})
	wantAddrs6(t, l, lab.Router, "eth2", "fe80::2/64")
	wantAddrs6(t, l, lab.ISP2, "down0", "fe80::1/64")
	if _, ok := l.RouterAddr6(lab.ISP2); ok {
		t.Error("RouterAddr6(isp2) ok on a prefix-only link")
	}
	// The router reaches the Internet through isp2 from its address of
	// isp2's prefix, and the Internet routes that prefix back to isp2.
	mustIP(t, l, lab.Router, "route", "add", lab.Target6_1.String()+"/128", "via", "fe80::1", "dev", "eth2")
	if err := l.AddCounts(lab.Count{Name: "r", Src: netip.PrefixFrom(lab.RouterLANAddr6ISP2, 128), DPort: 9003}); err != nil {
		t.Fatal(err)
	}
	send6(t, l, lab.Router, lab.RouterLANAddr6ISP2, netip.AddrPortFrom(lab.Target6_1, 9003), 10)
	waitCounts(t, l, map[string]map[string]uint64{"r": {lab.ISP2: 10, lab.ISP1: 0, lab.Inet: 10}})
	if r := mustIP(t, l, lab.Inet, "-6", "route", "get", lab.RouterLANAddr6ISP2.String()); !strings.Contains(r, "dev isp2") {
		t.Errorf("the Internet's route back to isp2's prefix: %q", r)
	}
}

func TestRADVD(t *testing.T) {
	testutil.RequirePriv(t)
	testutil.RequireTool(t, "radvd")
	l := newLab6(t, lab.Options{})
	ctx := t.Context()
	raDefault := func() string {
		return mustIP(t, l, lab.Router, "-6", "route", "show", "default", "dev", "eth2", "proto", "ra")
	}
	dir := t.TempDir()
	r, err := l.StartRADVD(ctx, lab.ISP2, dir, lab.DefaultRA)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, lab.ISP2+"-radvd.log"))
			t.Logf("radvd log:\n%s", b)
		}
	})
	// radvd advertises every 3 to 4 seconds.
	eventuallyWithin(t, 15*time.Second, "the RA default route via fe80::1 on eth2", func() bool {
		return strings.Contains(raDefault(), "default via fe80::1 ")
	})
	if err := r.Set(lab.RA{}); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 15*time.Second, "the zero-lifetime RA to remove the route", func() bool { return raDefault() == "" })
	if err := r.Set(lab.DefaultRA); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 15*time.Second, "the RA default route back", func() bool { return raDefault() != "" })
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 15*time.Second, "radvd's final RA to remove the route", func() bool { return raDefault() == "" })
	// The admin's static default on eth1 was never touched.
	if m := mustIP(t, l, lab.Router, "-6", "route", "show", "default", "dev", "eth1"); !strings.Contains(m, "via fe80::1") {
		t.Errorf("admin's default: %q", m)
	}
}

func TestFlows6NAT66(t *testing.T) {
	l := newLab6(t, lab.Options{})
	if err := l.EnableNAT66(); err != nil {
		t.Fatal(err)
	}
	// Balance IPv6 as uplinkd would without lan_prefix6.
	mustIP(t, l, lab.Router, "route", "add", "default", "table", "250",
		"nexthop", "via", "fe80::1", "dev", "eth1", "weight", "1",
		"nexthop", "via", "fe80::1", "dev", "eth2", "weight", "1")
	mustIP(t, l, lab.Router, "-6", "rule", "add", "iif", "eth0", "lookup", "250", "pref", "10002")
	mustExec(t, l, lab.Router, "sysctl", "-w", "net.ipv6.fib_multipath_hash_policy=1")
	f, err := l.StartFlows(t.Context(), lab.FlowOptions{TCP: 8, UDP: 8, Target: lab.Target6_1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	per := map[string]int{}
	eventually(t, "every flow echoed", func() bool {
		clear(per)
		snap := f.Snapshot()
		for _, fs := range snap.Flows {
			if fs.Echoed == 0 {
				return false
			}
			for up := range fs.Sources {
				per[up]++
			}
		}
		return true
	})
	t.Logf("flows per uplink: %v", per)
	if per[lab.ISP1] == 0 || per[lab.ISP2] == 0 || per[lab.ISP1]+per[lab.ISP2] != 16 {
		t.Errorf("flows per uplink %v: want both ISPs, named by their masquerade address", per)
	}
}
