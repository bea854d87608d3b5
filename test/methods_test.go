package test

import (
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 15, probe methods: an uplink whose upstream drops ICMP but carries
// TCP stays active when it is probed by TCP as well: the TCP targets'
// SYN-ACK (a listener) or reset (a closed port) prove the path. A real
// blackhole still takes it out, by silence.
func TestHealthTCPWhenICMPDropped(t *testing.T) {
	cfg := strings.Replace(healthConfig(), `targets = ["198.18.0.1", "198.18.0.2"]`,
		`targets = ["198.18.0.1", "tcp://198.18.0.2:443", "tcp://198.18.0.2:9"]`, 1)
	r := newRig(t, cfg)
	r.startEmu("--tcp", "198.18.0.2:443")
	r.start()
	r.waitBoth()

	mark := r.mark()
	r.setISP(lab.ISP2, "blackhole") // the emulator drops echo requests only
	// Long enough for many silences and failed rounds, were ICMP alone.
	time.Sleep(5 * time.Second)
	if trs := r.transitions(mark, lab.ISP2); len(trs) > 0 {
		t.Fatalf("isp2 with ICMP dropped and TCP working: %+v", trs)
	}
	st := uplinkOf(t, r.status(), lab.ISP2)
	if len(st.Probe.Targets) != 3 {
		t.Fatalf("status targets %+v", st.Probe.Targets)
	}
	for i, want := range []struct {
		address, method string
		lossy           bool
	}{{"198.18.0.1", "icmp", true}, {"tcp://198.18.0.2:443", "tcp", false}, {"tcp://198.18.0.2:9", "tcp", false}} {
		got := st.Probe.Targets[i]
		if got.Address != want.address || got.Method != want.method || got.Stats.Probes == 0 || (got.Stats.Loss > 0) != want.lossy {
			t.Errorf("status target %d: %+v, want %s by %s, lossy %v", i, got, want.address, want.method, want.lossy)
		}
	}

	// Everything dropped: out. (By failed rounds or silence: with the
	// ICMP target's losses in the window, a silence needs more unanswered
	// probes than usual.)
	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, lab.ISP2, "probing", 10*time.Second)
	if !silentReason.MatchString(line) && !strings.Contains(line, "consecutive probe rounds failed") {
		t.Errorf("transition: %s", line)
	}
	r.waitOnly("eth1")
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, lab.ISP2, "active", 10*time.Second)
}
