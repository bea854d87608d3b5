package netops

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ti-mo/conntrack"
)

var (
	lanHost = netip.MustParseAddr("192.0.2.10")
	target  = netip.MustParseAddr("198.18.0.1")
	wan1    = netip.MustParseAddr("198.51.100.2")
	wan2    = netip.MustParseAddr("203.0.113.2")
	remote  = netip.MustParseAddr("198.18.0.2")
)

// natFlow is a UDP entry of a LAN flow whose source was translated to nat.
func natFlow(sport uint16, nat netip.Addr) conntrack.Flow {
	f := conntrack.NewFlow(17, conntrack.StatusSrcNAT|conntrack.StatusConfirmed, lanHost, target, sport, 9, 60, 0)
	f.TupleReply.IP.DestinationAddress = nat
	return f
}

// ownFlow is an entry of a connection the router started from src, or
// accepted on src when inbound.
func ownFlow(src netip.Addr, inbound bool) conntrack.Flow {
	if inbound {
		return conntrack.NewFlow(6, conntrack.StatusConfirmed, remote, src, 40000, 22, 60, 0)
	}
	return conntrack.NewFlow(17, conntrack.StatusConfirmed, src, target, 5000, 9, 60, 0)
}

func ports(flows []conntrack.Flow) []uint16 {
	var out []uint16
	for _, f := range flows {
		out = append(out, f.TupleOrig.Proto.SourcePort)
	}
	return out
}

func TestNATedTo(t *testing.T) {
	flows := []conntrack.Flow{
		natFlow(1000, wan2),
		natFlow(1001, wan1),
		ownFlow(wan2, false),
		ownFlow(wan2, true),
		natFlow(1002, wan2),
	}
	if got := ports(natedTo(flows, wan2)); !slices.Equal(got, []uint16{1000, 1002}) {
		t.Fatalf("natedTo(wan2) = flows from ports %v, want 1000 and 1002", got)
	}
	if got := ports(natedTo(flows, wan1)); !slices.Equal(got, []uint16{1001}) {
		t.Fatalf("natedTo(wan1) = %v, want 1001", got)
	}
}

// FlushNAT against the kernel: entries created through ctnetlink with
// translated reply tuples, as masquerade leaves them (the kernel does not
// let ctnetlink set the SNAT status bits; the end-to-end test in test/ runs
// real masquerade).
func TestFlushNATKernel(t *testing.T) {
	ct := dialConntrackNS(t)
	for _, f := range []conntrack.Flow{natFlow(1000, wan2), natFlow(1001, wan1), ownFlow(wan2, false), ownFlow(wan2, true), natFlow(1002, wan2)} {
		if err := ct.c.Create(f); err != nil {
			t.Fatalf("create %s: %v", f.TupleOrig, err)
		}
	}
	n, err := ct.FlushNAT(wan2)
	if err != nil || n != 2 {
		t.Fatalf("FlushNAT(wan2) = %d, %v; want 2", n, err)
	}
	if got := leftPorts(t, ct); !slices.Equal(got, []uint16{1001, 5000, 40000}) {
		t.Fatalf("entries left from ports %v, want 1001 (translated to wan1), 5000 and 40000 (the router's own)", got)
	}
	if n, err := ct.FlushNAT(wan2); err != nil || n != 0 {
		t.Fatalf("second FlushNAT = %d, %v", n, err)
	}
}

// MarkOf finds an entry by its original tuple, and says when there is none.
func TestMarkOfKernel(t *testing.T) {
	ct := dialConntrackNS(t)
	src, dst := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("198.18.0.1")
	f := conntrack.NewFlow(17, 0, src, dst, 40000, 5060, 60, 0x3000010)
	if err := ct.c.Create(f); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if mark, found, err := ct.MarkOf(17, src, dst, 40000, 5060); err != nil || !found || mark != 0x3000010 {
			t.Errorf("MarkOf = %#x, %t, %v", mark, found, err)
		}
		if _, found, err := ct.MarkOf(17, src, dst, 40001, 5060); err != nil || found {
			t.Errorf("MarkOf of no entry = %t, %v", found, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("MarkOf hangs")
	}
}

// FlushNAT and MarkOf of IPv6 addresses read and delete IPv6 entries: a
// router that masquerades IPv6 (NPTv6 aside) needs the same flush.
func TestConntrack6Kernel(t *testing.T) {
	ct := dialConntrackNS(t)
	host, dst := netip.MustParseAddr("2001:db8:a::10"), netip.MustParseAddr("2001:db8:ffff::1")
	wan := netip.MustParseAddr("2001:db8:2::2")
	nat := conntrack.NewFlow(17, 0, host, dst, 1000, 9, 60, 0x2000000)
	nat.TupleReply.IP.DestinationAddress = wan
	own := conntrack.NewFlow(17, 0, wan, dst, 5000, 9, 60, 0)
	for _, f := range []conntrack.Flow{nat, own, natFlow(1001, wan2)} {
		if err := ct.c.Create(f); err != nil {
			t.Fatalf("create %s: %v", f.TupleOrig, err)
		}
	}
	if mark, found, err := ct.MarkOf(17, host, dst, 1000, 9); err != nil || !found || mark != 0x2000000 {
		t.Fatalf("MarkOf = %#x, %t, %v", mark, found, err)
	}
	if n, err := ct.FlushNAT(wan); err != nil || n != 1 {
		t.Fatalf("FlushNAT(%s) = %d, %v; want 1", wan, n, err)
	}
	if got := leftPorts(t, ct); !slices.Equal(got, []uint16{1001, 5000}) {
		t.Fatalf("entries left from ports %v, want 1001 (IPv4) and 5000 (the router's own)", got)
	}
}

// dialConntrackNS opens a conntrack connection in a new network namespace,
// closed when the test ends.
func dialConntrackNS(t *testing.T) *Conntrack {
	t.Helper()
	ns, _ := nsHandle(t)
	var ct *Conntrack
	nsFD(t, ns, func(fd int) {
		var err error
		if ct, err = DialConntrack(fd); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() { ct.Close() })
	return ct
}

// leftPorts dumps ct's entries and lists their original source ports in
// order.
func leftPorts(t *testing.T, ct *Conntrack) []uint16 {
	t.Helper()
	left, err := ct.c.Dump(nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(left, func(a, b conntrack.Flow) int {
		return int(a.TupleOrig.Proto.SourcePort) - int(b.TupleOrig.Proto.SourcePort)
	})
	return ports(left)
}
