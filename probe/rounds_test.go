package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// t0 is the fake clock's origin; ms(n) is a point n milliseconds after it.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

// op is one step fed to a tracker. After every step the test delivers
// whatever the tracker has ready, as the prober's loop does.
type op struct {
	kind   string // "start", "reply", "expire"
	at     time.Time
	round  uint64
	sends  []send // start
	target int    // reply
	counts bool   // reply: whether it must count
}

func start(n uint64, at time.Time, sends ...send) op {
	return op{kind: "start", round: n, at: at, sends: sends}
}
func sent(at time.Time) send { return send{At: at} }
func failed(err error) send  { return send{Err: err} }
func expire(at time.Time) op { return op{kind: "expire", at: at} }
func counted(n uint64, target int, at time.Time) op {
	return op{kind: "reply", round: n, target: target, at: at, counts: true}
}
func ignored(n uint64, target int, at time.Time) op {
	return op{kind: "reply", round: n, target: target, at: at}
}

// equateErrorText compares errors by message: a joined error is a fresh
// value each time, so identity or errors.Is cannot match it.
var equateErrorText = cmp.Comparer(func(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
})

// delivered marks the position in the op list at which results must have
// come out; want lists them per op index.
type delivery map[int][]Result

func TestTracker(t *testing.T) {
	const timeout = 500 * time.Millisecond
	errUnreach := fmt.Errorf("send echo to 198.18.0.1 via eth1: %w", unix.ENETUNREACH)
	errDown := fmt.Errorf("send echo to 198.18.0.2 via eth1: %w", unix.ENETDOWN)
	good := func(n uint64, replies int, rtt int) Result {
		return Result{Uplink: "isp1", Gen: 3, Round: n, Good: true, Replies: replies, RTT: time.Duration(rtt) * time.Millisecond}
	}
	bad := func(n uint64, err error) Result {
		return Result{Uplink: "isp1", Gen: 3, Round: n, Err: err}
	}

	tests := []struct {
		name        string
		reliability int // 0: 1
		ops         []op
		want        delivery
	}{
		{
			name: "first reply decides good",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				counted(1, 0, ms(12)),
			},
			want: delivery{1: {good(1, 1, 12)}},
		},
		{
			name: "timeout decides bad, not a moment before",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				expire(ms(499)),
				expire(ms(500)),
			},
			want: delivery{2: {bad(1, nil)}},
		},
		{
			name: "late reply does not count",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				ignored(1, 0, ms(500)),
				expire(ms(501)),
				ignored(1, 0, ms(502)),
			},
			want: delivery{2: {bad(1, nil)}},
		},
		{
			name: "reply just inside the timeout counts",
			ops: []op{
				start(1, ms(0), sent(ms(1))),
				counted(1, 0, ms(499)),
			},
			want: delivery{1: {good(1, 1, 498)}},
		},
		{
			name: "duplicate of a delivered round is ignored",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				counted(1, 0, ms(10)),
				ignored(1, 0, ms(11)),
				start(2, ms(250), sent(ms(250))),
				ignored(1, 0, ms(260)),
				counted(2, 0, ms(270)),
			},
			want: delivery{1: {good(1, 1, 10)}, 5: {good(2, 1, 20)}},
		},
		{
			name: "duplicate of a round waiting for delivery is ignored",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(250), sent(ms(250))),
				counted(2, 0, ms(260)),
				ignored(2, 0, ms(261)),
				ignored(2, 0, ms(262)),
				expire(ms(500)),
			},
			want: delivery{5: {bad(1, nil), good(2, 1, 10)}},
		},
		{
			name: "results wait for earlier rounds",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(250), sent(ms(250))),
				counted(2, 0, ms(300)),
				start(3, ms(500), sent(ms(500))),
				counted(1, 0, ms(400)),
				counted(3, 0, ms(510)),
			},
			want: delivery{4: {good(1, 1, 400), good(2, 1, 50)}, 5: {good(3, 1, 10)}},
		},
		{
			name: "a bad round delivers waiting good ones",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(250), sent(ms(250))),
				counted(2, 0, ms(260)),
				start(3, ms(500), sent(ms(500))),
				counted(3, 0, ms(505)),
				expire(ms(500)),
			},
			want: delivery{5: {bad(1, nil), good(2, 1, 10), good(3, 1, 5)}},
		},
		{
			name: "all sends failed: bad at once with the errors",
			ops: []op{
				start(1, ms(0), failed(errUnreach), failed(errDown)),
			},
			want: delivery{0: {bad(1, errors.Join(errUnreach, errDown))}},
		},
		{
			name: "failed round waits behind an undecided one",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(250), failed(errUnreach)),
				counted(1, 0, ms(300)),
			},
			want: delivery{2: {good(1, 1, 300), bad(2, errUnreach)}},
		},
		{
			name: "one send failed, other target answers: good without error",
			ops: []op{
				start(1, ms(0), failed(errUnreach), sent(ms(1))),
				ignored(1, 0, ms(5)), // its echo was never sent
				counted(1, 1, ms(21)),
			},
			want: delivery{2: {good(1, 1, 20)}},
		},
		{
			name: "one send failed, no answer: bad with the send error",
			ops: []op{
				start(1, ms(0), sent(ms(0)), failed(errDown)),
				expire(ms(500)),
			},
			want: delivery{1: {bad(1, errDown)}},
		},
		{
			name: "replies gathered before delivery: count and fastest RTT",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(250), sent(ms(250)), sent(ms(260))),
				counted(2, 0, ms(300)),
				counted(2, 1, ms(290)),
				ignored(2, 1, ms(291)),
				counted(1, 0, ms(320)),
			},
			want: delivery{5: {good(1, 1, 320), good(2, 2, 30)}},
		},
		{
			name:        "reliability 2: good on the second answer",
			reliability: 2,
			ops: []op{
				start(1, ms(0), sent(ms(0)), sent(ms(0))),
				counted(1, 1, ms(30)),
				counted(1, 0, ms(40)),
			},
			want: delivery{2: {good(1, 2, 30)}},
		},
		{
			name:        "reliability 2: one answer is a bad round",
			reliability: 2,
			ops: []op{
				start(1, ms(0), sent(ms(0)), sent(ms(0))),
				counted(1, 1, ms(30)),
				expire(ms(500)),
			},
			want: delivery{2: {{Uplink: "isp1", Gen: 3, Round: 1, Replies: 1, RTT: 30 * time.Millisecond}}},
		},
		{
			name:        "reliability 2: a failed send fails the round at once",
			reliability: 2,
			ops: []op{
				start(1, ms(0), sent(ms(0)), failed(errDown)),
				counted(1, 0, ms(30)), // for the statistics
			},
			want: delivery{0: {bad(1, errors.Join(errDown, errors.New("too few echoes sent for the reliability rule")))}},
		},
		{
			name: "an answer after delivery counts, but not in the delivered result",
			ops: []op{
				start(1, ms(0), sent(ms(0)), sent(ms(0))),
				counted(1, 0, ms(10)),
				counted(1, 1, ms(20)),
				ignored(1, 1, ms(21)),
				expire(ms(500)),
			},
			want: delivery{1: {good(1, 1, 10)}},
		},
		{
			name: "unknown round and target are ignored",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				ignored(9, 0, ms(10)),
				ignored(1, 1, ms(10)),
				ignored(1, -1, ms(10)),
				expire(ms(600)),
			},
			want: delivery{4: {bad(1, nil)}},
		},
		{
			name: "reply to a timed-out round waiting for delivery is ignored",
			ops: []op{
				start(1, ms(0), sent(ms(0))),
				start(2, ms(100), sent(ms(100))),
				start(3, ms(200), sent(ms(200))),
				expire(ms(650)), // rounds 1 and 2
				ignored(2, 0, ms(599)),
				counted(3, 0, ms(651)),
			},
			want: delivery{3: {bad(1, nil), bad(2, nil)}, 5: {good(3, 1, 451)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets := 0
			for _, o := range tt.ops {
				targets = max(targets, len(o.sends))
			}
			tr := newTracker(trackerConfig{
				Timeout: timeout, Reliability: tt.reliability, Window: 10, Targets: someTargets(targets),
			}, Result{Uplink: "isp1", Gen: 3})
			got := delivery{}
			for i, o := range tt.ops {
				switch o.kind {
				case "start":
					tr.start(o.round, o.at, o.sends)
				case "expire":
					tr.expire(o.at)
				case "reply":
					if c := tr.reply(o.round, o.target, o.at); c != o.counts {
						t.Errorf("op %d: reply(%d, %d, %v) counted = %v, want %v",
							i, o.round, o.target, o.at.Sub(t0), c, o.counts)
					}
				}
				for {
					r, ok := tr.head()
					if !ok {
						break
					}
					tr.pop()
					got[i] = append(got[i], r)
				}
			}
			if diff := cmp.Diff(tt.want, got, equateErrorText, ignoreStats); diff != "" {
				t.Errorf("delivered results by op (-want +got):\n%s", diff)
			}
			if tr.pending() != 0 {
				if _, ok := tr.next(); !ok {
					t.Errorf("%d rounds pending but no deadline", tr.pending())
				}
			}
		})
	}
}

