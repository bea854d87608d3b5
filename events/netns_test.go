package events

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
)

// newNS creates a named network namespace "ev-<random>-<suffix>" for t and
// deletes it when t ends. It returns the name and an open handle.
func newNS(t *testing.T, id, suffix string) (string, netns.NsHandle) {
	t.Helper()
	name := fmt.Sprintf("ev-%s-%s", id, suffix)
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return name, h
}

// randomID returns a short random hex string for unique namespace names.
func randomID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// ip runs the ip command and fails t on error. Callers always pass -n NS
// (or netns add/del): nothing here touches the host namespace.
func ip(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNS runs fn on a fresh OS thread switched into ns, the way the daemon
// runs inside its namespace.
func inNS(ns netns.NsHandle, fn func() error) error { return testutil.InNSHandle(ns, fn) }

// sendUDP sends one datagram to to from namespace ns (UDP over to's
// family), so that the kernel resolves the next hop's neighbour.
func sendUDP(t *testing.T, ns netns.NsHandle, to netip.AddrPort) {
	t.Helper()
	network := "udp4"
	if to.Addr().Is6() {
		network = "udp6"
	}
	if err := inNS(ns, func() error {
		c, err := net.DialUDP(network, nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
