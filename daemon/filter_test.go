package daemon

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/events"
)

// The event filter names uplinkd's protocol, balance and uplink tables,
// and the uplinks' interfaces with the indexes they had in the last dump.
func TestEventFilter(t *testing.T) {
	d := testDaemon(t)
	d.uplinks[1].link = &events.Link{Index: 7, Name: "eth2"}
	want := events.Filter{Protocol: 201, Tables: []int{100, 200, 250}, Interfaces: []string{"eth1", "eth2"}, Indexes: []int{7}}
	if diff := cmp.Diff(want, d.eventFilter()); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

// The policies' tables are uplinkd's too.
func TestEventFilterPolicyTables(t *testing.T) {
	d := testDaemon(t)
	d.cfg = parse(t, base+policyDoc)
	if got := d.eventFilter().Tables; !cmp.Equal(got, []int{100, 200, 250, 251}) {
		t.Fatalf("tables %v, want the uplinks', the balance table and voip's 251", got)
	}
}
