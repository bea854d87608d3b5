package hooks

import (
	"strconv"
	"time"
)

// Event is one state transition as hooks see it.
type Event struct {
	Uplink    string
	Interface string
	From, To  string
	Reason    string
	Time      time.Time
	Active    int // uplinks active after the transition
	Uplinks   int // uplinks configured
}

// Env is the environment a hook gets for e, on top of the daemon's own.
func (e Event) Env() []string {
	return []string{
		"UPLINKD_UPLINK=" + e.Uplink,
		"UPLINKD_INTERFACE=" + e.Interface,
		"UPLINKD_FROM=" + e.From,
		"UPLINKD_TO=" + e.To,
		"UPLINKD_REASON=" + e.Reason,
		"UPLINKD_TIME=" + e.Time.Format(time.RFC3339Nano),
		"UPLINKD_ACTIVE=" + strconv.Itoa(e.Active),
		"UPLINKD_UPLINKS=" + strconv.Itoa(e.Uplinks),
	}
}
