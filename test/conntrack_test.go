package test

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netns"
)

// Acceptance 5: with NAT on both uplinks, the flow translated to ISP2's
// address when ISP2 fails is flushed and re-established through ISP1; the
// flow translated to ISP1's address is untouched. Without the flush, a
// flow under snat stays stuck (masquerade notices the new interface by
// itself, so there the flush only saves it a dropped datagram). With
// pinning (the default) the entries go by mark, in one kernel-filtered
// delete; without it (mark_mask = 0, as without nf_tables) by NAT address.
func TestConntrackFlush(t *testing.T) {
	for _, tc := range []struct {
		name  string
		nat   lab.NAT
		flush bool
		// pinned: connection pinning on (the default); without it (as
		// without nf_tables) entries are flushed by NAT address.
		pinned bool
		// reload: start with flush_conntrack = true, then reload the
		// file with flush_conntrack = false.
		reload bool
	}{
		{"masquerade", lab.Masquerade, true, false, false},
		{"snat", lab.SNAT, true, false, false},
		{"snat without flush", lab.SNAT, false, false, false},
		{"pinned masquerade", lab.Masquerade, true, true, false},
		{"pinned snat", lab.SNAT, true, true, false},
		{"pinned snat, flush turned off by reload", lab.SNAT, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := coreConfig("resilient")
			if !tc.pinned {
				cfg = strings.Replace(cfg, "[routing]\n", "[routing]\nmark_mask = 0\n", 1)
			}
			off := strings.Replace(cfg, "[routing]\n", "[routing]\nflush_conntrack = false\n", 1)
			if !tc.flush && !tc.reload {
				cfg = off
			}
			r := newRig(t, cfg)
			if err := r.lab.EnableNAT(r.ctx, tc.nat); err != nil {
				t.Fatal(err)
			}
			r.start()
			r.waitBoth()
			if tc.reload {
				r.writeConfig(off)
				if out, errOut, code := r.uplinkd("reload", "--socket", r.socket); code != 0 {
					t.Fatalf("reload: %d %s %s", code, out, errOut)
				}
			}
			sportA, sportB := r.sportVia("eth2"), r.sportVia("eth1")
			// Packet counts in the router's conntrack entries: what
			// flow A carried after the failure, whatever the load.
			if out, err := r.lab.Exec(r.ctx, lab.Router, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			sink := r.startSink(t)
			stopA := r.startSender(t, sportA)
			stopB := r.startSender(t, sportB)
			a, b := r.waitCtEntry(sportA), r.waitCtEntry(sportB)
			isp1, isp2 := lab.ISP1RouterAddr.Addr(), lab.ISP2RouterAddr.Addr()
			if a.TupleReply.IP.DestinationAddress != isp2 || b.TupleReply.IP.DestinationAddress != isp1 {
				t.Fatalf("before: flow A %s, flow B %s: want A translated to %s, B to %s", a.TupleReply, b.TupleReply, isp2, isp1)
			}

			mark := r.mark()
			if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
				t.Fatal(err)
			}
			r.waitTransition(mark, "isp2", "probing", 30*time.Second)
			switch {
			case tc.flush && tc.pinned:
				line := r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 family=ipv4 mark=0x[0-9a-f]+ deleted=[1-9]`), 20*time.Second)
				t.Log(line)
			case tc.flush:
				line := r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 address=203.0.113.2`), 20*time.Second)
				t.Log(line)
			case tc.pinned:
				r.waitLog(mark, regexp.MustCompile(`msg="not flushing conntrack entries \(flush_conntrack = false\)" uplink=isp2`), 20*time.Second)
			}
			// 500 datagrams, half a second of the sender's: a flow
			// re-established through isp1, or one that stays stuck.
			a2 := r.waitFlowCarried(sportA, a, 500)
			b2 := r.ctEntry(sportB)
			stopA()
			stopB()
			rep := sink()

			if b2.ID != b.ID || b2.TupleReply != b.TupleReply {
				t.Errorf("flow B's entry changed: %d %s, was %d %s", b2.ID, b2.TupleReply, b.ID, b.TupleReply)
			}
			fb := rep.Flows[netip.AddrPortFrom(isp1, uint16(sportB)).String()]
			if fb.Received == 0 || fb.Lost != 0 {
				t.Errorf("flow B through isp1: %+v, want every datagram", fb)
			}
			fa := rep.Flows[netip.AddrPortFrom(isp1, uint16(sportA)).String()]
			t.Logf("flow A after the failure: entry %s; arrived through isp1: %+v", a2.TupleReply, fa)
			if !tc.flush {
				if a2.ID != a.ID || fa.Received != 0 {
					t.Fatalf("without flush: flow A's entry %d %s (was %d), %d datagrams through isp1: want it stuck",
						a2.ID, a2.TupleReply, a.ID, fa.Received)
				}
				return
			}
			if a2.TupleReply.IP.DestinationAddress != isp1 || fa.Received < 100 {
				t.Fatalf("flow A: entry %s, %d datagrams through isp1: want it re-established through isp1", a2.TupleReply, fa.Received)
			}
		})
	}
}

