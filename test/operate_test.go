package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
	"github.com/vishvananda/netns"
)

// status asks the running daemon for a snapshot.
func (r *rig) status() *status.Snapshot {
	r.t.Helper()
	s, err := status.Get(r.ctx, r.socket)
	if err != nil {
		r.t.Fatalf("status: %v", err)
	}
	return s
}

// uplink returns the named uplink of s.
func uplinkOf(t *testing.T, s *status.Snapshot, name string) status.Uplink {
	t.Helper()
	for _, u := range s.Uplinks {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no uplink %s in status %+v", name, s)
	return status.Uplink{}
}

// uplinkd runs the uplinkd command (in the test's namespace: the socket is
// a file) and returns its output and exit status.
func (r *rig) uplinkd(args ...string) (stdout, stderr string, code int) {
	r.t.Helper()
	cmd := exec.CommandContext(r.ctx, filepath.Join(binDir, "uplinkd"), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		r.t.Fatalf("uplinkd %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// waitState waits until status shows uplink in state.
func (r *rig) waitState(uplink, state string, timeout time.Duration) *status.Snapshot {
	r.t.Helper()
	var s *status.Snapshot
	r.waitFor(uplink+" "+state+" in status", timeout, func() bool {
		s = r.status()
		return uplinkOf(r.t, s, uplink).State == state
	})
	return s
}

// Acceptance 1: a hook gets one invocation per transition with the right
// environment; a hook that never ends is killed at the timeout while the
// daemon goes on reacting to events.
func TestHooks(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	hang := filepath.Join(dir, "hang")
	for path, body := range map[string]string{
		// One file per invocation, written whole.
		record: `env | grep '^UPLINKD_' | sort > "$1/tmp.$$"; mv "$1/tmp.$$" "$1/inv.$(date +%s%N).$$"`,
		hang:   `sleep 1000 & echo $$ $! > "$1/hang.tmp"; mv "$1/hang.tmp" "$1/hang.pids"; wait`,
	} {
		if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r := newRig(t, coreConfig("")+fmt.Sprintf(`
[hooks]
on_transition = [%q, %q]
on_down = [%q, %q]
timeout = "3s"
`, record, dir, hang, dir))
	r.start()
	r.waitBoth()
	invocations := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "inv.*"))
		slices.Sort(m) // by time of writing
		return m
	}
	// Starting: down -> probing -> active for each uplink.
	r.waitFor("4 start-up hooks", 10*time.Second, func() bool { return len(invocations()) == 4 })

	mark := r.mark()
	before := time.Now()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "down", 5*time.Second)
	r.waitFor("the hook of isp2's transition", 5*time.Second, func() bool { return len(invocations()) == 5 })
	inv := invocations()[4]
	b, err := os.ReadFile(inv)
	if err != nil {
		t.Fatal(err)
	}
	env := make(map[string]string)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		env[k] = v
	}
	at, err := time.Parse(time.RFC3339, env["UPLINKD_TIME"])
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("UPLINKD_TIME=%q (%v): not an RFC 3339 time of the transition", env["UPLINKD_TIME"], err)
	}
	delete(env, "UPLINKD_TIME")
	want := map[string]string{
		"UPLINKD_UPLINK": "isp2", "UPLINKD_INTERFACE": "eth2", "UPLINKD_FAMILY": "ipv4", "UPLINKD_FROM": "active", "UPLINKD_TO": "down",
		"UPLINKD_REASON": "no carrier on eth2", "UPLINKD_ACTIVE": "1", "UPLINKD_UPLINKS": "2",
	}
	if fmt.Sprint(env) != fmt.Sprint(want) {
		t.Errorf("hook environment:\n%v\nwant\n%v", env, want)
	}
	if fi, err := os.Stat(inv); err == nil {
		t.Logf("hook latency: transition %s -> hook's file written %v later", at.Format("15:04:05.000000"), fi.ModTime().Sub(at).Round(time.Microsecond))
	}

	// The on_down hook never ends. While it runs, the daemon goes on:
	// isp2 comes back and is probed.
	r.waitFor("on_down hook running", 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "hang.pids"))
		return err == nil
	})
	b, _ = os.ReadFile(filepath.Join(dir, "hang.pids"))
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		pids = append(pids, pid)
	}
	mark = r.mark()
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "probing", 5*time.Second)
	for _, pid := range pids {
		if syscall.Kill(pid, 0) != nil {
			t.Fatalf("hang (pid %d) ended before the daemon reacted; the test shows nothing", pid)
		}
	}
	if s := r.status(); s.Hooks.Running < 1 {
		t.Errorf("status shows %d hooks running, want at least the hanging one", s.Hooks.Running)
	}
	line := r.waitLog(mark, regexp.MustCompile(`msg="hook killed at its timeout, with its process group" hook=on_down`), 10*time.Second)
	if !strings.Contains(line, "timeout=3s") {
		t.Errorf("kill: %s", line)
	}
	for _, pid := range pids {
		r.waitFor(fmt.Sprintf("pid %d gone", pid), 5*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
	}
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	// Exactly one invocation for each of the three transitions since.
	r.waitFor("hooks of probing and active", 5*time.Second, func() bool { return len(invocations()) == 7 })
	time.Sleep(300 * time.Millisecond)
	if n := len(invocations()); n != 7 {
		t.Errorf("%d on_transition invocations for 7 transitions", n)
	}
	s := r.status()
	if s.Hooks.Started != 8 || s.Hooks.TimedOut != 1 || s.Hooks.Failed != 1 || s.Hooks.Dropped != 0 {
		t.Errorf("hook counters %+v: want 7 on_transition and 1 on_down started, the latter timed out", s.Hooks)
	}
}

