package lab_test

import (
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// TestFlows: 256 flows from both LAN addresses start on isp1; when the
// router's route moves to isp2 under masquerade, UDP flows follow (the
// sink sees their new source) and TCP connections are reset by the sink,
// which sees segments from an unknown address, and reconnect through isp2.
func TestFlows(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	if err := l.EnableNAT(ctx, lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	f, err := l.StartFlows(ctx, lab.FlowOptions{TCP: 128, UDP: 128, Interval: 20 * time.Millisecond, HangAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	waitFlows(t, f, "every flow echoing through isp1", func(s lab.FlowSummary) bool {
		return s.Echoing == 256 && s.ByUplink[lab.ISP1] == 256
	})
	s := f.Snapshot().Summary()
	for _, src := range []string{"192.0.2.10", "192.0.2.11"} {
		if n := s.ByUplinkSources[src+" "+lab.ISP1]; n != 128 {
			t.Errorf("%d flows from %s, want 128", n, src)
		}
	}

	moved := time.Now()
	mustIP(t, l, lab.Router, "route", "replace", "default", "via", lab.ISP2Gateway.String(), "dev", "eth2")
	waitFlows(t, f, "every flow echoing through isp2", func(s lab.FlowSummary) bool {
		return s.Echoing == 256 && s.ByUplink[lab.ISP2] == 256
	})
	snap := f.Snapshot()
	t.Log(snap.Summary())
	if n := len(snap.MovedAfter(moved)); n != 256 {
		t.Errorf("%d flows moved, want 256", n)
	}
	for _, fl := range snap.Flows {
		if got := fl.Sources[lab.ISP2]; got == 0 {
			t.Errorf("flow %d: the sink never saw it from isp2: %v", fl.Flow, fl.Sources)
		}
		if fl.Proto == "tcp" && (fl.Resets == 0 || fl.Reconnects == 0) {
			t.Errorf("TCP flow %d moved without a reset: %+v", fl.Flow, fl)
		}
		if fl.Proto == "udp" && (fl.Resets != 0 || fl.Reconnects != 0) {
			t.Errorf("UDP flow %d: resets %d, reconnects %d", fl.Flow, fl.Resets, fl.Reconnects)
		}
	}

	// New flows, opened now, take isp2 from their first echo.
	ids, err := f.Add(ctx, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 32 || ids[0] != 256 {
		t.Fatalf("Add returned flows %v", ids)
	}
	waitFlows(t, f, "the new flows echoing", func(lab.FlowSummary) bool {
		return f.Snapshot().Only(ids).Summary().Echoing == 32
	})
	added := f.Snapshot().Only(ids).Summary()
	if added.ByUplink[lab.ISP2] != 32 || added.Moved != 0 {
		t.Fatalf("new flows: %v", added)
	}
	if n := added.ByUplinkSources["192.0.2.11 "+lab.ISP2]; n != 16 {
		t.Errorf("%d new flows from 192.0.2.11, want 16", n)
	}
}

func waitFlows(t *testing.T, f *lab.Flows, what string, cond func(lab.FlowSummary) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := f.Snapshot().Summary()
		if cond(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
