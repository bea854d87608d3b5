package fsm

import (
	"context"
	"errors"
	"fmt"
	"time"

	lfsm "github.com/looplab/fsm"
)

// State is an uplink's health state.
type State string

// The uplink states. Only Active uplinks (and Degraded ones when no uplink is
// Active) carry balanced traffic.
const (
	Down     State = "down"
	Probing  State = "probing"
	Degraded State = "degraded"
	Active   State = "active"
)

// Event names of the underlying looplab machine.
const (
	evLinkDown   = "link_down"
	evLinkUp     = "link_up"
	evLinkUpBare = "link_up_unprobed"
	evProbePass  = "probe_pass"
	evProbeFail  = "probe_fail"
	evDegrade    = "degrade"
	evRecover    = "recover"
)

var transitions = lfsm.Events{
	{Name: evLinkDown, Src: []string{string(Probing), string(Degraded), string(Active)}, Dst: string(Down)},
	{Name: evLinkUp, Src: []string{string(Down)}, Dst: string(Probing)},
	{Name: evLinkUpBare, Src: []string{string(Down), string(Probing)}, Dst: string(Active)},
	{Name: evProbePass, Src: []string{string(Probing)}, Dst: string(Active)},
	{Name: evProbeFail, Src: []string{string(Active), string(Degraded)}, Dst: string(Probing)},
	{Name: evDegrade, Src: []string{string(Active)}, Dst: string(Degraded)},
	{Name: evRecover, Src: []string{string(Degraded)}, Dst: string(Active)},
}

// Params are the thresholds of one uplink's machine.
type Params struct {
	// Probed is false in carrier-only mode (no probe targets): a usable
	// link is active at once.
	Probed bool
	// UpAfter consecutive good rounds make a probing uplink active.
	UpAfter int
	// DownAfter consecutive failed rounds send an active uplink to probing.
	DownAfter int
}

// Transition is one state change, with why it happened.
type Transition struct {
	Uplink string
	From   State
	To     State
	Reason string
	At     time.Time
}

func (t Transition) String() string {
	return fmt.Sprintf("%s: %s -> %s (%s)", t.Uplink, t.From, t.To, t.Reason)
}

// Uplink is the state machine of one uplink. It is not safe for concurrent
// use; the daemon's event loop owns it.
type Uplink struct {
	name   string
	p      Params
	m      *lfsm.FSM
	reason string
	since  time.Time
	good   int // consecutive good rounds
	bad    int // consecutive failed rounds
}

// New returns the machine of uplink name, in state Down since now.
func New(name string, p Params, now time.Time) *Uplink {
	if p.UpAfter < 1 {
		p.UpAfter = 1
	}
	if p.DownAfter < 1 {
		p.DownAfter = 1
	}
	return &Uplink{
		name:   name,
		p:      p,
		m:      lfsm.NewFSM(string(Down), transitions, nil),
		reason: "starting",
		since:  now,
	}
}

// Name is the uplink's configured name.
func (u *Uplink) Name() string { return u.name }

// State is the current state.
func (u *Uplink) State() State { return State(u.m.Current()) }

// Reason says why the uplink is in its current state.
func (u *Uplink) Reason() string { return u.reason }

// Since is when the uplink entered its current state.
func (u *Uplink) Since() time.Time { return u.since }

// SetParams changes the thresholds; counters are kept.
func (u *Uplink) SetParams(p Params) { u.p = p }

// LinkDown moves the uplink to Down at once: the interface is missing, down,
// without carrier or without address. reason says which.
func (u *Uplink) LinkDown(reason string, now time.Time) (Transition, bool) {
	u.good, u.bad = 0, 0
	if u.State() == Down {
		u.reason = reason // keep the freshest explanation
		return Transition{}, false
	}
	return u.fire(evLinkDown, reason, now)
}

// LinkUp tells the machine the link is usable. A Down uplink starts probing,
// or becomes Active at once when it is not probed.
func (u *Uplink) LinkUp(reason string, now time.Time) (Transition, bool) {
	if !u.p.Probed {
		if u.State() == Down || u.State() == Probing {
			return u.fire(evLinkUpBare, reason+" (carrier-only mode)", now)
		}
		return Transition{}, false
	}
	if u.State() != Down {
		return Transition{}, false
	}
	u.good, u.bad = 0, 0
	return u.fire(evLinkUp, reason+", waiting for probes", now)
}

// ProbeRound feeds the result of one probe round.
func (u *Uplink) ProbeRound(good bool, now time.Time) (Transition, bool) {
	if !u.p.Probed || u.State() == Down {
		return Transition{}, false
	}
	if good {
		u.good++
		u.bad = 0
	} else {
		u.bad++
		u.good = 0
	}
	switch u.State() {
	case Probing:
		if u.good >= u.p.UpAfter {
			return u.fire(evProbePass, fmt.Sprintf("%d consecutive probe rounds passed", u.good), now)
		}
		if !good && u.bad == 1 {
			u.reason = "probes failing"
		}
	case Active, Degraded:
		if u.bad >= u.p.DownAfter {
			return u.fire(evProbeFail, fmt.Sprintf("%d consecutive probe rounds failed", u.bad), now)
		}
	}
	return Transition{}, false
}

// Degrade moves an Active uplink to Degraded.
func (u *Uplink) Degrade(reason string, now time.Time) (Transition, bool) {
	return u.fire(evDegrade, reason, now)
}

// Recover moves a Degraded uplink back to Active.
func (u *Uplink) Recover(reason string, now time.Time) (Transition, bool) {
	return u.fire(evRecover, reason, now)
}

// fire runs event ev if the current state allows it. looplab/fsm reports a
// same-state event as NoTransitionError and an impossible one as
// InvalidEventError; neither is a failure here, so fire checks Can first and
// treats both as "no transition".
func (u *Uplink) fire(ev, reason string, now time.Time) (Transition, bool) {
	if !u.m.Can(ev) {
		return Transition{}, false
	}
	from := u.State()
	if err := u.m.Event(context.Background(), ev); err != nil {
		var noTr lfsm.NoTransitionError
		if errors.As(err, &noTr) {
			return Transition{}, false
		}
		// Can() said yes and no callbacks are registered: anything else
		// is a programming error in the transition table.
		panic(fmt.Sprintf("fsm %s: event %s from %s: %v", u.name, ev, from, err))
	}
	u.reason = reason
	u.since = now
	return Transition{Uplink: u.name, From: from, To: u.State(), Reason: reason, At: now}, true
}
