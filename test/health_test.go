package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Acceptance 1 of the health issue: with the default probe settings, an
// upstream that drops everything takes the uplink out of the balance after
// down_after failed rounds; healed, it comes back.
func TestHealthBlackhole(t *testing.T) {
	r := newRig(t, healthConfig())
	r.startEmu()
	r.start()
	r.waitBoth()

	mark := r.mark()
	start := time.Now()
	r.setISP(lab.ISP2, "blackhole")
	line := r.waitTransition(mark, "isp2", "probing", 10*time.Second)
	t.Logf("isp2 left the balance %v after the blackhole started (the figures test measures it properly)", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(line, "from=active") || !strings.Contains(line, "no reply for") {
		t.Fatalf("transition: %s", line)
	}
	r.waitOnly("eth1")

	mark = r.mark()
	r.setISP(lab.ISP2, "healthy")
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
}

// Acceptance 2, short: independent random loss on every target, 5% behind
// ISP1 and 10% behind ISP2, causes no transition at all. The figures test
// runs it for two minutes.
func TestHealthRandomLoss(t *testing.T) {
	r := newRig(t, healthConfig())
	r.startEmu()
	r.start()
	r.waitBoth()
	mark := r.mark()
	before, err := r.emu.Stats(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.setISP(lab.ISP1, "loss=5%")
	r.setISP(lab.ISP2, "loss=10%")
	const soak = 25 * time.Second
	time.Sleep(soak)
	after, err := r.emu.Stats(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, isp := range []string{lab.ISP1, lab.ISP2} {
		a, b := after[isp], before[isp]
		req, drop := a.Requests-b.Requests, a.Dropped-b.Dropped
		t.Logf("%s: %d probes in %v (%.1f/s), %.1f%% dropped", isp, req, soak, float64(req)/soak.Seconds(), 100*float64(drop)/float64(req))
		if drop == 0 {
			t.Errorf("%s: the emulator dropped nothing", isp)
		}
	}
	if trs := r.transitions(mark, ""); len(trs) > 0 {
		t.Fatalf("random loss caused transitions: %+v", trs)
	}
	r.waitBoth()
}

// Acceptance 3: 40% loss, then RTT above degraded_rtt, make ISP2 degraded,
// out of the balance while ISP1 is active but carrying traffic when ISP1
// is down; healed, it is active again, with no transition in between.
// Three targets, every setting at its default.
func TestHealthDegraded(t *testing.T) {
	r := newRigFor(t, strings.Replace(healthConfig(), `targets = ["198.18.0.1", "198.18.0.2"]`,
		`targets = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]`, 1), 4*time.Minute)
	r.startEmu()
	r.start()
	r.waitBoth()

	for _, c := range []struct{ mode, reason string }{
		{"loss=40%", "loss "},
		{"slow", "RTT "},
	} {
		mark := r.mark()
		r.setISP(lab.ISP2, c.mode)
		line := r.waitTransition(mark, "isp2", "degraded", 45*time.Second)
		if !strings.Contains(line, "from=active") || !strings.Contains(line, `reason="`+c.reason) {
			t.Fatalf("%s: %s", c.mode, line)
		}
		r.waitOnly("eth1")
		// Status shows the statistics the decision was made on.
		st := uplinkOf(t, r.status(), lab.ISP2).Probe
		if c.mode == "loss=40%" && (!st.Stats.Full || st.Stats.Loss < 20) {
			t.Errorf("%s: status statistics %+v", c.mode, st.Stats)
		}
		if c.mode == "slow" && st.Stats.RTT < 250 {
			t.Errorf("%s: status statistics %+v", c.mode, st.Stats)
		}
		if len(st.Targets) != 3 || st.Targets[2].Stats.Probes == 0 {
			t.Errorf("%s: status targets %+v", c.mode, st.Targets)
		}

		if c.mode == "slow" {
			// With no uplink active, a degraded one carries the traffic.
			dmark := r.mark()
			if err := r.lab.CarrierDown(r.ctx, lab.ISP1); err != nil {
				t.Fatal(err)
			}
			r.waitTransition(dmark, "isp1", "down", 5*time.Second)
			r.waitOnly("eth2")
			if err := r.lab.CarrierUp(r.ctx, lab.ISP1); err != nil {
				t.Fatal(err)
			}
			r.waitTransition(dmark, "isp1", "active", 10*time.Second)
			r.waitOnly("eth1")
		}

		r.setISP(lab.ISP2, "healthy")
		r.waitTransition(mark, "isp2", "active", 45*time.Second)
		r.waitBoth()
		want := []transition{{"isp2", "active", "degraded", ""}, {"isp2", "degraded", "active", ""}}
		got := r.transitions(mark, "isp2")
		for _, tr := range got {
			t.Logf("%s: %s -> %s (%s)", c.mode, tr.from, tr.to, tr.reason)
		}
		for i := range got {
			got[i].reason = ""
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: isp2 went through %+v, want exactly %+v", c.mode, got, want)
		}
	}
}

// Acceptance 4: ISP2's carrier flaps every second for 30 seconds. Damping
// holds the uplink out after its third flap: a handful of transitions, a
// reason that tells the hold, and the uplink back once the link is stable
// and the hold has ended.
func TestHealthFlapDamped(t *testing.T) {
	r := newRigFor(t, healthConfig(), 4*time.Minute)
	r.start()
	r.waitBoth()
	mark := r.mark()
	start := time.Now()
	for i := 0; time.Since(start) < 30*time.Second; i++ {
		var err error
		if i%2 == 0 {
			err = r.lab.CarrierDown(r.ctx, lab.ISP2)
		} else {
			err = r.lab.CarrierUp(r.ctx, lab.ISP2)
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * time.Second)))
	}
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	trs := r.transitions(mark, "isp2")
	t.Logf("%d transitions in 30s of flapping:", len(trs))
	for _, tr := range trs {
		t.Logf("  %s -> %s (%s)", tr.from, tr.to, tr.reason)
	}
	// Without damping, about 45 (down, probing, active every 2s).
	if len(trs) > 10 {
		t.Errorf("%d transitions, want a handful", len(trs))
	}
	held := false
	for _, tr := range trs {
		held = held || strings.Contains(tr.reason, "held for 30s after 3 flaps less than 60s apart")
	}
	if !held {
		t.Error("no transition reason tells the hold")
	}
	if u := uplinkOf(t, r.status(), lab.ISP2); u.Probe.HeldUntil.IsZero() || !strings.Contains(u.Reason, "held for") {
		t.Errorf("status does not show the hold: %+v", u)
	}
	// Once the link is stable the uplink returns, when its hold (doubled
	// per further flap) has ended.
	r.waitFor("isp2 active again", 2*time.Minute, func() bool {
		trs := r.transitions(mark, "isp2")
		return len(trs) > 0 && trs[len(trs)-1].to == "active"
	})
	r.waitBoth()
}

// Acceptance 5: when the gateway stops answering ARP, the kernel's
// neighbour entry fails and the uplink leaves the balance on that event,
// long before its (deliberately slow) probe rounds would run out. The
// router's neighbour timers on eth2 are shortened so that the kernel gives
// up within about two seconds instead of ten.
func TestHealthGatewayARP(t *testing.T) {
	const (
		interval  = time.Second
		downAfter = 10
	)
	r := newRig(t, healthConfig(fmt.Sprintf(`interval = "%v"`, interval), `timeout = "2s"`, fmt.Sprintf("down_after = %d", downAfter)))
	if _, err := r.lab.Exec(r.ctx, lab.Router, "sysctl", "-qw",
		"net.ipv4.neigh.eth2.base_reachable_time_ms=500", "net.ipv4.neigh.eth2.delay_first_probe_time=1",
		"net.ipv4.neigh.eth2.retrans_time_ms=100", "net.ipv4.neigh.eth2.ucast_solicit=2"); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitBoth()

	mark := r.mark()
	start := time.Now()
	if err := r.lab.GatewayARP(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, "isp2", "probing", 20*time.Second)
	took := time.Since(start)
	t.Logf("isp2 left the balance %v after its gateway stopped answering ARP: %s", took.Round(time.Millisecond), line)
	if !strings.Contains(line, `reason="gateway 203.0.113.1 does not answer ARP on eth2"`) {
		t.Fatalf("transition: %s", line)
	}
	// The probes lose every reply from the start; they would need
	// down_after rounds.
	if rounds := time.Duration(downAfter) * interval; took >= rounds {
		t.Errorf("left after %v, not before %d probe rounds (%v)", took, downAfter, rounds)
	}
	r.waitOnly("eth1")

	mark = r.mark()
	if err := r.lab.GatewayARP(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "active", 30*time.Second)
	r.waitBoth()
}

// Without targets, gateway probing checks each uplink's gateway: it notices
// a dead gateway, not a broken upstream. An uplink can opt out into
// carrier-only mode.
func TestHealthGatewayProbing(t *testing.T) {
	cfg := strings.Replace(healthConfig(`gateway = true`), `targets = ["198.18.0.1", "198.18.0.2"]`, `targets = []`, 1)
	cfg = strings.Replace(cfg, "table = 100\n", "table = 100\nprobe_gateway = false\n", 1)
	r := newRig(t, cfg)
	mark := r.mark()
	r.start()
	r.waitBoth()
	if l := r.waitTransition(mark, "isp1", "active", time.Second); !strings.Contains(l, "carrier-only mode") {
		t.Errorf("isp1: %s", l)
	}
	if l := r.waitTransition(mark, "isp2", "active", time.Second); !strings.Contains(l, "consecutive probe rounds passed") {
		t.Errorf("isp2: %s", l)
	}

	// Upstream broken, gateway alive: gateway probing cannot tell.
	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if trs := r.transitions(mark, ""); len(trs) > 0 {
		t.Fatalf("transitions with a live gateway: %+v", trs)
	}
	// The gateway itself gone.
	r.ip(lab.ISP2, "addr", "del", lab.ISP2Gateway.String()+"/24", "dev", "down0")
	line := r.waitTransition(mark, "isp2", "probing", 10*time.Second)
	if !strings.Contains(line, "consecutive probe rounds failed") && !strings.Contains(line, "does not answer ARP") && !silentReason.MatchString(line) {
		t.Fatalf("transition: %s", line)
	}
	r.waitOnly("eth1")
	mark = r.mark()
	r.ip(lab.ISP2, "addr", "add", lab.ISP2Gateway.String()+"/24", "dev", "down0")
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitBoth()
}
