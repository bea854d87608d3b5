package fsm

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type step struct {
	op   string // "up", "down", "ok", "fail", "degrade", "recover"
	want State
	tr   bool // a transition is expected
}

func TestMachine(t *testing.T) {
	probed := Params{Probed: true, UpAfter: 3, DownAfter: 2}
	tests := []struct {
		name  string
		p     Params
		steps []step
	}{
		{"starts down and ignores probes while down", probed, []step{
			{"ok", Down, false}, {"fail", Down, false}, {"down", Down, false},
		}},
		{"up_after good rounds make it active", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
		}},
		{"a failure resets the good count", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"fail", Probing, false},
			{"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
		}},
		{"down_after failures leave active; a good round resets", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
			{"fail", Active, false}, {"ok", Active, false}, {"fail", Active, false}, {"fail", Probing, true},
		}},
		{"link down from any state, up again restarts probing", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
			{"down", Down, true}, {"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
		}},
		{"counts do not survive a link flap", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false},
			{"down", Down, true}, {"up", Probing, true}, {"ok", Probing, false},
		}},
		{"repeated link up is not a transition", probed, []step{
			{"up", Probing, true}, {"up", Probing, false},
		}},
		{"degraded and back", probed, []step{
			{"up", Probing, true}, {"ok", Probing, false}, {"ok", Probing, false}, {"ok", Active, true},
			{"degrade", Degraded, true}, {"degrade", Degraded, false}, {"recover", Active, true},
			{"degrade", Degraded, true}, {"fail", Degraded, false}, {"fail", Probing, true},
			{"recover", Probing, false},
		}},
		{"carrier-only mode", Params{}, []step{
			{"ok", Down, false}, {"up", Active, true}, {"up", Active, false}, {"fail", Active, false},
			{"down", Down, true}, {"up", Active, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			u := New("isp2", tt.p, now)
			for i, s := range tt.steps {
				now = now.Add(time.Second)
				var tr Transition
				var ok bool
				switch s.op {
				case "up":
					tr, ok = u.LinkUp("link eth2 usable", now)
				case "down":
					tr, ok = u.LinkDown("carrier lost on eth2", now)
				case "ok":
					tr, ok = u.ProbeRound(true, now)
				case "fail":
					tr, ok = u.ProbeRound(false, now)
				case "degrade":
					tr, ok = u.Degrade("loss 40%", now)
				case "recover":
					tr, ok = u.Recover("loss 0%", now)
				}
				if ok != s.tr || u.State() != s.want {
					t.Fatalf("step %d (%s): state %s transition %v, want %s transition %v", i, s.op, u.State(), ok, s.want, s.tr)
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

func TestTransitionReasons(t *testing.T) {
	now := time.Unix(0, 0)
	u := New("isp1", Params{Probed: true, UpAfter: 2, DownAfter: 2}, now)
	var got []string
	record := func(tr Transition, ok bool) {
		if ok {
			got = append(got, tr.String())
		}
	}
	record(u.LinkUp("eth1 up with carrier and 198.51.100.2/24", now))
	record(u.ProbeRound(true, now))
	record(u.ProbeRound(true, now))
	record(u.ProbeRound(false, now))
	record(u.ProbeRound(false, now))
	record(u.LinkDown("carrier lost on eth1", now))
	want := []string{
		"isp1: down -> probing (eth1 up with carrier and 198.51.100.2/24, waiting for probes)",
		"isp1: probing -> active (2 consecutive probe rounds passed)",
		"isp1: active -> probing (2 consecutive probe rounds failed)",
		"isp1: probing -> down (carrier lost on eth1)",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("transitions (-want +got):\n%s", d)
	}
}
