package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A policy event (on_policy) gives the hook the policy, the family whose
// routing changed tier and the tiers, not an uplink's.
func TestPolicyEventEnvironment(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	hook := script(t, dir, "hook", `env | grep '^UPLINKD_' | sort > "$0.tmp" && mv "$0.tmp" "`+out+`"`+"\n")
	r, _ := start(t, 4, 16)
	e := Event{Policy: "default", Family: "ipv6", TierFrom: 1, TierTo: 2, Reason: "tier 2 is the best with a usable uplink (lte)",
		Time: event.Time, Active: 1, Uplinks: 3}
	r.Enqueue(Job{Hook: "on_policy", Argv: []string{hook}, Event: e, Timeout: 5 * time.Second})
	waitFor(t, "the hook's output", 10*time.Second, func() bool { _, err := os.Stat(out); return err == nil })
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"UPLINKD_ACTIVE=1",
		"UPLINKD_FAMILY=ipv6",
		"UPLINKD_POLICY=default",
		"UPLINKD_REASON=tier 2 is the best with a usable uplink (lte)",
		"UPLINKD_TIER_FROM=1",
		"UPLINKD_TIER_TO=2",
		"UPLINKD_TIME=2024-05-01T12:00:00.123+02:00",
		"UPLINKD_UPLINKS=3",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(string(b)), "\n")); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
}
