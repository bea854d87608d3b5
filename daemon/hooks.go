package daemon

import (
	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/hooks"
)

// runHooks queues the hooks of the transitions of this burst. It runs
// after the reconcile, so hooks see the routing the transition caused and
// the number of active uplinks after it, and never delay it.
func (d *Daemon) runHooks() {
	if len(d.fired) == 0 {
		return
	}
	h := d.cfg.Hooks
	active := d.active()
	for _, ev := range d.fired {
		ev.Active, ev.Uplinks = active, len(d.uplinks)
		for _, j := range []struct {
			name string
			argv []string
		}{
			{"on_transition", h.OnTransition},
			{"on_" + ev.To, stateHook(h, ev.To)},
		} {
			if len(j.argv) > 0 {
				d.hooks.Enqueue(hooks.Job{Hook: j.name, Argv: j.argv, Event: ev, Timeout: h.Timeout})
			}
		}
	}
	d.fired = d.fired[:0]
}

// stateHook is the hook for transitions to state.
func stateHook(h config.Hooks, state string) []string {
	switch fsm.State(state) {
	case fsm.Down:
		return h.OnDown
	case fsm.Probing:
		return h.OnProbing
	case fsm.Degraded:
		return h.OnDegraded
	case fsm.Active:
		return h.OnActive
	}
	return nil
}
