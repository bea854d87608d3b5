package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultQueue is the number of invocations that may wait for a free slot.
const DefaultQueue = 256

// maxStderr is how much of a hook's standard error is logged.
const maxStderr = 4096

// Job is one invocation of a hook program.
type Job struct {
	Hook    string   // the setting that asked for it, for logs: "on_down"
	Argv    []string // program (absolute path) and arguments
	Event   Event
	Timeout time.Duration
}

// Stats counts what a Runner did since it was created.
type Stats struct {
	Started  uint64 // programs started (or that failed to start)
	Failed   uint64 // ended with a non-zero status, by a signal, or could not start
	TimedOut uint64 // killed at their timeout (also counted in Failed)
	Dropped  uint64 // not run: queue full, or still queued at shutdown
	Running  int64
}

// Runner runs hook jobs in the background. Create it with New, start Run
// in a goroutine, and Enqueue jobs from anywhere.
type Runner struct {
	log      *slog.Logger
	queue    chan Job
	max      atomic.Int64
	wake     chan struct{} // max changed
	finished chan string   // a program ended: its uplink

	started, failed, timedOut, dropped atomic.Uint64
	running                            atomic.Int64
}

// New returns a Runner that runs at most maxRunning programs at once and
// queues at most queue more.
func New(log *slog.Logger, maxRunning, queue int) *Runner {
	r := &Runner{
		log:      log,
		queue:    make(chan Job, queue),
		wake:     make(chan struct{}, 1),
		finished: make(chan string),
	}
	r.max.Store(int64(max(maxRunning, 1)))
	return r
}

// SetMaxRunning changes the number of programs that may run at once. Ones
// already running are not stopped.
func (r *Runner) SetMaxRunning(n int) {
	r.max.Store(int64(max(n, 1)))
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Enqueue queues j and returns at once. It returns false, and logs, when
// the queue is full and j is dropped.
func (r *Runner) Enqueue(j Job) bool {
	select {
	case r.queue <- j:
		return true
	default:
		r.dropped.Add(1)
		r.log.Warn("hook dropped: queue full", "hook", j.Hook, "program", j.Argv[0], "uplink", j.Event.Uplink,
			"to", j.Event.To, "queued", cap(r.queue))
		return false
	}
}

// Stats returns the counters; safe to call from any goroutine.
func (r *Runner) Stats() Stats {
	return Stats{
		Started:  r.started.Load(),
		Failed:   r.failed.Load(),
		TimedOut: r.timedOut.Load(),
		Dropped:  r.dropped.Load(),
		Running:  r.running.Load(),
	}
}

// Run starts queued jobs until ctx is done. Jobs of one uplink run one at
// a time, in the order they were queued, so a stateful hook sees an
// uplink's transitions in order even during a flap; jobs of different
// uplinks run in parallel up to the limit. Then it drops the jobs still
// queued or waiting and returns once every running program has ended:
// normally, or killed at its own timeout. Run must be called once.
func (r *Runner) Run(ctx context.Context) {
	running := 0
	// waiting holds jobs taken from the queue whose uplink still has a
	// job running, or that found no free slot; in queue order.
	var waiting []Job
	busy := make(map[string]bool)
	start := func(j Job) {
		running++
		busy[j.Event.key()] = true
		r.running.Add(1)
		go func() {
			r.exec(j)
			r.running.Add(-1)
			r.finished <- j.Event.key()
		}()
	}
	// startWaiting starts, in order, the waiting jobs whose uplink is
	// free; a later job of an uplink never overtakes an earlier one,
	// because the first one started makes the uplink busy.
	startWaiting := func() {
		blocked := make(map[string]bool)
		waiting = slices.DeleteFunc(waiting, func(j Job) bool {
			u := j.Event.key()
			if int64(running) >= r.max.Load() || busy[u] || blocked[u] {
				blocked[u] = true
				return false
			}
			start(j)
			return true
		})
	}
	for {
		// Jobs are taken from the queue only for a free slot (the queue
		// bounds what waits for one), or to look past jobs of a busy
		// uplink.
		var in <-chan Job
		if int64(running) < r.max.Load() && len(waiting) < cap(r.queue) {
			in = r.queue
		}
		select {
		case j := <-in:
			waiting = append(waiting, j)
			startWaiting()
		case u := <-r.finished:
			running--
			delete(busy, u)
			startWaiting()
		case <-r.wake:
			startWaiting()
		case <-ctx.Done():
			n := r.drop() + len(waiting)
			r.dropped.Add(uint64(len(waiting)))
			if n > 0 {
				r.log.Warn("hooks not run: shutting down", "dropped", n)
			}
			if running > 0 {
				r.log.Info("waiting for running hooks", "running", running)
			}
			for ; running > 0; running-- {
				<-r.finished
			}
			return
		}
	}
}

// drop empties the queue and returns how many jobs it held.
func (r *Runner) drop() int {
	n := 0
	for {
		select {
		case <-r.queue:
			n++
			r.dropped.Add(1)
		default:
			return n
		}
	}
}

// exec runs one job to its end and logs the outcome.
func (r *Runner) exec(j Job) {
	r.started.Add(1)
	log := r.log.With("hook", j.Hook, "program", j.Argv[0], "uplink", j.Event.Uplink, "to", j.Event.To)
	if err := checkProgram(j.Argv[0]); err != nil {
		r.failed.Add(1)
		log.Error("hook refused: another user could have replaced it", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.Argv[0], j.Argv[1:]...)
	cmd.Env = append(environ(), j.Event.Env()...)
	cmd.Dir = "/"
	// Its own process group, so that the timeout kills whatever it
	// started too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A process that left the group may still hold standard error open.
	cmd.WaitDelay = time.Second
	stderr := &capped{max: maxStderr}
	cmd.Stderr = stderr

	start := time.Now()
	err := cmd.Run()
	took := time.Since(start).Round(time.Millisecond)
	attrs := []any{"took", took}
	if s := stderr.String(); s != "" {
		attrs = append(attrs, "stderr", s)
	}
	switch {
	case err == nil:
		log.Info("hook done", attrs...)
		return
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		r.timedOut.Add(1)
		log.Warn("hook killed at its timeout, with its process group", append(attrs, "timeout", j.Timeout)...)
	default:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			log.Warn("hook failed", append(attrs, "status", exitStatus(ee))...)
		} else {
			log.Error("hook could not run", append(attrs, "err", err)...)
		}
	}
	r.failed.Add(1)
}

// environ is the daemon's environment without UPLINKD_ variables: a hook
// sees only those of its own transition.
func environ() []string {
	env := os.Environ()
	return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "UPLINKD_") })
}

// exitStatus describes how a process ended: "exit 3" or "signal killed".
func exitStatus(ee *exec.ExitError) string {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ee.ExitCode())
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	max  int
	b    []byte
	lost int
}

func (c *capped) Write(p []byte) (int, error) {
	n := min(len(p), c.max-len(c.b))
	c.b = append(c.b, p[:n]...)
	c.lost += len(p) - n
	return len(p), nil
}

func (c *capped) String() string {
	s := strings.TrimRight(string(c.b), "\n")
	if c.lost > 0 {
		s += fmt.Sprintf(" [%d more bytes]", c.lost)
	}
	return s
}