// Acceptance 2: `uplinkd status` and `--json` during carrier loss and
// blackhole, and `--watch`, with the real binary.
func TestStatusCommand(t *testing.T) {
	r := newRig(t, coreConfig(""))
	r.start()
	r.waitBoth()
	r.waitState("isp2", "active", 5*time.Second)

	s := r.statusJSON()
	if s.Balancer != "hash-threshold" || !s.Pinning.On || s.Pinning.Mask != "0xff000000" || s.Active != 2 || len(s.Uplinks) != 2 || s.Reconcile.Runs == 0 || s.Netlink.Dumps == 0 {
		t.Errorf("status: %+v", s)
	}
	isp2 := uplinkOf(t, s, "isp2")
	if isp2.Interface != "eth2" || isp2.Ifindex == 0 || !isp2.Carrier || !isp2.AdminUp || isp2.Address != "203.0.113.2/24" ||
		isp2.Gateway != "203.0.113.1" || isp2.Weight != 3 || !isp2.InBalance || isp2.Share != 0.75 ||
		!isp2.Probe.Enabled || !isp2.Probe.Running || isp2.Probe.Rounds == 0 || isp2.Probe.LastRTT <= 0 ||
		len(isp2.Probe.Targets) != 2 || isp2.Probe.Targets[0].Address != "198.18.0.1" || isp2.Probe.Targets[1].Address != "198.18.0.2" ||
		isp2.Probe.Stats.Probes == 0 || isp2.Probe.Stats.Lost != 0 {
		t.Errorf("isp2 active: %+v", isp2)
	}
	if tr := isp2.Transitions; len(tr) != 2 || tr[0].From != "down" || tr[1].To != "active" {
		t.Errorf("isp2 transitions: %+v", tr)
	}
	if got := uplinkOf(t, s, "isp1").Share; got != 0.25 {
		t.Errorf("isp1 share %v, want 0.25", got)
	}
	r.statusTable(`(?m)^isp1\s+active\s+\S+\s+eth1 #\d+\s+up\s+198\.51\.100\.2/24\s+198\.51\.100\.1\s+1\s+25%`,
		`(?m)^isp2\s+active\s+\S+\s+eth2 #\d+\s+up\s+203\.0\.113\.2/24\s+203\.0\.113\.1\s+3\s+75%`,
		`2 of 2 uplinks active`)

	// A watcher sees the carrier loss as it happens.
	watch := r.watch()
	if first := watch.next(t); uplinkOf(t, first, "isp2").State != "active" {
		t.Fatalf("first watched snapshot: %+v", first)
	}
	start := time.Now()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	for {
		if u := uplinkOf(t, watch.next(t), "isp2"); u.State == "down" {
			t.Logf("--watch showed isp2 down %v after the carrier loss", time.Since(start).Round(time.Millisecond))
			break
		}
	}
	watch.stop(t)
	s = r.statusJSON()
	isp2 = uplinkOf(t, s, "isp2")
	if isp2.State != "down" || isp2.Reason != "no carrier on eth2" || isp2.Carrier || isp2.InBalance || isp2.Share != 0 || isp2.Probe.Running {
		t.Errorf("isp2 without carrier: %+v", isp2)
	}
	if u := uplinkOf(t, s, "isp1"); u.Share != 1 || s.Active != 1 {
		t.Errorf("isp1 alone: share %v, %d active", u.Share, s.Active)
	}
	r.statusTable(`(?m)^isp2\s+down\s+\S+\s+eth2 #\d+\s+no carrier\s+203\.0\.113\.2/24\s+203\.0\.113\.1\s+3\s+-\s+stopped\s+no carrier on eth2$`,
		`(?m)^isp1\s+active\s.*\s100%\s`, `1 of 2 uplinks active`, `(?m)^\s+\d+s ago\s+isp2\s+active -> down\s+no carrier on eth2$`)

	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitState("isp2", "active", 10*time.Second)

	// Blackhole: the link stays up, the probes fail.
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitState("isp2", "probing", 10*time.Second)
	isp2 = uplinkOf(t, r.statusJSON(), "isp2")
	if !silentReason.MatchString(isp2.Reason) || !isp2.Carrier || isp2.InBalance || isp2.Probe.Failed < 1 || !isp2.Probe.Running {
		t.Errorf("isp2 blackholed: %+v", isp2)
	}
	r.statusTable(`(?m)^isp2\s+probing\s+\S+\s+eth2 #\d+\s+up\s+203\.0\.113\.2/24\s.*\s-\s+.*failed\s+(no reply for [\d.]+m?s to \d+ probes|probes failing)$`)
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitState("isp2", "active", 10*time.Second)

	// Response time of the status socket, in process.
	var took []time.Duration
	for range 50 {
		t0 := time.Now()
		r.status()
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	t.Logf("status request round trip over 50 requests: median %v, max %v", took[25].Round(time.Microsecond), took[49].Round(time.Microsecond))

	// A second uplinkd with the same socket refuses to start, before it
	// touches anything.
	ours := r.ours()
	out, err := r.lab.Exec(r.ctx, lab.Router, filepath.Join(binDir, "uplinkd"), "run", "--config", r.cfgPath)
	if err == nil || !strings.Contains(out, "another uplinkd is running") {
		t.Errorf("second uplinkd: %v\n%s", err, out)
	}
	if got := r.ours(); got != ours {
		t.Errorf("the second uplinkd changed the routing:\n%s\nbefore:\n%s", got, ours)
	}
	r.status() // the first one still answers

	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	_, stderr, code := r.uplinkd("status", "--socket", r.socket)
	if code != 3 || !strings.Contains(stderr, "uplinkd is not running (nothing listens on "+r.socket+")") {
		t.Errorf("status after stop: exit %d, %q", code, stderr)
	}
}

// statusJSON runs `uplinkd status --json`.
func (r *rig) statusJSON() *status.Snapshot {
	r.t.Helper()
	out, stderr, code := r.uplinkd("status", "--json", "--socket", r.socket)
	if code != 0 {
		r.t.Fatalf("uplinkd status --json: exit %d: %s", code, stderr)
	}
	var s status.Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		r.t.Fatalf("uplinkd status --json: %v\n%s", err, out)
	}
	return &s
}

