package test

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/lab"
)

// unchanged checks that a reload left an uplink alone: same state since
// the same time, no new transition, the same prober.
func unchanged(t *testing.T, before, after *status.Snapshot, name string) {
	t.Helper()
	b, a := uplinkOf(t, before, name), uplinkOf(t, after, name)
	if a.State != b.State || !a.Since.Equal(b.Since) || len(a.Transitions) != len(b.Transitions) {
		t.Errorf("%s changed state on reload: %s since %v (%d transitions) -> %s since %v (%d)",
			name, b.State, b.Since, len(b.Transitions), a.State, a.Since, len(a.Transitions))
	}
	if !a.Probe.Since.Equal(b.Probe.Since) || a.Probe.Rounds < b.Probe.Rounds {
		t.Errorf("%s's prober restarted on reload: started %v -> %v, rounds %d -> %d",
			name, b.Probe.Since, a.Probe.Since, b.Probe.Rounds, a.Probe.Rounds)
	}
}

// without removes the lines containing s.
func without(lines, s string) string {
	var out []string
	for _, l := range strings.Split(lines, "\n") {
		if !strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Acceptance 4: a changed weight moves only the flows the new weights
// require; a broken file changes nothing and says why; uplinks can be
// removed and added.
func TestReload(t *testing.T) { forBalancers(t, testReload) }

func testReload(t *testing.T, balancer string) {
	r := newRig(t, coreConfig(balancer))
	r.start()
	r.waitBoth()
	r.waitState("isp2", "active", 5*time.Second)
	const n = 2000
	pathsBefore, err := r.lab.Paths(r.ctx, lab.SplitFlows(n))
	if err != nil {
		t.Fatal(err)
	}
	oursStart := r.ours()
	oursBefore := oursStart
	before := r.status()

	// isp2's weight 3 -> 1.
	r.writeConfig(strings.Replace(coreConfig(balancer), "weight = 3", "weight = 1", 1))
	mark := r.mark()
	out, stderr, code := r.uplinkd("reload", "--socket", r.socket)
	if code != 0 || out != "reloaded: 1 changes\n  uplink isp2: weight: 3 -> 1\n" {
		t.Fatalf("uplinkd reload: exit %d\n%s%s", code, out, stderr)
	}
	line := r.waitLog(mark, regexp.MustCompile(`msg="configuration reloaded"`), time.Second)
	t.Logf("reload (weight change), daemon: %s", line[strings.Index(line, "msg="):])
	// The reply comes once the routes are changed.
	if got, _ := r.members(); !slices.Equal(got, []string{"eth1/1", "eth2/1"}) {
		t.Fatalf("balance after reload: %v\n%s", got, r.balance())
	}
	// Only the balance changes: its multipath route, the resilient
	// group (replaced in place; the route through it stays), or the
	// hash-threshold group (made anew at its other ID, the route moved).
	group := "id " + strconv.Itoa(groupID) + " group"
	alt := "id " + strconv.Itoa(groupID+altGroupOffset) + " group"
	balance := func(s string) string { return without(without(without(s, "table 250"), group), alt) }
	if got, want := balance(r.ours()), balance(oursBefore); got != want {
		t.Errorf("reload changed more than the balance route:\n%s\nbefore:\n%s", got, want)
	}
	after := r.status()
	unchanged(t, before, after, "isp1")
	unchanged(t, before, after, "isp2")
	want := 0.5
	if balancer == "resilient" {
		// The kernel's real split: buckets move to isp1 only as they
		// fall idle, so right after the reload isp2 still has more.
		b := r.groupBuckets()
		want = float64(b["eth2"]) / float64(b["eth1"]+b["eth2"])
	}
	if u := uplinkOf(t, after, "isp2"); u.Weight != 1 || math.Abs(u.Share-want) > 0.05 {
		t.Errorf("isp2 after reload: weight %d share %v, want %.3f", u.Weight, u.Share, want)
	}
	pathsAfter, err := r.lab.Paths(r.ctx, lab.SplitFlows(n))
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]int{}
	for i := range pathsBefore {
		if pathsBefore[i] != pathsAfter[i] {
			moved[pathsBefore[i]+"->"+pathsAfter[i]]++
		}
	}
	// 1:3 -> 1:1: a quarter of the flows must move from isp2 to isp1,
	// and no other flow moves.
	t.Logf("flows moved by weights 1:3 -> 1:1: %v of %d", moved, n)
	// The resilient group hands isp2's surplus buckets over as they go
	// idle (idle_timer), so right after the reload it may have moved
	// fewer: never more, never the other way.
	least := n * 20 / 100
	if balancer == "resilient" {
		least = 0
	}
	if moved["eth1->eth2"] != 0 || len(moved) > 1 || moved["eth2->eth1"] < least || moved["eth2->eth1"] > n*30/100 {
		t.Errorf("moved flows %v of %d: want at most about 25%% from eth2 to eth1 (at least %d), none the other way", moved, n, least)
	}

	// A broken file: refused with its problems, nothing changes.
	oursBefore = r.ours()
	before = r.status()
	broken := strings.Replace(coreConfig(balancer), "weight = 3", "weight = 0", 1) + "bogus = 1\n"
	r.writeConfig(broken)
	written, err := os.ReadFile(r.cfgPath) // as writeConfig wrote it
	if err != nil {
		t.Fatal(err)
	}
	weightLine := fmt.Sprintf("%s:%d: uplink[1].weight: 0 is out of range", r.cfgPath,
		1+strings.Count(string(written[:strings.Index(string(written), "weight = 0")]), "\n"))
	_, stderr, code = r.uplinkd("reload", "--socket", r.socket)
	if code != 1 || !strings.Contains(stderr, "reload refused; the running configuration stays in force") ||
		!strings.Contains(stderr, weightLine) || !strings.Contains(stderr, "uplink[1].bogus: unknown key") {
		t.Errorf("reload of a broken file: exit %d, %s", code, stderr)
	}
	mark = r.mark()
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(mark, regexp.MustCompile(`level=ERROR msg="reload refused; the running configuration stays in force".*uplink\[1\]\.weight`), 5*time.Second)
	after = r.status()
	if after.Daemon.Failed != 2 || !strings.Contains(after.Daemon.LastFail, "uplink[1].weight") || after.Daemon.Reloads != 1 {
		t.Errorf("status after refused reloads: %+v", after.Daemon)
	}
	unchanged(t, before, after, "isp1")
	unchanged(t, before, after, "isp2")
	if got := r.ours(); got != oursBefore {
		t.Errorf("a refused reload changed the routing:\n%s\nbefore:\n%s", got, oursBefore)
	}
	r.statusTable(`last reload refused, the configuration of .* is in force: ` + regexp.QuoteMeta(weightLine))

	// Remove isp2 (SIGHUP this time).
	isp1Only := coreConfig(balancer)[:strings.Index(coreConfig(balancer), "[[uplink]]\nname = \"isp2\"")]
	r.writeConfig(isp1Only)
	before = r.status()
	mark = r.mark()
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(mark, regexp.MustCompile(`msg=reload change="uplink isp2: removed"`), 5*time.Second)
	r.waitOnly("eth1")
	r.waitFor("isp2's rule and table removed", 5*time.Second, func() bool {
		return !strings.Contains(r.ip(lab.Router, "rule"), "203.0.113.2") && r.table("200") == ""
	})
	after = r.status()
	if len(after.Uplinks) != 1 || after.Daemon.LastFail != "" {
		t.Errorf("status after removing isp2: %+v", after)
	}
	unchanged(t, before, after, "isp1")

	// And add it back.
	r.writeConfig(coreConfig(balancer))
	out, stderr, code = r.uplinkd("reload", "--socket", r.socket)
	if code != 0 || !strings.Contains(out, "uplink isp2: added") {
		t.Fatalf("reload adding isp2: exit %d\n%s%s", code, out, stderr)
	}
	r.waitBoth()
	s := r.waitState("isp2", "active", 10*time.Second)
	unchanged(t, before, s, "isp1")
	if got := atGroupIDs(r.ours()); got != atGroupIDs(oursStart) {
		t.Errorf("after removing and adding isp2:\n%s\nwant the state before:\n%s", got, oursStart)
	}
	// Reload time, in process: a reload changing one weight and back.
	for _, c := range []string{strings.Replace(coreConfig(balancer), "weight = 3", "weight = 2", 1), coreConfig(balancer)} {
		r.writeConfig(c)
		t0 := time.Now()
		res, err := status.Reload(r.ctx, r.socket)
		if err != nil || !res.OK {
			t.Fatalf("reload: %v %+v", err, res)
		}
		t.Logf("reload changing %v: answered, routes changed, after %v", res.Changes, time.Since(t0).Round(time.Microsecond))
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left after stop:\n%s", left)
	}
}
