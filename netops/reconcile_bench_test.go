package netops

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// scaleNS creates a namespace with n veth uplinks w0..w(n-1) (peers p0..
// in a second namespace, up), addressed as scaleUplinks addresses them,
// and returns the namespaces, a handle in each and the uplinks with their
// real ifindexes.
func scaleNS(tb testing.TB, n int) (ns, peer string, h, ph *netlink.Handle, ups []Uplink) {
	tb.Helper()
	testutil.RequirePriv(tb)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns = "ns-" + hex.EncodeToString(b)
	peer = ns + "-p"
	ip := func(args ...string) {
		tb.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			tb.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip("netns", "add", peer)
	tb.Cleanup(func() { _ = exec.Command("ip", "netns", "del", peer).Run() })
	ups = scaleUplinks(n)
	var batch, pbatch strings.Builder
	for i, u := range ups {
		fmt.Fprintf(&batch, "link add w%d type veth peer name p%d netns %s\n", i, i, peer)
		fmt.Fprintf(&batch, "addr add %s dev w%d\nlink set w%d up\n", u.Addr, i, i)
		fmt.Fprintf(&pbatch, "link set p%d up\n", i)
	}
	batch.WriteString("link set lo up\n")
	for _, x := range []struct{ ns, cmds string }{{ns, batch.String()}, {peer, pbatch.String()}} {
		f, err := os.CreateTemp(tb.TempDir(), "batch")
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := f.WriteString(x.cmds); err != nil {
			tb.Fatal(err)
		}
		f.Close()
		ip("-n", x.ns, "-batch", f.Name())
	}
	handle := func(name string) *netlink.Handle {
		nsh, err := netns.GetFromName(name)
		if err != nil {
			tb.Fatal(err)
		}
		defer nsh.Close()
		h, err := netlink.NewHandleAt(nsh)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(h.Close)
		return h
	}
	h, ph = handle(ns), handle(peer)
	for i := range ups {
		l, err := h.LinkByName(fmt.Sprintf("w%d", i))
		if err != nil {
			tb.Fatal(err)
		}
		ups[i].Index = l.Attrs().Index
	}
	for i := range ups {
		waitCarrier(tb, h, ups[i].Index, true)
	}
	return ns, peer, h, ph, ups
}

// waitCarrier polls until the link ifindex has carrier or not.
func waitCarrier(tb testing.TB, h *netlink.Handle, ifindex int, on bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := h.LinkByIndex(ifindex)
		if err != nil {
			tb.Fatal(err)
		}
		if (l.Attrs().OperState == netlink.OperUp) == on {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("link %d: carrier still %v", ifindex, !on)
		}
		time.Sleep(time.Millisecond)
	}
}

// One carrier change of 256 uplinks, as the daemon reconciles it: the
// peer of uplink k goes down (or up), the link's event invalidates it,
// and the plan without (or with) it is reconciled, alternately, in a real
// kernel (hash-threshold group, pinning on). The timer covers only
// Reconcile.
func BenchmarkReconcileCarrier256(b *testing.B) {
	const n = 256
	ns, _, h, ph, ups := scaleNS(b, n)
	nh := nexthopConnTB(b, ns)
	kh := handleInTB(b, ns, h)
	s := resilient
	s.Balancer = HashThreshold
	s.MarkMask = 0xff800000
	s.LANInterfaces = []string{"lan0"}
	tk := &timedKernel{k: kh, nh: nh}
	r := &Reconciler{K: tk, NH: tk, Protocol: 201}
	r.EnableCache()
	if _, err := r.Reconcile(Plan(s, ups)); err != nil {
		b.Fatalf("first reconcile: %v", err)
	}
	peers := make([]netlink.Link, n)
	for i := range peers {
		l, err := ph.LinkByName(fmt.Sprintf("p%d", i))
		if err != nil {
			b.Fatal(err)
		}
		peers[i] = l
	}
	i := 0
	tk.in = 0
	for b.Loop() {
		b.StopTimer()
		k := (i / 2 * 37) % n // a different uplink every time
		up := i%2 == 1
		i++
		set := ph.LinkSetDown
		if up {
			set = ph.LinkSetUp
		}
		if err := set(peers[k]); err != nil {
			b.Fatal(err)
		}
		waitCarrier(b, h, ups[k].Index, up)
		ups[k].Carrier, ups[k].InBalance, ups[k].Usable = up, up, up
		d := Plan(s, ups)
		b.StartTimer()
		r.InvalidateLink(ups[k].Index)
		res, err := r.Reconcile(d)
		if err != nil {
			b.Fatalf("reconcile: %v", err)
		}
		if res.Changes() == 0 {
			b.Fatal("a carrier change made no change")
		}
	}
	b.ReportMetric(float64(tk.in.Nanoseconds())/float64(b.N), "kernel-ns/op")
}

