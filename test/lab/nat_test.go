package lab_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
)

func TestThirdISP(t *testing.T) {
	testutil.RequirePriv(t)
	l, err := lab.NewWithOptions(t.Context(), randomPrefix(t), lab.Options{ThirdISP: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if list := netnsList(t); hasNetns(list, l.NS(lab.ISP3)) {
			t.Errorf("%s left after Close", l.NS(lab.ISP3))
		}
	})
	ctx := t.Context()
	if a, err := l.RouterAddr(lab.ISP3); err != nil || a != lab.ISP3RouterAddr {
		t.Fatalf("RouterAddr(isp3) = %v, %v", a, err)
	}
	// LAN traffic to Target1 through isp3 arrives.
	mustIP(t, l, lab.Router, "route", "add", lab.Target1.String()+"/32", "via", lab.ISP3Gateway.String(), "dev", "eth3")
	if dev, err := l.RouteGet(ctx, lab.Target1, lab.HostAddr, lab.RouterLANLink, 1000, 9000); err != nil || dev != "eth3" {
		t.Fatalf("route to Target1 = %q, %v; want eth3", dev, err)
	}
	s := startSink(t, l, lab.Inet, netip.AddrPortFrom(lab.Target1, 9000))
	r := send(t, l, lab.Host, "--to", "198.18.0.1:9000", "--sport", "40000", "--count", "20")
	if err := l.Blackhole(ctx, lab.ISP3, true); err != nil {
		t.Fatal(err)
	}
	send(t, l, lab.Host, "--to", "198.18.0.1:9000", "--sport", "40001", "--count", "20")
	rep := s.stop(t)
	if got := rep.Flows["192.0.2.10:40000"].Received; r.Sent != 20 || got != 20 {
		t.Errorf("through isp3: sent %d, received %d", r.Sent, got)
	}
	if _, ok := rep.Flows["192.0.2.10:40001"]; ok {
		t.Errorf("flow through the isp3 blackhole arrived: %+v", rep.Flows)
	}
	if err := l.CarrierDown(ctx, lab.ISP3); err != nil {
		t.Fatal(err)
	}
	eventually(t, "eth3 to lose carrier", func() bool { return !slices.Contains(linkFlags(t, l, "eth3"), "LOWER_UP") })
}

// With NAT a flow keeps the address it was translated to. With snat, on
// another uplink the ISP drops it until its conntrack entry is deleted;
// masquerade notices the new interface and translates anew by itself.
func TestEnableNAT(t *testing.T) {
	for _, mode := range []lab.NAT{lab.Masquerade, lab.SNAT} {
		t.Run(mode.String(), func(t *testing.T) { testNAT(t, mode) })
	}
}

func testNAT(t *testing.T, mode lab.NAT) {
	l := newLab(t)
	ctx := t.Context()
	if err := l.EnableNAT(ctx, mode); err != nil {
		t.Fatal(err)
	}
	// The router knows isp2's gateway already, as uplinkd's probes see
	// to: resolving it while a stuck flow sends datagrams from isp1's
	// address would fail, because isp2 filters that address in ARP too.
	send(t, l, lab.Router, "--to", lab.ISP2Gateway.String()+":9", "--count", "1")
	s := startSink(t, l, lab.Inet, netip.AddrPortFrom(lab.Target1, 9000))
	sender, err := l.Start(ctx, lab.Host, "", labtool(t), "udpsend", "--to", "198.18.0.1:9000", "--sport", "40000",
		"--interval", "1ms", "--duration", "20s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Process.Kill(); _ = sender.Wait() })
	time.Sleep(300 * time.Millisecond)
	// The flow's path changes to isp2; its entry says 198.51.100.2.
	mustIP(t, l, lab.Router, "route", "replace", "default", "via", lab.ISP2Gateway.String(), "dev", "eth2")
	time.Sleep(300 * time.Millisecond)
	ns, err := netns.GetFromName(l.NS(lab.Router))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ct, err := netops.DialConntrack(int(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	n, err := ct.FlushNAT(lab.ISP1RouterAddr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_ = sender.Process.Kill()
	rep := s.stop(t)
	before, after := rep.Flows["198.51.100.2:40000"], rep.Flows["203.0.113.2:40000"]
	t.Logf("flushed %d; translated to isp1: %+v; to isp2: %+v", n, before, after)
	if before.Received < 100 || after.Received < 100 || len(rep.Flows) != 2 {
		t.Fatalf("flows: %+v, want the flow first from 198.51.100.2, then from 203.0.113.2", rep.Flows)
	}
	lost := after.FirstSeq - before.LastSeq - 1
	switch mode {
	case lab.SNAT:
		// Between the path change and the flush, isp2 dropped the
		// datagrams that still carried isp1's address.
		if n != 1 || lost < 100 {
			t.Fatalf("flushed %d entries, %d datagrams lost: want the flow stuck until its entry was flushed", n, lost)
		}
	case lab.Masquerade:
		if n != 0 || lost > 50 {
			t.Fatalf("flushed %d entries, %d datagrams lost: want the kernel to translate anew at once", n, lost)
		}
	}
	if out := mustExec(t, l, lab.ISP2, "sysctl", "-n", "net.ipv4.conf.down0.rp_filter"); strings.TrimSpace(out) != "1" {
		t.Errorf("isp2 rp_filter = %q", out)
	}
}
