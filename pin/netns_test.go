package pin

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
)

// testNS is a network namespace created for one test, deleted at its end.
type testNS struct {
	name string
	h    netns.NsHandle
}

// newNS creates a namespace with a unique name (prefix plus random hex),
// so that parallel helpers and tests never collide.
func newNS(t *testing.T, prefix string) *testNS {
	t.Helper()
	testutil.RequirePriv(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	ip(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ip(t, "-n", name, "link", "set", "lo", "up")
	return &testNS{name: name, h: h}
}

func (n *testNS) fd() int { return int(n.h) }

// conntrack opens a conntrack connection in the namespace, closed when the
// test ends.
func (n *testNS) conntrack(t *testing.T) *conntrack.Conn {
	t.Helper()
	c, err := conntrack.Dial(&netlink.Config{NetNS: n.fd()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs fn on a thread inside the namespace.
func (n *testNS) run(t *testing.T, fn func() error) {
	t.Helper()
	if err := testutil.InNSHandle(n.h, fn); err != nil {
		t.Fatal(err)
	}
}

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// openTable opens the pin table in ns and removes it at the end of the
// test.
func openTable(t *testing.T, ns *testNS) *Table {
	t.Helper()
	tb, err := Open(Config{NetNS: ns.fd(), Mask: DefaultMask})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.Close() })
	return tb
}

func ifindex(name string) (int, error) {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return i.Index, nil
}

// watchers is how many Watch subscriptions are running.
func (t *Table) watchers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.watching
}
