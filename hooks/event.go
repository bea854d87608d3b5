package hooks

import (
	"strconv"
	"time"

	"github.com/uplinkd/uplinkd/internal/oneline"
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
	// Family is the uplink's family that changed state, or the family
	// whose routing the policy changed tier in: "ipv4" (also when empty)
	// or "ipv6".
	Family   string
	From, To string
	Reason   string
	Time     time.Time
	Active   int // uplinks active after the transition
	Uplinks  int // uplinks configured
}

// Env is the environment a hook gets for e, on top of the daemon's own.
// Values are single lines: control characters (newlines, NUL, terminal
// escapes) are written escaped, so a hook reading `env` line by line or
// logging a value cannot be fooled by one.
func (e Event) Env() []string {
	if e.Policy != "" {
		return []string{
			"UPLINKD_POLICY=" + oneline.Escape(e.Policy),
			"UPLINKD_FAMILY=" + family(e.Family),
			"UPLINKD_TIER_FROM=" + strconv.Itoa(e.TierFrom),
			"UPLINKD_TIER_TO=" + strconv.Itoa(e.TierTo),
			"UPLINKD_REASON=" + oneline.Escape(e.Reason),
			"UPLINKD_TIME=" + e.Time.Format(time.RFC3339Nano),
			"UPLINKD_ACTIVE=" + strconv.Itoa(e.Active),
			"UPLINKD_UPLINKS=" + strconv.Itoa(e.Uplinks),
		}
	}
	return []string{
		"UPLINKD_UPLINK=" + oneline.Escape(e.Uplink),
		"UPLINKD_INTERFACE=" + oneline.Escape(e.Interface),
		"UPLINKD_FAMILY=" + family(e.Family),
		"UPLINKD_FROM=" + oneline.Escape(e.From),
		"UPLINKD_TO=" + oneline.Escape(e.To),
		"UPLINKD_REASON=" + oneline.Escape(e.Reason),
		"UPLINKD_TIME=" + e.Time.Format(time.RFC3339Nano),
		"UPLINKD_ACTIVE=" + strconv.Itoa(e.Active),
		"UPLINKD_UPLINKS=" + strconv.Itoa(e.Uplinks),
	}
}

// family is the value of UPLINKD_FAMILY.
func family(f string) string {
	if f == "ipv6" {
		return "ipv6"
	}
	return "ipv4"
}

// key is what the runner serialises the event's hooks on: its uplink, or
// its policy and family (an uplink name cannot contain a space).
func (e Event) key() string {
	if e.Policy != "" {
		return "policy " + e.Policy + " " + family(e.Family)
	}
	return e.Uplink
}