// sportVia returns a source port whose flow from HostAddr to Target1:9000
// leaves through dev.
func (r *rig) sportVia(dev string) int {
	r.t.Helper()
	for p := 30000; p < 30200; p++ {
		got, err := r.lab.RouteGet(r.ctx, lab.Target1, lab.HostAddr, lab.RouterLANLink, p, 9000)
		if err != nil {
			r.t.Fatal(err)
		}
		if got == dev {
			return p
		}
	}
	r.t.Fatalf("no source port hashes to %s", dev)
	return 0
}

// startSink runs udpsink on Target1:9000; the returned func stops it and
// returns its report.
func (r *rig) startSink(t *testing.T) func() lab.SinkReport {
	t.Helper()
	dir := t.TempDir()
	report, logf := filepath.Join(dir, "sink.json"), filepath.Join(dir, "sink.log")
	cmd, err := r.lab.Start(r.ctx, lab.Inet, logf, filepath.Join(binDir, "labtool"), "udpsink",
		"--listen", netip.AddrPortFrom(lab.Target1, 9000).String(), "--report", report)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitLog(r.ctx, logf, "listening"); err != nil {
		t.Fatal(err)
	}
	return func() lab.SinkReport {
		time.Sleep(50 * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("udpsink: %v", err)
		}
		rep, err := lab.ReadSinkReport(report)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
}

// startSender sends a datagram a millisecond from HostAddr:sport to
// Target1:9000 until the returned func is called.
func (r *rig) startSender(t *testing.T, sport int) func() {
	t.Helper()
	cmd, err := r.lab.Start(r.ctx, lab.Host, "", filepath.Join(binDir, "labtool"), "udpsend",
		"--to", netip.AddrPortFrom(lab.Target1, 9000).String(), "--sport", strconv.Itoa(sport),
		"--interval", "1ms", "--duration", "60s")
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
}

// ctEntry returns the router's conntrack entry of the flow from
// HostAddr:sport.
func (r *rig) ctEntry(sport int) conntrack.Flow {
	r.t.Helper()
	f, ok := r.findCtEntry(sport)
	if !ok {
		r.t.Fatalf("no conntrack entry for %s:%d", lab.HostAddr, sport)
	}
	return f
}

// waitCtEntry waits for the router's conntrack entry of the flow from
// HostAddr:sport (its sender has just started) and returns it.
func (r *rig) waitCtEntry(sport int) conntrack.Flow {
	r.t.Helper()
	var f conntrack.Flow
	r.waitFor(fmt.Sprintf("a conntrack entry for %s:%d", lab.HostAddr, sport), 20*time.Second, func() bool {
		var ok bool
		f, ok = r.findCtEntry(sport)
		return ok
	})
	return f
}

// waitFlowCarried waits until the flow from HostAddr:sport, whose entry
// before a failure was was, has carried n more datagrams through the
// router: n in a new entry (the old one flushed) or n more in the old one
// (stuck). It returns the entry then. The router's namespace counts
// packets (nf_conntrack_acct).
func (r *rig) waitFlowCarried(sport int, was conntrack.Flow, n uint64) conntrack.Flow {
	r.t.Helper()
	var f conntrack.Flow
	base := uint64(0)
	if cur, ok := r.findCtEntry(sport); ok && cur.ID == was.ID {
		base = cur.CountersOrig.Packets
	}
	r.waitFor(fmt.Sprintf("%d datagrams of %s:%d through the router", n, lab.HostAddr, sport), 30*time.Second, func() bool {
		var ok bool
		if f, ok = r.findCtEntry(sport); !ok {
			return false
		}
		if f.ID == was.ID && f.TupleReply == was.TupleReply {
			return f.CountersOrig.Packets >= base+n
		}
		return f.CountersOrig.Packets >= n
	})
	return f
}

// findCtEntry looks up the router's conntrack entry of the flow from
// HostAddr:sport.
func (r *rig) findCtEntry(sport int) (conntrack.Flow, bool) {
	r.t.Helper()
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		r.t.Fatal(err)
	}
	defer ns.Close()
	c, err := conntrack.Dial(&netlink.Config{NetNS: int(ns)})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, f := range flows {
		if f.TupleOrig.IP.SourceAddress == lab.HostAddr && f.TupleOrig.Proto.SourcePort == uint16(sport) {
			return f, true
		}
	}
	return conntrack.Flow{}, false
}
