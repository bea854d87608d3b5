package hooks

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log destination safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a Runner until the test ends, and returns it with its log.
func start(t *testing.T, maxRunning, queue int) (*Runner, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	r := New(slog.New(slog.NewTextHandler(logs, nil)), maxRunning, queue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r, logs
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var event = Event{
	Uplink: "isp2", Interface: "eth2", From: "active", To: "down",
	Reason: "no carrier on eth2", Time: time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.FixedZone("", 2*3600)),
	Active: 1, Uplinks: 2,
}

// of is the test event for another uplink.
func of(uplink string) Event {
	e := event
	e.Uplink = uplink
	return e
}

func TestEnvironmentAndArguments(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	hook := script(t, dir, "hook", `
{ env | grep '^UPLINKD_' | sort; printf 'arg=%s\n' "$@"; pwd; } > "$0.tmp" && mv "$0.tmp" "$OUT"
`)
	t.Setenv("OUT", out)                // the daemon's environment is passed on
	t.Setenv("UPLINKD_UPLINK", "stale") // but not its own UPLINKD_ variables
	t.Setenv("UPLINKD_REQUIRE_PRIV", "1")
	r, _ := start(t, 1, 8)
	if !r.Enqueue(Job{Hook: "on_transition", Argv: []string{hook, "a b", "$HOME", "*"}, Event: event, Timeout: 5 * time.Second}) {
		t.Fatal("Enqueue refused a job on an empty queue")
	}
	got := strings.Split(strings.TrimSpace(waitFile(t, out, 5*time.Second)), "\n")
	want := []string{
		"UPLINKD_ACTIVE=1",
		"UPLINKD_FAMILY=ipv4",
		"UPLINKD_FROM=active",
		"UPLINKD_INTERFACE=eth2",
		"UPLINKD_REASON=no carrier on eth2",
		"UPLINKD_TIME=2024-05-01T12:00:00.123+02:00",
		"UPLINKD_TO=down",
		"UPLINKD_UPLINK=isp2",
		"UPLINKD_UPLINKS=2",
		// No shell: arguments arrive exactly as written.
		"arg=a b",
		"arg=$HOME",
		"arg=*",
		"/",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hook saw (-want +got):\n%s", diff)
	}
	if ts := strings.TrimPrefix(got[5], "UPLINKD_TIME="); !rfc3339(ts) {
		t.Errorf("UPLINKD_TIME %q is not RFC 3339", ts)
	}
	waitFor(t, "stats", 5*time.Second, func() bool { return r.Stats().Started == 1 && r.Stats().Running == 0 })
	if s := r.Stats(); s != (Stats{Started: 1}) {
		t.Errorf("stats = %+v, want one started", s)
	}
}

func rfc3339(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

func TestExitStatusAndStderrLogged(t *testing.T) {
	dir := t.TempDir()
	hook := script(t, dir, "fail", "echo 'webhook: connection refused' >&2\necho ignored\nexit 3\n")
	r, logs := start(t, 1, 8)
	r.Enqueue(Job{Hook: "on_down", Argv: []string{hook}, Event: event, Timeout: 5 * time.Second})
	r.Enqueue(Job{Hook: "on_down", Argv: []string{filepath.Join(dir, "missing")}, Event: event, Timeout: 5 * time.Second})
	waitFor(t, "two hooks finished", 5*time.Second, func() bool { return strings.Count(logs.String(), "\n") >= 2 })
	l := logs.String()
	for _, want := range []string{
		`msg="hook failed" hook=on_down program=` + hook + ` uplink=isp2 to=down took=`,
		`stderr="webhook: connection refused" status="exit 3"`,
		`msg="hook could not run" hook=on_down program=` + filepath.Join(dir, "missing"),
		`no such file or directory`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, "ignored") {
		t.Errorf("standard output was logged:\n%s", l)
	}
	if s := r.Stats(); s.Started != 2 || s.Failed != 2 || s.TimedOut != 0 {
		t.Errorf("stats = %+v, want 2 started, 2 failed", s)
	}
}

func TestStderrCapped(t *testing.T) {
	dir := t.TempDir()
	hook := script(t, dir, "noisy", "head -c 10000 /dev/zero | tr '\\0' x >&2\n")
	r, logs := start(t, 1, 8)
	r.Enqueue(Job{Hook: "on_transition", Argv: []string{hook}, Event: event, Timeout: 5 * time.Second})
	waitFor(t, "hook done", 5*time.Second, func() bool { return strings.Contains(logs.String(), "hook done") })
	if l := logs.String(); !strings.Contains(l, strings.Repeat("x", maxStderr)+" [5904 more bytes]") || len(l) > maxStderr+500 {
		t.Errorf("stderr not capped at %d bytes: %d bytes of log", maxStderr, len(l))
	}
}

// A hook that never ends is killed at its timeout together with the
// processes it started; meanwhile other hooks still run.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pids := filepath.Join(dir, "pids")
	hang := script(t, dir, "hang", `sleep 1000 & echo $$ $! > "$0.tmp"; mv "$0.tmp" `+pids+"\nwait\n")
	quick := script(t, dir, "quick", `echo ran > "$0.ran"`+"\n")
	r, logs := start(t, 2, 8)
	r.Enqueue(Job{Hook: "on_down", Argv: []string{hang}, Event: event, Timeout: 500 * time.Millisecond})
	fields := strings.Fields(waitFile(t, pids, 5*time.Second))
	r.Enqueue(Job{Hook: "on_transition", Argv: []string{quick}, Event: of("isp3"), Timeout: 5 * time.Second})
	waitFile(t, quick+".ran", 2*time.Second)
	if s := r.Stats(); s.TimedOut != 0 {
		t.Fatalf("quick ran only after hang was killed: %+v", s)
	}

	waitFor(t, "hang killed", 5*time.Second, func() bool { return r.Stats().TimedOut == 1 })
	for _, f := range fields {
		pid, _ := strconv.Atoi(f)
		// Both the hook and its background child are gone (reaped: the
		// hook by the runner, the child by init once orphaned).
		waitFor(t, "process "+f+" gone", 5*time.Second, func() bool { return !alive(pid) })
	}
	if l := logs.String(); !strings.Contains(l, `msg="hook killed at its timeout, with its process group" hook=on_down`) ||
		!strings.Contains(l, "timeout=500ms") {
		t.Errorf("log:\n%s", l)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	return !strings.HasPrefix(s[strings.LastIndexByte(s, ')')+2:], "Z")
}

// At most max hooks run at once; the others wait their turn and all run.
func TestConcurrencyBound(t *testing.T) {
	dir := t.TempDir()
	counts := filepath.Join(dir, "counts")
	hook := script(t, dir, "hook", `
touch "`+dir+`/running.$$"
sleep 0.2
ls "`+dir+`" | grep -c '^running\.' >> "`+counts+`"
rm "`+dir+`/running.$$"
`)
	r, _ := start(t, 2, 16)
	for i := range 6 {
		r.Enqueue(Job{Hook: "on_transition", Argv: []string{hook}, Event: of(fmt.Sprintf("isp%d", i)), Timeout: 5 * time.Second})
	}
	waitFor(t, "six hooks", 10*time.Second, func() bool { return r.Stats().Started == 6 && r.Stats().Running == 0 })
	b, _ := os.ReadFile(counts)
	seen := strings.Fields(string(b))
	if len(seen) != 6 {
		t.Fatalf("%d hooks recorded, want 6: %q", len(seen), seen)
	}
	if slices.Max(seen) > "2" {
		t.Errorf("running at once: %v, want at most 2", seen)
	}
	if !slices.Contains(seen, "2") {
		t.Errorf("running at once: %v, never 2: the bound is too tight", seen)
	}
}

// Enqueue never blocks: with every slot taken and the queue full, jobs are
// dropped and counted. Raising the limit lets queued jobs start.
func TestQueueFullDropsAndSetMaxRunning(t *testing.T) {
	dir := t.TempDir()
	hang := script(t, dir, "hang", "exec sleep 1000\n")
	r, logs := start(t, 1, 2)
	// The timeout ends the test's hooks; the test is done well before it.
	job := Job{Hook: "on_down", Argv: []string{hang}, Event: event, Timeout: 1500 * time.Millisecond}
	r.Enqueue(job)
	waitFor(t, "first hook running", 5*time.Second, func() bool { return r.Stats().Running == 1 })
	var accepted []bool
	start := time.Now()
	for i := range 5 {
		job.Event = of(fmt.Sprintf("isp%d", 10+i))
		accepted = append(accepted, r.Enqueue(job))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("5 Enqueue calls took %v", took)
	}
	if diff := cmp.Diff([]bool{true, true, false, false, false}, accepted); diff != "" {
		t.Errorf("accepted (-want +got):\n%s", diff)
	}
	if s := r.Stats(); s.Dropped != 3 {
		t.Errorf("dropped = %d, want 3", s.Dropped)
	}
	if !strings.Contains(logs.String(), `msg="hook dropped: queue full" hook=on_down`) {
		t.Errorf("drop not logged:\n%s", logs)
	}
	r.SetMaxRunning(3)
	waitFor(t, "queued hooks started", 5*time.Second, func() bool { return r.Stats().Running == 3 })
	if s := r.Stats(); s.TimedOut != 0 {
		t.Fatalf("a hook timed out during the test: %+v", s)
	}
}

// Shutdown drops queued jobs and waits for the running ones.
func TestShutdown(t *testing.T) {
	dir := t.TempDir()
	slow := script(t, dir, "slow", `sleep 0.3; touch "$0.done"`+"\n")
	logs := &syncBuffer{}
	r := New(slog.New(slog.NewTextHandler(logs, nil)), 1, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	for range 3 {
		r.Enqueue(Job{Hook: "on_active", Argv: []string{slow}, Event: event, Timeout: 5 * time.Second})
	}
	waitFor(t, "one running", 5*time.Second, func() bool { return r.Stats().Running == 1 })
	cancel()
	<-done
	if _, err := os.Stat(slow + ".done"); err != nil {
		t.Errorf("Run returned before the running hook finished: %v", err)
	}
	if s := r.Stats(); s.Started != 1 || s.Dropped != 2 || s.Running != 0 {
		t.Errorf("stats = %+v, want 1 started, 2 dropped", s)
	}
	if !strings.Contains(logs.String(), `msg="hooks not run: shutting down" dropped=2`) {
		t.Errorf("log:\n%s", logs)
	}
}

// The hooks of one uplink run one after the other, in the order of its
// transitions, however many slots are free: a slow "down" hook still
// ends before the "active" hook that follows it starts. Another uplink's
// hook meanwhile runs in parallel.
func TestOneUplinkInOrder(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	// Each invocation logs its start and end; the first one is slow.
	hook := script(t, dir, "hook", `
echo "start $UPLINKD_UPLINK $UPLINKD_TO" >> "`+log+`"
[ "$UPLINKD_TO" = down ] && sleep 0.3
echo "end $UPLINKD_UPLINK $UPLINKD_TO" >> "`+log+`"
`)
	r, _ := start(t, 4, 16)
	for _, to := range []string{"down", "probing", "active"} {
		e := event
		e.To = to
		r.Enqueue(Job{Hook: "on_transition", Argv: []string{hook}, Event: e, Timeout: 5 * time.Second})
	}
	other := of("isp9")
	other.To = "active"
	r.Enqueue(Job{Hook: "on_transition", Argv: []string{hook}, Event: other, Timeout: 5 * time.Second})
	waitFor(t, "four hooks", 10*time.Second, func() bool { return r.Stats().Started == 4 && r.Stats().Running == 0 })
	b, _ := os.ReadFile(log)
	var mine []string
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines {
		if strings.Contains(l, " isp2 ") {
			mine = append(mine, l)
		}
	}
	want := []string{"start isp2 down", "end isp2 down", "start isp2 probing", "end isp2 probing", "start isp2 active", "end isp2 active"}
	if diff := cmp.Diff(want, mine); diff != "" {
		t.Errorf("isp2's hooks ran out of order (-want +got):\n%s", diff)
	}
	// isp9's hook did not wait for isp2's slow one.
	if i, j := slices.Index(lines, "end isp9 active"), slices.Index(lines, "end isp2 down"); i < 0 || j < 0 || i > j {
		t.Errorf("isp9's hook waited for isp2's:\n%s", b)
	}
}

// A program any user could have replaced is not run: writable by others,
// or in a directory others may write without the sticky bit. A sticky
// directory (like /tmp) is fine.
func TestRefusesReplaceablePrograms(t *testing.T) {
	tests := []struct {
		name            string
		dirMode, mode   os.FileMode
		refused, reason string
	}{
		{"world-writable program", 0o755, 0o757, "yes", "is writable by any user (mode 0757)"},
		{"world-writable directory", 0o777, 0o755, "yes", "which any user may write (mode 0777, no sticky bit)"},
		{"sticky world-writable directory", 0o777 | os.ModeSticky, 0o755, "", ""},
		{"group-writable program", 0o755, 0o775, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "hooks")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			hook := script(t, dir, "hook", `touch "$0.ran"`+"\n")
			if err := os.Chmod(hook, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			// A symlink in a safe place does not hide its target.
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(hook, link); err != nil {
				t.Fatal(err)
			}
			r, logs := start(t, 1, 8)
			for _, p := range []string{hook, link} {
				r.Enqueue(Job{Hook: "on_down", Argv: []string{p}, Event: event, Timeout: 5 * time.Second})
			}
			waitFor(t, "two hooks", 5*time.Second, func() bool { return r.Stats().Started == 2 && r.Stats().Running == 0 })
			_, err := os.Stat(hook + ".ran")
			if tt.refused == "" {
				if err != nil || r.Stats().Failed != 0 {
					t.Fatalf("a safe hook did not run: %v, %+v\n%s", err, r.Stats(), logs)
				}
				return
			}
			if err == nil {
				t.Fatal("the hook ran")
			}
			if r.Stats().Failed != 2 || strings.Count(logs.String(), `msg="hook refused: another user could have replaced it"`) != 2 ||
				!strings.Contains(logs.String(), tt.reason) {
				t.Fatalf("stats %+v, log:\n%s", r.Stats(), logs)
			}
		})
	}
}

// Values in a hook's environment are single lines without NUL or escape
// sequences, whatever a reason holds.
func TestEnvironmentOneLine(t *testing.T) {
	e := event
	e.Reason = "probe failed\nUPLINKD_TO=active\x00\x1b[2J"
	e.Interface = "eth\x1b2"
	env := e.Env()
	for _, kv := range env {
		if strings.ContainsFunc(kv, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Errorf("control character in %q", kv)
		}
	}
	for _, want := range []string{`UPLINKD_REASON=probe failed\nUPLINKD_TO=active\x00\x1b[2J`, `UPLINKD_INTERFACE=eth\x1b2`} {
		if !slices.Contains(env, want) {
			t.Errorf("environment lacks %s: %q", want, env)
		}
	}

	// And a hook really gets it so.
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	hook := script(t, dir, "hook", `env | grep '^UPLINKD_' > "$0.tmp" && mv "$0.tmp" "`+out+`"`+"\n")
	r, _ := start(t, 1, 8)
	r.Enqueue(Job{Hook: "on_down", Argv: []string{hook}, Event: e, Timeout: 5 * time.Second})
	got := waitFile(t, out, 5*time.Second)
	if n := strings.Count("\n"+got, "\nUPLINKD_TO="); n != 1 {
		t.Fatalf("the reason forged a variable (%d UPLINKD_TO lines):\n%s", n, got)
	}
}
