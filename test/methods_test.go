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

// Issue 15, captive portal: ISP2's upstream answers pings but redirects
// the web. With an HTTP check expecting 204 among its targets, ISP2 leaves
// the balance although its ICMP targets answer, and comes back once the
// portal is gone. Status shows the check and its method.
func TestHealthCaptivePortal(t *testing.T) {
	cfg := strings.Replace(healthConfig(`check_interval = "1s"`, `check_timeout = "500ms"`), `targets = ["198.18.0.1", "198.18.0.2"]`,
		`targets = ["198.18.0.1", "198.18.0.2", "http://198.18.0.3/generate_204"]`, 1)
	r := newRig(t, cfg)
	r.startEmu("--http", "198.18.0.3:80")
	r.start()
	r.waitBoth()

	mark := r.mark()
	r.setISP(lab.ISP2, "captive")
	line := r.waitTransition(mark, lab.ISP2, "probing", 10*time.Second)
	t.Logf("captive: %s", line)
	r.waitOnly("eth1")
	st := uplinkOf(t, r.status(), lab.ISP2)
	if len(st.Probe.Targets) != 3 {
		t.Fatalf("status targets %+v", st.Probe.Targets)
	}
	if c := st.Probe.Targets[2]; c.Address != "http://198.18.0.3/generate_204" || c.Method != "http" || c.Stats.Lost == 0 {
		t.Errorf("status of the check %+v, want http with losses", c)
	}
	if icmp := st.Probe.Targets[0]; icmp.Method != "icmp" || icmp.Stats.Lost != 0 {
		t.Errorf("status of the ICMP target %+v, want no loss", icmp)
	}
	if !st.Carrier || st.InBalance {
		t.Errorf("isp2 behind a captive portal: %+v", st)
	}

	mark = r.mark()
	r.setISP(lab.ISP2, "healthy")
	r.waitTransition(mark, lab.ISP2, "active", 10*time.Second)
	r.waitBoth()
	if trs := r.transitions(mark, lab.ISP1); len(trs) > 0 {
		t.Errorf("isp1 moved: %+v", trs)
	}
}

// Issue 15, DNS checks: an uplink whose resolver answers is active; one
// whose resolver does not (nothing listens on that port) never enters the
// balance, although its ICMP targets answer.
func TestHealthDNSCheck(t *testing.T) {
	cfg := strings.Replace(healthConfig(`check_interval = "1s"`, `check_timeout = "500ms"`), `targets = ["198.18.0.1", "198.18.0.2"]`,
		`targets = ["198.18.0.1", "198.18.0.2", "dns://198.18.0.3/example.net"]`, 1)
	// ISP2 asks a port where no resolver listens.
	cfg = strings.Replace(cfg, "table = 200\n", "table = 200\nprobe_targets = [\"198.18.0.1\", \"dns://198.18.0.3:5353\"]\n", 1)
	r := newRig(t, cfg)
	r.startEmu("--dns", "198.18.0.3:53")
	r.start()
	r.waitOnly("eth1")
	time.Sleep(3 * time.Second) // three runs of the check
	st := r.status()
	if s := uplinkOf(t, st, lab.ISP2); s.State != "probing" || len(s.Probe.Targets) != 2 || s.Probe.Targets[1].Method != "dns" || s.Probe.Targets[1].Stats.Lost == 0 {
		t.Errorf("isp2 with a dead resolver: %+v", s)
	}
	if s := uplinkOf(t, st, lab.ISP1); s.State != "active" || s.Probe.Targets[2].Address != "dns://198.18.0.3/example.net" || s.Probe.Targets[2].Stats.Lost != 0 {
		t.Errorf("isp1 with a working resolver: %+v", s)
	}
}