// statusTable runs `uplinkd status` and checks its output against each
// regular expression.
func (r *rig) statusTable(patterns ...string) {
	r.t.Helper()
	out, stderr, code := r.uplinkd("status", "--socket", r.socket)
	if code != 0 {
		r.t.Fatalf("uplinkd status: exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "\x1b") {
		r.t.Errorf("colours without a terminal:\n%q", out)
	}
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			r.t.Errorf("uplinkd status output does not match %s:\n%s", p, out)
		}
	}
}

// watcher is a running `uplinkd status --watch --json`.
type watcher struct {
	cmd   *exec.Cmd
	lines chan string
}

func (r *rig) watch() *watcher {
	r.t.Helper()
	cmd := exec.CommandContext(r.ctx, filepath.Join(binDir, "uplinkd"), "status", "--watch", "--json", "--socket", r.socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	w := &watcher{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			w.lines <- sc.Text()
		}
		close(w.lines)
	}()
	return w
}

func (w *watcher) next(t *testing.T) *status.Snapshot {
	t.Helper()
	select {
	case l, ok := <-w.lines:
		if !ok {
			t.Fatal("uplinkd status --watch ended")
		}
		var s status.Snapshot
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatalf("watch line %q: %v", l, err)
		}
		return &s
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot from uplinkd status --watch within 5s")
		return nil
	}
}

