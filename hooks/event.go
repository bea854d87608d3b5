package hooks

import (
	"strconv"
	"time"
)

// Event is one state transition of an uplink, or one change of the tier a
// policy uses (Policy set), as hooks see it.
type Event struct {
	// Policy, TierFrom and TierTo describe a policy event (on_policy):
	// tiers count from 1, 0 being the last resort; Uplink, Interface,
	// From and To are then empty.
	Policy           string
	TierFrom, TierTo int

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
	if e.Policy != "" {
		return []string{
			"UPLINKD_POLICY=" + e.Policy,
			"UPLINKD_TIER_FROM=" + strconv.Itoa(e.TierFrom),
			"UPLINKD_TIER_TO=" + strconv.Itoa(e.TierTo),
			"UPLINKD_REASON=" + e.Reason,
			"UPLINKD_TIME=" + e.Time.Format(time.RFC3339Nano),
			"UPLINKD_ACTIVE=" + strconv.Itoa(e.Active),
			"UPLINKD_UPLINKS=" + strconv.Itoa(e.Uplinks),
		}
	}
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