// ignoreStats leaves the statistics out of Result comparisons; they have
// tests of their own.
var ignoreStats = cmpopts.IgnoreFields(Result{}, "Stats", "Targets")

// someTargets returns n distinct ICMP targets.
func someTargets(n int) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i] = Target{Method: MethodICMP, Addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})}
	}
	return out
}

func TestTrackerDeadlines(t *testing.T) {
	tr := newTracker(trackerConfig{Timeout: 100 * time.Millisecond, Window: 10, Targets: someTargets(1)}, Result{})
	if _, ok := tr.next(); ok {
		t.Error("empty tracker has a deadline")
	}
	tr.pop() // no-op on empty
	tr.start(1, ms(0), []send{sent(ms(0))})
	tr.start(2, ms(50), []send{sent(ms(50))})
	if d, ok := tr.next(); !ok || !d.Equal(ms(100)) {
		t.Errorf("next = %v, %v; want 100ms", d.Sub(t0), ok)
	}
	tr.pop() // round 1 undecided: must stay
	if tr.pending() != 2 {
		t.Fatalf("pending = %d after pop of an undecided round, want 2", tr.pending())
	}
	tr.reply(1, 0, ms(10))
	if d, ok := tr.next(); !ok || !d.Equal(ms(150)) {
		t.Errorf("next = %v, %v; want 150ms", d.Sub(t0), ok)
	}
	tr.expire(ms(100))
	if d, ok := tr.next(); !ok || !d.Equal(ms(150)) {
		t.Errorf("next = %v, %v; want 150ms: round 1 is closed", d.Sub(t0), ok)
	}
	tr.expire(ms(150))
	if _, ok := tr.next(); ok {
		t.Error("all rounds decided but a deadline remains")
	}
	if tr.pending() != 2 {
		t.Errorf("pending = %d, want 2 decided, undelivered", tr.pending())
	}
}

func TestTrackerNoEchoSent(t *testing.T) {
	// A round with no target (or no outcome) must not wait forever.
	tr := newTracker(trackerConfig{Timeout: time.Second, Window: 10}, Result{})
	tr.start(1, ms(0), nil)
	r, ok := tr.head()
	if !ok || r.Good || r.Err == nil {
		t.Errorf("head = %+v, %v; want a bad round with an error", r, ok)
	}
}
