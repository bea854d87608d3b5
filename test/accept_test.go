package test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// The acceptance tests of issue 9 run real LAN connections (lab.StartFlows:
// TCP connections and UDP flows from the LAN host's two addresses to an
// echoing sink in the Internet namespace) through the router with
// masquerade NAT on every uplink and ingress filtering at the ISPs, so a
// connection that leaves through another uplink than the one it started on
// breaks, as it does on a real router.

// pinnedBalancers are the balancers that keep established connections and
// send new ones by the weights at once: "" is auto (hash-threshold with
// pinning) and multipath, both pinned.
var pinnedBalancers = []string{"", "multipath"}

// balancerName names a balancer in subtests and logs.
func balancerName(b string) string {
	if b == "" {
		return "auto"
	}
	return b
}

// flapOff is config with flap damping off: the tests fail uplinks in turn.
func flapOff(config string) string {
	return strings.Replace(config, "[probe]\n", "[probe]\nflap_limit = 0\n", 1)
}

// threeUplinks adds isp3 (eth3, weight 2, table 300) to config.
func threeUplinks(config string) string {
	return config + `
[[uplink]]
name = "isp3"
interface = "eth3"
gateway = "198.19.30.1"
weight = 2
table = 300
`
}

// newNATRig is newRigWith plus masquerade NAT on every uplink.
func newNATRig(t *testing.T, config string, opts lab.Options, limit time.Duration) *rig {
	t.Helper()
	r := newRigWith(t, config, opts, limit)
	if err := r.lab.EnableNAT(r.ctx, lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	return r
}

// flows is a running lab.Flows, closed once (by close or the test's end).
type flowSet struct {
	*lab.Flows
	r    *rig
	once sync.Once
}

// startFlows runs opts' flows and waits until every one has its first echo.
func (r *rig) startFlows(opts lab.FlowOptions) *flowSet {
	r.t.Helper()
	f, err := r.lab.StartFlows(r.ctx, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	fl := &flowSet{Flows: f, r: r}
	r.t.Cleanup(fl.close)
	fl.waitEchoed(nil, 20*time.Second)
	return fl
}

func (f *flowSet) close() {
	f.once.Do(func() {
		if err := f.Flows.Close(); err != nil {
			f.r.t.Errorf("close flows: %v", err)
		}
	})
}

// waitEchoed waits until the flows numbered ids (nil: all) have had an echo.
func (f *flowSet) waitEchoed(ids []uint32, timeout time.Duration) lab.FlowSnapshot {
	f.r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := f.Snapshot()
		if ids != nil {
			s = s.Only(ids)
		}
		missing := 0
		for _, fs := range s.Flows {
			if fs.Uplink == "" {
				missing++
			}
		}
		if missing == 0 {
			return s
		}
		if time.Now().After(deadline) {
			f.r.t.Fatalf("%d of %d flows without an echo after %v: %s", missing, len(s.Flows), timeout, s.Summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEstablished waits until every flow is established (has had an echo
// within the last second, see established) and returns that snapshot. On
// a busy machine a flow may go without an echo for more than a second
// now and then; a snapshot taken at a fixed time would count it out.
func (f *flowSet) waitEstablished(timeout time.Duration) lab.FlowSnapshot {
	f.r.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		s := f.Snapshot()
		n := len(established(s))
		if n == len(s.Flows) {
			if d := time.Since(start); d > time.Second {
				f.r.t.Logf("every flow established after %v", d.Round(time.Millisecond))
			}
			return s
		}
		if time.Now().After(deadline) {
			f.r.t.Fatalf("%d of %d flows established after %v: %s", n, len(s.Flows), timeout, s.Summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEchoedAfter waits until each of the flows ids (nil: all) has had an
// echo after t, so that a flow that moved or lost records since t shows it, and
// returns that snapshot. A flow that never answers again fails the test.
func (f *flowSet) waitEchoedAfter(ids []uint32, t time.Time, timeout time.Duration) lab.FlowSnapshot {
	f.r.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		now := time.Now() // no later than the snapshot's own clock
		s := f.Snapshot()
		if ids != nil {
			s = s.Only(ids)
		}
		var late []string
		for _, fs := range s.Flows {
			if fs.Uplink == "" || !now.Add(-fs.SinceLastEcho).After(t) {
				late = append(late, fmt.Sprintf("%s %d", fs.Proto, fs.Flow))
			}
		}
		if len(late) == 0 {
			if d := time.Since(start); d > time.Second {
				f.r.t.Logf("every flow echoed after the change within %v", d.Round(time.Millisecond))
			}
			return s
		}
		if time.Now().After(deadline) {
			f.r.t.Fatalf("%d of %d flows without an echo within %v after the change: %s; %s",
				len(late), len(s.Flows), timeout, strings.Join(late[:min(len(late), 20)], ", "), s.Summary())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// open opens tcp and udp new flows and returns how many started on each
// uplink (by their first echo), once every one has echoed.
func (f *flowSet) open(tcp, udp int) map[string]int {
	f.r.t.Helper()
	ids, err := f.Add(f.r.ctx, tcp, udp)
	if err != nil {
		f.r.t.Fatal(err)
	}
	s := f.waitEchoed(ids, 20*time.Second)
	return firstUplinks(s)
}

// firstUplinks counts the flows of s by the uplink of their first echo.
func firstUplinks(s lab.FlowSnapshot) map[string]int {
	out := map[string]int{}
	for _, fs := range s.Flows {
		if len(fs.Changes) > 0 {
			out[fs.Changes[0].Uplink]++
		}
	}
	return out
}

// checkSplit fails the test unless the counts split by the weights
// (uplink -> weight) within tol percentage points.
func checkSplit(t *testing.T, what string, got map[string]int, weights map[string]int, tol float64) {
	t.Helper()
	n, sum := 0, 0
	for _, c := range got {
		n += c
	}
	for _, w := range weights {
		sum += w
	}
	for u, c := range got {
		if _, ok := weights[u]; !ok {
			t.Errorf("%s: %d of %d new flows took %s, not in the balance %v", what, c, n, u, weights)
		}
	}
	for u, w := range weights {
		want := 100 * float64(w) / float64(sum)
		if share := 100 * float64(got[u]) / float64(n); share < want-tol || share > want+tol {
			t.Errorf("%s: %v (%d flows): %s %.1f%%, want %.1f%% ± %.0f", what, got, n, u, share, want, tol)
		}
	}
}

// established returns the flows of s that are working (an echo within the
// last second) on one of the uplinks (none given: any).
func established(s lab.FlowSnapshot, uplinks ...string) []uint32 {
	var out []uint32
	for _, fs := range s.Flows {
		if fs.Uplink != "" && fs.SinceLastEcho < time.Second && (len(uplinks) == 0 || slices.Contains(uplinks, fs.Uplink)) {
			out = append(out, fs.Flow)
		}
	}
	return out
}

// checkKept fails the test if any of the flows ids changed uplink after
// since, or, between before and after, lost a UDP sequence number or saw
// a TCP reset or reconnect.
func checkKept(t *testing.T, what string, ids []uint32, since time.Time, before, after lab.FlowSnapshot) {
	t.Helper()
	prev := map[uint32]lab.FlowStat{}
	for _, fs := range before.Only(ids).Flows {
		prev[fs.Flow] = fs
	}
	var bad []string
	for _, fs := range after.Only(ids).Flows {
		p := prev[fs.Flow]
		for i, c := range fs.Changes {
			if i > 0 && c.At.After(since) {
				bad = append(bad, fmt.Sprintf("%s %d moved %s -> %s at %v", fs.Proto, fs.Flow, fs.Changes[i-1].Uplink, c.Uplink, c.At.Sub(since).Round(time.Millisecond)))
			}
		}
		if fs.Proto == "udp" && fs.Lost > p.Lost {
			bad = append(bad, fmt.Sprintf("udp %d on %s lost %d sequence numbers %v", fs.Flow, fs.Uplink, fs.Lost-p.Lost, fs.LostSeqs))
		}
		if fs.Resets > p.Resets || fs.Reconnects > p.Reconnects {
			bad = append(bad, fmt.Sprintf("tcp %d on %s reset (%s)", fs.Flow, fs.Uplink, fs.LastError))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		t.Errorf("%s: %d of %d established connections disturbed:\n%s", what, len(bad), len(ids), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
}

// logTimeRE is the time of a log line (slog's text handler).
var logTimeRE = regexp.MustCompile(`^time=(\S+)`)

// logTime returns the time a log line was written.
func logTime(t *testing.T, line string) time.Time {
	t.Helper()
	m := logTimeRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no time in log line %q", line)
	}
	at, err := time.Parse(time.RFC3339Nano, m[1])
	if err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	return at
}

// longTests says whether the long cases run (UPLINKD_LONG=1, make test-long).
func longTests() bool { return os.Getenv("UPLINKD_LONG") == "1" }