// nexthopConnTB is nexthopConn for benchmarks.
func nexthopConnTB(tb testing.TB, ns string) *NexthopConn {
	tb.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		tb.Fatal(err)
	}
	defer nsh.Close()
	c, err := DialNexthops(int(nsh))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// handleInTB is handleIn for benchmarks.
func handleInTB(tb testing.TB, ns string, h *netlink.Handle) *Handle {
	tb.Helper()
	nsh, err := netns.GetFromName(ns)
	if err != nil {
		tb.Fatal(err)
	}
	defer nsh.Close()
	kh, err := NewHandle(h, int(nsh))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { kh.Close() })
	return kh
}

// timedKernel measures the time spent in the kernel's calls, so that a
// benchmark can report the reconciler's own CPU apart.
type timedKernel struct {
	k  Kernel
	nh *NexthopConn
	in time.Duration
}

func (t *timedKernel) since(start time.Time) { t.in += time.Since(start) }

func (t *timedKernel) RouteListFiltered(family int, f *netlink.Route, mask uint64) ([]netlink.Route, error) {
	defer t.since(time.Now())
	return t.k.RouteListFiltered(family, f, mask)
}
func (t *timedKernel) RouteReplace(rt *netlink.Route) error {
	defer t.since(time.Now())
	return t.k.RouteReplace(rt)
}
func (t *timedKernel) RouteDel(rt *netlink.Route) error {
	defer t.since(time.Now())
	return t.k.RouteDel(rt)
}
func (t *timedKernel) RuleList(family int) ([]netlink.Rule, error) {
	defer t.since(time.Now())
	return t.k.RuleList(family)
}
func (t *timedKernel) RuleAdd(ru *netlink.Rule) error {
	defer t.since(time.Now())
	return t.k.RuleAdd(ru)
}
func (t *timedKernel) RuleDel(ru *netlink.Rule) error {
	defer t.since(time.Now())
	return t.k.RuleDel(ru)
}
func (t *timedKernel) NexthopList() ([]NexthopObject, error) {
	defer t.since(time.Now())
	return t.nh.NexthopList()
}
func (t *timedKernel) NexthopGet(id uint32) (NexthopObject, bool, error) {
	defer t.since(time.Now())
	return t.nh.NexthopGet(id)
}
func (t *timedKernel) NexthopAdd(n NexthopObject, replace bool) error {
	defer t.since(time.Now())
	return t.nh.NexthopAdd(n, replace)
}
func (t *timedKernel) NexthopDel(id uint32) error {
	defer t.since(time.Now())
	return t.nh.NexthopDel(id)
}
func (t *timedKernel) NHIDRouteList(protocol, table int) ([]Route, error) {
	defer t.since(time.Now())
	return t.nh.NHIDRouteList(protocol, table)
}
func (t *timedKernel) NHIDRouteListFamily(f Family, protocol, table int) ([]Route, error) {
	defer t.since(time.Now())
	return t.nh.NHIDRouteListFamily(f, protocol, table)
}
func (t *timedKernel) NHIDRouteReplace(rt Route) error {
	defer t.since(time.Now())
	return t.nh.NHIDRouteReplace(rt)
}
