package netops

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// nsHandle creates a fresh network namespace with eth1/eth2 veths (peers in
// a second namespace) and returns a netlink handle inside it.
func nsHandle(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	testutil.RequirePriv(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "nt-" + hex.EncodeToString(b)
	peer := name + "-p"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	run("netns", "add", peer)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", peer).Run() })
	run("-n", name, "link", "add", "eth1", "type", "veth", "peer", "name", "up1", "netns", peer)
	run("-n", name, "link", "add", "eth2", "type", "veth", "peer", "name", "up2", "netns", peer)
	run("-n", name, "addr", "add", "198.51.100.2/24", "dev", "eth1")
	run("-n", name, "addr", "add", "203.0.113.2/24", "dev", "eth2")
	for _, l := range []string{"lo", "eth1", "eth2"} {
		run("-n", name, "link", "set", l, "up")
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

func ipOut(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

// inNS returns isp1 and isp2 with the ifindexes of eth1 and eth2 in h's
// namespace.
func inNS(t *testing.T, h *netlink.Handle, u1, u2 Uplink) (Uplink, Uplink) {
	t.Helper()
	for _, u := range []*Uplink{&u1, &u2} {
		l, err := h.LinkByName(map[string]string{"isp1": "eth1", "isp2": "eth2"}[u.Name])
		if err != nil {
			t.Fatal(err)
		}
		u.Index = l.Attrs().Index
	}
	return u1, u2
}

// handleIn opens a Handle (h and its route dump socket) in namespace ns,
// closed when the test ends.
func handleIn(t *testing.T, ns string, h *netlink.Handle) *Handle {
	t.Helper()
	var kh *Handle
	nsFD(t, ns, func(fd int) {
		var err error
		if kh, err = NewHandle(h, fd); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { kh.Close() })
	return kh
}

// nsFD runs fn with a file descriptor of namespace ns.
func nsFD(t *testing.T, ns string, fn func(fd int)) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	fn(int(h))
}

func TestReconcileKernel(t *testing.T) {
	ns, h := nsHandle(t)
	u1, u2 := inNS(t, h, isp1(true), isp2(true))
	r := &Reconciler{K: h, Protocol: 201}

	// A foreign route in an uplink table and a foreign rule must survive.
	ipOut(t, ns, "route", "add", "192.0.2.0/24", "via", "198.51.100.1", "table", "100")
	ipOut(t, ns, "rule", "add", "from", "192.0.2.99", "lookup", "100", "pref", "10000")

	both := Plan(settings, []Uplink{u1, u2})
	res, err := r.Reconcile(both)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if res.Changes() != len(both.Routes)+len(both.Rules) {
		t.Fatalf("first reconcile made %d changes, want %d: %v", res.Changes(), len(both.Routes)+len(both.Rules), res)
	}
	bal := ipOut(t, ns, "route", "show", "table", "250")
	for _, want := range []string{"proto 201", "nexthop via 198.51.100.1 dev eth1 weight 1", "nexthop via 203.0.113.1 dev eth2 weight 3"} {
		if !strings.Contains(bal, want) {
			t.Fatalf("balance table lacks %q:\n%s", want, bal)
		}
	}
	rules := ipOut(t, ns, "rule")
	for _, want := range []string{
		"10000:\tfrom all lookup main suppress_prefixlength 0 proto 201",
		"10001:\tfrom 198.51.100.2 lookup 100 proto 201",
		"10099:\tfrom all iif eth0 [detached] lookup 250 proto 201",
		"10099:\tfrom all iif lo lookup 250 proto 201",
	} {
		if !strings.Contains(rules, want) {
			t.Fatalf("rules lack %q:\n%s", want, rules)
		}
	}

	// Idempotent.
	if res, err := r.Reconcile(both); err != nil || res.Changes() != 0 {
		t.Fatalf("second reconcile: %d changes %v, err %v", res.Changes(), res, err)
	}

	// A foreign deletion is repaired, and only that.
	ipOut(t, ns, "rule", "del", "pref", "10099", "iif", "eth0")
	ipOut(t, ns, "route", "del", "default", "table", "200")
	if res, err := r.Reconcile(both); err != nil || res.Changes() != 2 {
		t.Fatalf("repair: %d changes %v, err %v", res.Changes(), res, err)
	}

	// isp2 leaves the balance: the multipath route becomes single path.
	u2.InBalance = false
	one := Plan(settings, []Uplink{u1, u2})
	if res, err := r.Reconcile(one); err != nil || res.Changes() != 1 {
		t.Fatalf("isp2 out: %d changes %v, err %v", res.Changes(), res, err)
	}
	if bal := ipOut(t, ns, "route", "show", "table", "250"); !strings.HasPrefix(bal, "default via 198.51.100.1 dev eth1 proto 201") {
		t.Fatalf("balance table: %s", bal)
	}

	// Carrier loss: the kernel keeps linkdown routes; that is not drift.
	ipOut(t, ns, "link", "set", "eth2", "down")
	ipOut(t, ns, "link", "set", "eth2", "up")
	u2.Index = 0
	if _, err := r.Reconcile(Plan(settings, []Uplink{u1, u2})); err != nil {
		t.Fatalf("after admin down: %v", err)
	}

	// Cleanup removes exactly what carries protocol 201.
	if _, err := r.Cleanup(); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	if all := ipOut(t, ns, "route", "show", "table", "all", "proto", "201"); all != "" {
		t.Fatalf("routes left behind:\n%s", all)
	}
	rules = ipOut(t, ns, "rule")
	if strings.Contains(rules, "proto 201") || !strings.Contains(rules, "from 192.0.2.99 lookup 100") {
		t.Fatalf("rules after cleanup:\n%s", rules)
	}
	if tbl := ipOut(t, ns, "route", "show", "table", "100"); !strings.Contains(tbl, "192.0.2.0/24 via 198.51.100.1") {
		t.Fatalf("foreign route removed:\n%s", tbl)
	}
}
