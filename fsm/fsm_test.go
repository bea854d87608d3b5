package fsm

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type step struct {
	op   string // "up", "down", "ok", "fail", "lossy", "slow", "clean", "mid", "gw", "silent", "tick"
	want State
	tr   bool          // a transition is expected
	dt   time.Duration // clock advance before the step; 0: one second
}

// Measured qualities fed with good rounds.
var (
	clean = Quality{Known: true, Probes: 50, Loss: 0.02, RTT: 20 * time.Millisecond}
	lossy = Quality{Known: true, Probes: 50, Loss: 0.40, RTT: 20 * time.Millisecond}
	mid   = Quality{Known: true, Probes: 50, Loss: 0.20, RTT: 20 * time.Millisecond}
	slow  = Quality{Known: true, Probes: 50, Loss: 0, RTT: 400 * time.Millisecond}
)

func TestMachine(t *testing.T) {
	probed := Params{Probed: true, UpAfter: 3, DownAfter: 2}
	quality := probed
	quality.DegradedLoss, quality.RecoverLoss = 0.30, 0.10
	quality.DegradedRTT, quality.RecoverRTT = 300*time.Millisecond, 200*time.Millisecond
	active := []step{{"up", Probing, true, 0}, {"ok", Probing, false, 0}, {"ok", Probing, false, 0}, {"ok", Active, true, 0}}
	then := func(s ...step) []step { return append(append([]step(nil), active...), s...) }
	tests := []struct {
		name  string
		p     Params
		steps []step
	}{
		{"starts down and ignores probes while down", probed, []step{
			{"ok", Down, false, 0}, {"fail", Down, false, 0}, {"down", Down, false, 0},
		}},
		{"up_after good rounds make it active", probed, active},
		{"a failure resets the good count", probed, []step{
			{"up", Probing, true, 0}, {"ok", Probing, false, 0}, {"ok", Probing, false, 0}, {"fail", Probing, false, 0},
			{"ok", Probing, false, 0}, {"ok", Probing, false, 0}, {"ok", Active, true, 0},
		}},
		{"down_after failures leave active; a good round resets", probed, then(
			step{"fail", Active, false, 0}, step{"ok", Active, false, 0}, step{"fail", Active, false, 0}, step{"fail", Probing, true, 0},
		)},
		{"link down from any state, up again restarts probing", probed, then(
			step{"down", Down, true, 0}, step{"up", Probing, true, 0}, step{"ok", Probing, false, 0}, step{"ok", Probing, false, 0}, step{"ok", Active, true, 0},
		)},
		{"counts do not survive a link flap", probed, []step{
			{"up", Probing, true, 0}, {"ok", Probing, false, 0}, {"ok", Probing, false, 0},
			{"down", Down, true, 0}, {"up", Probing, true, 0}, {"ok", Probing, false, 0},
		}},
		{"repeated link up is not a transition", probed, []step{
			{"up", Probing, true, 0}, {"up", Probing, false, 0},
		}},
		{"loss degrades, and recovers only below the lower threshold", quality, then(
			step{"lossy", Degraded, true, 0}, step{"lossy", Degraded, false, 0}, step{"mid", Degraded, false, 0},
			step{"clean", Active, true, 0}, step{"mid", Active, false, 0}, step{"lossy", Degraded, true, 0},
		)},
		{"RTT degrades and recovers", quality, then(
			step{"slow", Degraded, true, 0}, step{"clean", Active, true, 0},
		)},
		{"an unknown quality judges nothing", quality, then(
			step{"ok", Active, false, 0}, step{"lossy", Degraded, true, 0}, step{"ok", Degraded, false, 0},
		)},
		{"thresholds off: quality is ignored", probed, then(
			step{"lossy", Active, false, 0}, step{"slow", Active, false, 0},
		)},
		{"a degraded uplink fails like an active one", quality, then(
			step{"lossy", Degraded, true, 0}, step{"fail", Degraded, false, 0}, step{"fail", Probing, true, 0},
		)},
		{"probes that pass with bad quality lead to degraded", quality, []step{
			{"up", Probing, true, 0}, {"lossy", Probing, false, 0}, {"lossy", Probing, false, 0}, {"lossy", Degraded, true, 0},
		}},
		{"gateway failure leaves the balance at once", probed, then(
			step{"gw", Probing, true, 0}, step{"gw", Probing, false, 0}, step{"ok", Probing, false, 0},
			step{"ok", Probing, false, 0}, step{"ok", Active, true, 0},
		)},
		{"silent probes leave the balance at once, from degraded too", quality, then(
			step{"silent", Probing, true, 0}, step{"fail", Probing, false, 0}, step{"silent", Probing, false, 0},
			step{"ok", Probing, false, 0}, step{"ok", Probing, false, 0}, step{"clean", Active, true, 0},
			step{"lossy", Degraded, true, 0}, step{"silent", Probing, true, 0},
		)},
		{"gateway failure resets the good count while probing", probed, []step{
			{"up", Probing, true, 0}, {"ok", Probing, false, 0}, {"ok", Probing, false, 0}, {"gw", Probing, false, 0},
			{"ok", Probing, false, 0}, {"ok", Probing, false, 0}, {"ok", Active, true, 0},
		}},
		{"a new address takes it back to probing", quality, then(
			step{"lossy", Degraded, true, 0}, step{"renum", Probing, true, 0}, step{"ok", Probing, false, 0},
			step{"renum", Probing, false, 0}, step{"ok", Probing, false, 0}, step{"ok", Probing, false, 0}, step{"ok", Active, true, 0},
			step{"renum", Probing, true, 0},
		)},
		{"a new address changes nothing while down or in carrier-only mode", Params{}, []step{
			{"renum", Down, false, 0}, {"up", Active, true, 0}, {"renum", Active, false, 0},
		}},
		{"a new gateway is explained, not a transition", probed, then(
			step{"explain", Active, false, 0}, step{"fail", Active, false, 0}, step{"fail", Probing, true, 0},
		)},
		{"carrier-only mode", Params{}, []step{
			{"ok", Down, false, 0}, {"up", Active, true, 0}, {"up", Active, false, 0}, {"fail", Active, false, 0},
			{"gw", Active, false, 0}, {"down", Down, true, 0}, {"up", Active, true, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			u := New("isp2", tt.p, now)
			for i, s := range tt.steps {
				now = now.Add(cmpOr(s.dt, time.Second))
				tr, ok := apply(u, s.op, now)
				if ok != s.tr || u.State() != s.want {
					t.Fatalf("step %d (%s): state %s transition %v, want %s transition %v (reason %q)",
						i, s.op, u.State(), ok, s.want, s.tr, u.Reason())
				}
				if ok {
					if tr.To != s.want || tr.Uplink != "isp2" || tr.Reason == "" || !tr.At.Equal(now) {
						t.Fatalf("step %d: bad transition %+v", i, tr)
					}
					if !u.Since().Equal(now) || u.Reason() != tr.Reason {
						t.Fatalf("step %d: since/reason not updated: %v %q", i, u.Since(), u.Reason())
					}
				}
			}
		})
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// apply feeds one step to u.
func apply(u *Uplink, op string, now time.Time) (Transition, bool) {
	switch op {
	case "up":
		return u.LinkUp("link eth2 usable", now)
	case "down":
		return u.LinkDown("carrier lost on eth2", now)
	case "ok":
		return u.ProbeRound(true, Quality{}, now)
	case "fail":
		return u.ProbeRound(false, Quality{}, now)
	case "clean":
		return u.ProbeRound(true, clean, now)
	case "lossy":
		return u.ProbeRound(true, lossy, now)
	case "mid":
		return u.ProbeRound(true, mid, now)
	case "slow":
		return u.ProbeRound(true, slow, now)
	case "gw":
		return u.GatewayFailed("gateway 203.0.113.1 does not answer ARP", now)
	case "silent":
		return u.ProbesSilent("no reply for 700ms to 6 probes", now)
	case "tick":
		return u.Tick(now)
	case "explain":
		u.Explain("gateway changed from 198.51.100.1 to 198.51.100.3")
		return Transition{}, false
	case "renum":
		return u.Renumbered("address on eth2 changed from 192.0.2.10 to 192.0.2.11", now)
	}
	panic("unknown op " + op)
}

func TestTransitionReasons(t *testing.T) {
	now := time.Unix(0, 0)
	p := Params{Probed: true, UpAfter: 2, DownAfter: 2, DegradedLoss: 0.3, RecoverLoss: 0.1,
		DegradedRTT: 300 * time.Millisecond, RecoverRTT: 200 * time.Millisecond}
	u := New("isp1", p, now)
	var got []string
	record := func(tr Transition, ok bool) {
		if ok {
			got = append(got, tr.String())
		}
	}
	record(u.LinkUp("eth1 up with carrier and 198.51.100.2/24", now))
	record(u.ProbeRound(true, Quality{}, now))
	record(u.ProbeRound(true, Quality{}, now))
	record(u.ProbeRound(true, lossy, now))
	record(u.ProbeRound(true, clean, now))
	record(u.ProbeRound(true, slow, now))
	record(u.ProbeRound(true, Quality{Known: true, Probes: 50, Loss: 0.07, RTT: 240 * time.Microsecond}, now))
	record(u.ProbeRound(true, slow, now))
	record(u.ProbeRound(false, Quality{}, now))
	record(u.ProbeRound(false, Quality{}, now))
	record(u.LinkDown("carrier lost on eth1", now))
	want := []string{
		"isp1: down -> probing (eth1 up with carrier and 198.51.100.2/24, waiting for probes)",
		"isp1: probing -> active (2 consecutive probe rounds passed)",
		"isp1: active -> degraded (loss 40% over the last 50 probes (degraded_loss 30%))",
		"isp1: degraded -> active (loss 2% and RTT 20ms over the last 50 probes (recover_loss 10%, recover_rtt 200ms))",
		"isp1: active -> degraded (RTT 400ms over the last 50 probes (degraded_rtt 300ms))",
		"isp1: degraded -> active (loss 7% and RTT 200µs over the last 50 probes (recover_loss 10%, recover_rtt 200ms))",
		"isp1: active -> degraded (RTT 400ms over the last 50 probes (degraded_rtt 300ms))",
		"isp1: degraded -> probing (2 consecutive probe rounds failed)",
		"isp1: probing -> down (carrier lost on eth1)",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("transitions (-want +got):\n%s", d)
	}
}

// damped is the flap damping of these tests: the third flap of a series
// holds the uplink for 10s, then 20s, 40s, at most 60s.
var damped = Params{
	Probed: true, UpAfter: 2, DownAfter: 2,
	FlapLimit: 3, FlapWindow: time.Minute, FlapHold: 10 * time.Second, FlapHoldMax: time.Minute,
}

func TestFlapDamping(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	u := New("isp2", damped, now)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	type event struct {
		at   time.Duration
		op   string
		want State
		tr   bool
		hold string // substring the reason must contain, or "-" for none
	}
	// Link up at 0; active after two good rounds; each "down" is a flap.
	cycle := func(base time.Duration) []event {
		return []event{
			{base, "up", Probing, true, "-"},
			{base + ms(100), "ok", Probing, false, "-"},
			{base + ms(200), "ok", Active, true, "-"},
		}
	}
	var evs []event
	evs = append(evs, cycle(0)...)
	evs = append(evs, event{ms(1000), "down", Down, true, "-"}) // flap 1
	evs = append(evs, cycle(ms(2000))...)
	evs = append(evs, event{ms(3000), "down", Down, true, "-"}) // flap 2
	evs = append(evs, cycle(ms(4000))...)
	evs = append(evs,
		event{ms(5000), "down", Down, true, "held for 10s after 3 flaps less than 60s apart"},
		// Held: the link comes back, but the uplink stays down.
		event{ms(6000), "up", Down, false, "held for 10s"},
		event{ms(7000), "down", Down, false, "held for 10s"},
		event{ms(8000), "up", Down, false, "held for 10s"},
		event{ms(14999), "tick", Down, false, "held for 10s"},
		// The hold ends; the link is usable, so probing starts.
		event{ms(15000), "tick", Probing, true, "-"},
		event{ms(15100), "ok", Probing, false, "-"},
		event{ms(15200), "ok", Active, true, "-"},
		// A fourth flap, 10s after the hold ended: twice the hold.
		event{ms(25200), "down", Down, true, "held for 20s after 4 flaps"},
		event{ms(26000), "up", Down, false, "held for 20s"},
		// Held in probing: good rounds do not make it active.
		event{ms(45200), "tick", Probing, true, "-"},
		event{ms(45300), "ok", Probing, false, "-"},
		event{ms(45400), "ok", Active, true, "-"},
		event{ms(45500), "fail", Active, false, "-"},
		event{ms(45600), "fail", Probing, true, "held for 40s after 5 flaps"},
		event{ms(45700), "ok", Probing, false, "held for 40s"},
		event{ms(45800), "ok", Probing, false, "held for 40s"},
		event{ms(45900), "ok", Probing, false, "held for 40s"},
		// When the hold ends, the passed rounds count at once.
		event{ms(85600), "tick", Active, true, "-"},
		// Quiet for longer than the window: a new series, no hold.
		event{ms(85600 + 61000), "down", Down, true, "-"},
		event{ms(85600 + 62000), "up", Probing, true, "-"},
	)
	for i, e := range evs {
		now = at(e.at)
		tr, ok := apply(u, e.op, now)
		if ok != e.tr || u.State() != e.want {
			t.Fatalf("event %d (%s at %v): state %s transition %v, want %s transition %v (reason %q)",
				i, e.op, e.at, u.State(), ok, e.want, e.tr, u.Reason())
		}
		held := strings.Contains(u.Reason(), "held")
		if e.hold == "-" && held || e.hold != "-" && !strings.Contains(u.Reason(), e.hold) {
			t.Fatalf("event %d (%s at %v): reason %q, want hold %q", i, e.op, e.at, u.Reason(), e.hold)
		}
		if ok && tr.Reason != u.Reason() {
			t.Fatalf("event %d: transition reason %q, state reason %q", i, tr.Reason, u.Reason())
		}
		if d, ok := u.Deadline(); ok != held || ok && !d.After(now) {
			t.Fatalf("event %d (%s at %v): deadline %v, %v while held=%v", i, e.op, e.at, d.Sub(t0), ok, held)
		}
	}
}

func TestFlapHoldCapped(t *testing.T) {
	now := time.Unix(0, 0)
	u := New("isp1", damped, now)
	var holds []time.Duration
	for range 8 {
		u.LinkUp("up", now)
		u.ProbeRound(true, Quality{}, now)
		u.ProbeRound(true, Quality{}, now)
		if u.State() != Active {
			t.Fatalf("state %s, want active (reason %q)", u.State(), u.Reason())
		}
		u.LinkDown("carrier lost", now)
		if until, ok := u.Held(); ok {
			holds = append(holds, until.Sub(now))
			now = until
			u.Tick(now)
		}
		now = now.Add(time.Second)
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute, time.Minute}
	if d := cmp.Diff(want, holds); d != "" {
		t.Errorf("holds (-want +got):\n%s", d)
	}
}

// A link whose carrier goes down and up every second for 30 seconds, with
// the default probe settings (a round every 200ms, four to pass) and
// damping (third flap holds 30s): a handful of transitions, not sixty.
func TestFlappingCarrierIsDamped(t *testing.T) {
	p := Params{
		Probed: true, UpAfter: 4, DownAfter: 4,
		FlapLimit: 3, FlapWindow: time.Minute, FlapHold: 30 * time.Second, FlapHoldMax: 10 * time.Minute,
	}
	for _, period := range []time.Duration{time.Second, 2 * time.Second} {
		t0 := time.Unix(0, 0)
		u := New("isp2", p, t0)
		u.LinkUp("up", t0)
		for range 4 {
			u.ProbeRound(true, Quality{}, t0)
		}
		var trs []Transition
		record := func(tr Transition, ok bool) {
			if ok {
				trs = append(trs, tr)
			}
		}
		// Carrier toggles every period/2; rounds every 200ms while up.
		half := period / 2
		for now := t0; now.Sub(t0) < 30*time.Second; now = now.Add(100 * time.Millisecond) {
			if d, ok := u.Deadline(); ok && !now.Before(d) {
				record(u.Tick(now))
			}
			phase := now.Sub(t0) % period
			switch {
			case phase == 0:
				record(u.LinkDown("no carrier", now))
			case phase == half:
				record(u.LinkUp("carrier", now))
			case phase > half && now.Sub(t0)%(200*time.Millisecond) == 0:
				record(u.ProbeRound(true, Quality{}, now))
			}
		}
		if len(trs) > 7 {
			t.Errorf("flapping every %v: %d transitions, want at most 7:\n%v", half, len(trs), trs)
		}
		last := trs[len(trs)-1]
		if !strings.Contains(last.Reason, "held for 30s after 3 flaps") {
			t.Errorf("flapping every %v: last transition %v does not tell the hold", half, last)
		}
	}
}

// TestSilentReasonKept: the failed round that follows a silence does not
// replace its reason with "probes failing".
func TestSilentReasonKept(t *testing.T) {
	now := time.Unix(0, 0)
	u := New("isp1", Params{Probed: true, UpAfter: 1, DownAfter: 4}, now)
	u.LinkUp("eth1 up", now)
	u.ProbeRound(true, Quality{}, now)
	if _, ok := u.ProbesSilent("no reply for 700ms to 6 probes", now); !ok || u.State() != Probing {
		t.Fatalf("silence: state %s", u.State())
	}
	u.ProbeRound(false, Quality{}, now)
	if got := u.Reason(); got != "no reply for 700ms to 6 probes" {
		t.Errorf("reason after a failed round = %q", got)
	}
}

func TestFailureInReason(t *testing.T) {
	now := time.Unix(0, 0)
	u := New("isp1", Params{Probed: true, UpAfter: 1, DownAfter: 2}, now)
	u.LinkUp("eth1 up", now)
	u.ProbeRound(true, Quality{}, now)
	check := Quality{Failure: "check http://198.18.0.3/generate_204 failed: status 302, want 204"}
	u.ProbeRound(false, check, now)
	tr, ok := u.ProbeRound(false, check, now)
	if want := "2 consecutive probe rounds failed: " + check.Failure; !ok || tr.Reason != want {
		t.Errorf("transition %v, %v; want reason %q", tr, ok, want)
	}
}

func TestExplain(t *testing.T) {
	now := time.Unix(1000, 0)
	u := New("isp1", Params{}, now)
	u.Explain("gateway changed")
	if u.Reason() == "gateway changed" {
		t.Fatal("a down uplink took an explanation")
	}
	u.LinkUp("eth1 up", now)
	u.Explain("gateway changed from 198.51.100.1 to 198.51.100.3")
	if u.State() != Active || u.Reason() != "gateway changed from 198.51.100.1 to 198.51.100.3" {
		t.Fatalf("%s %q", u.State(), u.Reason())
	}
}
