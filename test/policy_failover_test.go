package test

import (
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 10, primary/backup with real connections under NAT: while the
// primary works the backup carries no LAN flow; a primary blackhole moves
// every flow to the backup within the detection time; when the primary
// returns new connections go back to it in the reconcile of its return,
// and (failback = "new") established ones stay on the backup.
// With failback = "all" the connections on the backup are deleted by its
// mark and restart on the primary. UPLINKD_LONG=1: 1000 flows for 60 s
// before the failure.
func TestPolicyPrimaryBackup(t *testing.T) {
	for _, failback := range []string{"new", "all"} {
		t.Run(failback, func(t *testing.T) { testPrimaryBackup(t, failback) })
	}
}

func testPrimaryBackup(t *testing.T, failback string) {
	r := newPolicyRig(t, `
[[policy]]
name = "default"
tiers = [["isp1"], ["lte"]]
failback = "`+failback+`"
`)
	r.start()
	for _, u := range []string{"isp1", "lte"} {
		r.waitState(u, "active", 15*time.Second)
	}
	n, hold := 64, 2*time.Second
	if longTests() {
		n, hold = 500, 60*time.Second
	}
	start := time.Now()
	flows, err := r.lab.StartFlows(r.ctx, lab.FlowOptions{TCP: n, UDP: n, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	r.waitFlows(flows, 2*n)
	time.Sleep(hold) // flows run while the primary is active: behaviour over time, not a timing
	s := flows.Snapshot()
	for _, f := range s.Flows {
		for _, c := range f.Changes {
			if c.Uplink != lab.ISP1 {
				t.Fatalf("flow %d (%s) used %s while the primary was active: %+v", f.Flow, f.Proto, c.Uplink, f.Changes)
			}
		}
	}
	t.Logf("%d flows for %v, all on the primary", len(s.Flows), time.Since(start).Round(time.Second))

	// The primary fails upstream: its connections restart on the backup.
	mark := r.mark()
	down := time.Now()
	if err := r.lab.Blackhole(r.ctx, lab.ISP1, true); err != nil {
		t.Fatal(err)
	}
	moved := r.waitLog(mark, regexp.MustCompile(`msg="policy changed tier" policy=default from=1 to=2`), 10*time.Second)
	r.waitFor("every UDP flow on the backup", 15*time.Second, func() bool {
		return flows.Snapshot().Uplinks("udp")[lab.ISP3] == n
	})
	udpMoved := time.Since(down)
	// TCP connections are reset (their conntrack entries deleted by
	// mark) and reconnect: wait for them too before the primary returns.
	r.waitFor("every flow on the backup", 20*time.Second, func() bool {
		return flows.Snapshot().Uplinks("")[lab.ISP3] == 2*n
	})
	p := r.cfgProbe()
	detect := time.Duration(p.downAfter)*p.interval + p.timeout
	t.Logf("figure: backup tier in use %v after the blackhole (detection time %v), every UDP flow on it after %v",
		logTime(t, moved).Sub(down).Round(time.Millisecond), detect, udpMoved.Round(time.Millisecond))

	// The primary returns: new connections take it in the reconcile that
	// follows its transition to active.
	mark = r.mark()
	up := time.Now()
	if err := r.lab.Blackhole(r.ctx, lab.ISP1, false); err != nil {
		t.Fatal(err)
	}
	active := r.waitTransition(mark, "isp1", "active", 15*time.Second)
	back := r.waitLog(mark, regexp.MustCompile(`msg="policy changed tier" policy=default from=2 to=1`), 5*time.Second)
	if d := logTime(t, back).Sub(logTime(t, active)); d > 300*time.Millisecond {
		t.Errorf("the primary's tier was in use %v after its transition to active, want within the same reconcile", d)
	}
	r.waitFor("new flows on the primary", 5*time.Second, func() bool {
		paths, err := r.lab.Paths(r.ctx, lab.SplitFlows(20))
		return err == nil && strings.Count(strings.Join(paths, " "), "eth1") == 20
	})
	t.Logf("figure: new flows on the primary %v after it was restored (up_after × interval + 0.3 s = %v)",
		time.Since(up).Round(time.Millisecond), time.Duration(p.upAfter)*p.interval+300*time.Millisecond)
	added, err := flows.Add(r.ctx, 0, 16)
	if err != nil {
		t.Fatal(err)
	}
	r.waitFor("the new flows' echoes", 10*time.Second, func() bool {
		return flows.Snapshot().Only(added).Uplinks("udp")[lab.ISP1] == 16
	})
	if failback == "all" {
		r.waitLog(mark, regexp.MustCompile(`msg="failback: conntrack entries flushed" policy=default uplink=lte`), 5*time.Second)
		// UDP flows move with their next datagram; TCP connections only
		// after a reset and a reconnect, which a loaded machine delays.
		r.waitFor("every UDP flow back on the primary", 20*time.Second, func() bool {
			return flows.Snapshot().Uplinks("udp")[lab.ISP1] == n+16
		})
		return
	}
	// failback = "new": established connections stay on the backup.
	if moved := flows.Snapshot().MovedAfter(up); len(moved) != 0 {
		t.Errorf("%d established flows moved when the primary returned: %+v", len(moved), moved[0])
	}
}

type probeTiming struct {
	interval, timeout  time.Duration
	downAfter, upAfter int
}

// cfgProbe is the probe timing of the rig's configuration.
func (r *rig) cfgProbe() probeTiming {
	r.t.Helper()
	c, err := config.Load(r.cfgPath)
	if err != nil {
		r.t.Fatal(err)
	}
	p := c.Probe
	return probeTiming{interval: p.Interval, timeout: p.Timeout, downAfter: p.DownAfter, upAfter: p.UpAfter}
}

// Issue 10, reload: adding a policy and a rule moves no flow the rule
// does not match, and the rule takes effect.
func TestPolicyReload(t *testing.T) {
	r := newPolicyRig(t, "")
	r.start()
	for _, u := range []string{"isp1", "isp2", "lte"} {
		r.waitState(u, "active", 15*time.Second)
	}
	flows, err := r.lab.StartFlows(r.ctx, lab.FlowOptions{TCP: 32, UDP: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	r.waitFlows(flows, 64)
	before, err := r.lab.Paths(r.ctx, lab.SplitFlows(200))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.egress(probe{name: "before", ns: lab.Host, src: netipAP(lab.HostAddr, 42000), dst: netipAP(lab.Target3, 5060)}); got == "lte" {
		t.Fatalf("the default policy sent a flow to lte before the reload")
	}

	cfgText := healthConfig() + lteConfig + `
[[policy]]
name = "voip"
tiers = [["lte"]]

[[rule]]
to = ["198.18.0.3/32"]
proto = "udp"
dport = "5060"
policy = "voip"
`
	r.writeConfig(cfgText)
	reloaded := time.Now()
	out, stderr, code := r.uplinkd("reload", "--socket", r.socket)
	if code != 0 || !strings.Contains(out, "policy voip: added") || !strings.Contains(out, "rule[0]: added") {
		t.Fatalf("reload: exit %d, %s%s", code, out, stderr)
	}
	r.waitFor("the voip rule", 5*time.Second, func() bool {
		return strings.Contains(r.ip(lab.Router, "rule"), "to 198.18.0.3 ipproto udp dport 5060 lookup 251")
	})
	if got := r.egress(probe{name: "after", ns: lab.Host, src: netipAP(lab.HostAddr, 42001), dst: netipAP(lab.Target3, 5060)}); got != "lte" {
		t.Fatalf("voip after the reload left by %s, want lte", got)
	}
	after, err := r.lab.Paths(r.ctx, lab.SplitFlows(200))
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("new flow %d took %s before the reload and %s after; the rule does not match it", i, before[i], after[i])
		}
	}
	time.Sleep(time.Second) // established flows keep running after the reload: behaviour over time
	if moved := flows.Snapshot().MovedAfter(reloaded); len(moved) != 0 {
		t.Fatalf("%d flows the new rule does not match moved: %+v", len(moved), moved[0])
	}
}

// Issue 10, standby probing: the backup is probed at standby_interval
// while the primary carries the traffic, keeps its state, carries the
// traffic as soon as the primary fails and is then probed at
// probe.interval again.
func TestPolicyStandby(t *testing.T) {
	r := newPolicyRig(t, `
[[policy]]
name = "default"
tiers = [["isp1"], ["lte"]]
standby_interval = "2s"
`)
	r.start()
	for _, u := range []string{"isp1", "lte"} {
		r.waitState(u, "active", 15*time.Second)
	}
	rounds := func() (isp1, lte uint64) {
		s := r.status()
		return uplinkOf(t, s, "isp1").Probe.Rounds, uplinkOf(t, s, "lte").Probe.Rounds
	}
	// Rounds over a stretch of time: a rate, compared with the primary's.
	p := r.cfgProbe()
	a1, l1 := rounds()
	time.Sleep(4 * time.Second)
	a2, l2 := rounds()
	if primary, backup := a2-a1, l2-l1; backup*2 >= primary || backup == 0 {
		t.Fatalf("in 4s the primary did %d probe rounds and the backup %d: want the backup every 2s, the primary every %v",
			primary, backup, p.interval)
	}
	mark := r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP1, true); err != nil {
		t.Fatal(err)
	}
	r.waitLog(mark, regexp.MustCompile(`msg="policy changed tier" policy=default from=1 to=2`), 10*time.Second)
	if s := r.status(); uplinkOf(t, s, "lte").State != "active" {
		t.Fatalf("the backup is %s when its tier is needed", uplinkOf(t, s, "lte").State)
	}
	if split, err := r.lab.Split(r.ctx, 100); err != nil || split["eth3"] != 100 {
		t.Fatalf("split with the primary down: %v, %v", split, err)
	}
	_, l1 = rounds()
	time.Sleep(3 * time.Second)
	if _, l2 = rounds(); time.Duration(l2-l1)*p.interval < 2*time.Second {
		t.Fatalf("the backup in use did %d probe rounds in 3s, want about %d (probe.interval %v)", l2-l1, 3*time.Second/p.interval, p.interval)
	}
}

// Issue 10 with issue 9's adoption: kill -9 and a new start change nothing
// of the policies' routing (an uplink only another policy uses is held
// like one in the balance until its first verdict).
func TestPolicyRestart(t *testing.T) {
	r := newRig(t, coreConfig("")+`
[[policy]]
name = "default"
tiers = [["isp1"], ["isp2"]]

[[policy]]
name = "voip"
tiers = [["isp2"], ["isp1"]]

[[rule]]
to = ["198.18.0.3/32"]
policy = "voip"
`)
	r.start()
	r.waitState("isp1", "active", 15*time.Second)
	r.waitState("isp2", "active", 15*time.Second)
	r.waitTier("voip", 1)
	before := r.ours()
	r.stop(syscall.SIGKILL)
	mark := r.mark()
	r.start() // returns after the first reconcile
	if after := r.ours(); atGroupIDs(after) != atGroupIDs(before) {
		t.Fatalf("routing changed across kill -9:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if strings.Contains(r.logSince(mark), `msg="routing updated"`) {
		t.Fatalf("the new run changed the routing:\n%s", r.logSince(mark))
	}
}

// logSince is the daemon's log after mark.
func (r *rig) logSince(mark int) string {
	b, _ := os.ReadFile(r.logPath)
	return string(b[min(mark, len(b)):])
}