func (w *watcher) stop(t *testing.T) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGINT)
	for range w.lines {
	}
	if err := w.cmd.Wait(); err != nil {
		t.Errorf("uplinkd status --watch after SIGINT: %v", err)
	}
}

// Acceptance 3: the metrics endpoint, scraped and parsed.
func TestMetricsEndpoint(t *testing.T) {
	r := newRig(t, coreConfig("")+"\n[metrics]\nlisten = \"127.0.0.1:9273\"\n")
	r.start()
	r.waitBoth()
	r.waitState("isp2", "active", 5*time.Second)
	client := r.routerHTTP()
	url := "http://127.0.0.1:9273/metrics"
	m := testutil.Scrape(t, client, url)
	for _, uplink := range []string{"isp1", "isp2"} {
		for _, st := range []string{"down", "probing", "degraded", "active"} {
			want := 0.0
			if st == "active" {
				want = 1
			}
			if got := value(t, m, "uplinkd_uplink_state", "uplink", uplink, "state", st); got != want {
				t.Errorf("uplinkd_uplink_state{uplink=%s,state=%s} = %v, want %v", uplink, st, got, want)
			}
		}
	}
	if v := value(t, m, "uplinkd_uplink_share_ratio", "uplink", "isp2"); v != 0.75 {
		t.Errorf("isp2 share %v", v)
	}
	// Active after up_after (2) good rounds.
	if v := value(t, m, "uplinkd_probe_rounds_total", "uplink", "isp1"); v < 2 {
		t.Errorf("isp1 probe rounds %v", v)
	}
	if v := value(t, m, "uplinkd_probe_rtt_seconds", "uplink", "isp1"); v < 2 {
		t.Errorf("isp1 RTT observations %v", v)
	}
	if v := value(t, m, "uplinkd_probe_packets_total", "uplink", "isp1"); v < 2 {
		t.Errorf("isp1 probe packets %v", v)
	}
	if v := value(t, m, "uplinkd_probe_target_loss_ratio", "uplink", "isp1", "target", "198.18.0.1", "method", "icmp"); v != 0 {
		t.Errorf("isp1 loss to 198.18.0.1 %v", v)
	}
	if v := value(t, m, "uplinkd_probe_target_rtt_seconds", "uplink", "isp2", "target", "198.18.0.2", "method", "icmp"); v <= 0 || v > 0.1 {
		t.Errorf("isp2 RTT to 198.18.0.2 %v", v)
	}
	if v := value(t, m, "uplinkd_reconcile_duration_seconds"); v < 1 {
		t.Errorf("reconcile observations %v", v)
	}
	for _, name := range []string{"uplinkd_netlink_resyncs_total", "uplinkd_netlink_enobufs_total", "uplinkd_hooks_dropped_total"} {
		if _, ok := m[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	if v := value(t, m, "uplinkd_info", "version", "dev", "balancer", "hash-threshold"); v != 1 {
		t.Errorf("uplinkd_info %v", v)
	}

	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitState("isp2", "down", 5*time.Second)
	m = testutil.Scrape(t, client, url)
	if v := value(t, m, "uplinkd_uplink_state", "uplink", "isp2", "state", "down"); v != 1 {
		t.Errorf("isp2 down gauge %v", v)
	}
	if v := value(t, m, "uplinkd_uplink_state", "uplink", "isp2", "state", "active"); v != 0 {
		t.Errorf("isp2 active gauge %v", v)
	}
	if v := value(t, m, "uplinkd_uplink_transitions_total", "uplink", "isp2", "from", "active", "to", "down"); v != 1 {
		t.Errorf("isp2 active->down transitions %v", v)
	}
	if v := value(t, m, "uplinkd_uplink_in_balance", "uplink", "isp2"); v != 0 {
		t.Errorf("isp2 in balance %v", v)
	}
}

// routerHTTP is an HTTP client whose connections are made in the router's
// namespace, where uplinkd listens.
func (r *rig) routerHTTP() *http.Client {
	r.t.Helper()
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { ns.Close() })
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		// A socket keeps the namespace it was created in.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			return nil, err
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			return nil, err
		}
		defer func() {
			if err := netns.Set(orig); err != nil {
				panic(fmt.Sprintf("cannot return to the original namespace: %v", err))
			}
		}()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	return client
}

// value returns the value of the series of family name with the given
// label pairs (a histogram's sample count); it fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		return testutil.Value(m)
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}
