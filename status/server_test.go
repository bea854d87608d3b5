package status

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// loop stands in for the daemon's event loop: it owns a snapshot, answers
// requests the way the daemon does and parks long polls in Waiters.
type loop struct {
	reqs    chan Request
	bump    chan string // change the state: a new reason for isp1
	reload  *ReloadResult
	stalled chan struct{} // closed: the loop answers nothing
	parked  chan int      // reports Waiters.Len after each request
}

func newLoop() *loop {
	return &loop{reqs: make(chan Request), bump: make(chan string), parked: make(chan int, 100)}
}

func (l *loop) run(ctx context.Context) {
	var w Waiters
	snap := &Snapshot{Version: 1, Balancer: "multipath", Uplinks: []Uplink{{Name: "isp1", State: "active", Reason: "start"}}}
	for {
		select {
		case <-ctx.Done():
			return
		case reason := <-l.bump:
			next := *snap
			next.Version++
			next.Uplinks = []Uplink{{Name: "isp1", State: "active", Reason: reason}}
			snap = &next
			w.Release(snap)
		case r := <-l.reqs:
			if l.stalled != nil {
				<-l.stalled
			}
			switch {
			case r.Op == OpReload:
				r.Reply <- Reply{Reload: l.reload}
			case r.After >= snap.Version:
				w.Park(r)
			default:
				r.Reply <- Reply{Snapshot: snap}
			}
			l.parked <- w.Len()
		}
	}
}

// serve starts a server with l behind it until the test ends.
func serve(t *testing.T, l *loop) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "uplinkd.sock")
	srv, err := Listen(path, l.reqs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.run(ctx) })
	wg.Go(func() { srv.Serve(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket left behind after Serve: %v", err)
		}
	})
	return path
}

func TestGet(t *testing.T) {
	l := newLoop()
	path := serve(t, l)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket mode %v, want 0660", perm)
	}
	snap, err := Get(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != 1 || snap.Balancer != "multipath" || snap.Uplinks[0].Name != "isp1" {
		t.Errorf("snapshot %+v", snap)
	}
}

func TestReload(t *testing.T) {
	l := newLoop()
	l.reload = &ReloadResult{OK: true, Changes: []string{"uplink isp2: weight 3 -> 1"}}
	path := serve(t, l)
	res, err := Reload(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l.reload, res); diff != "" {
		t.Errorf("reload result (-want +got):\n%s", diff)
	}
}

// A watch gets the current snapshot at once and each change as it
// happens; when the client goes, its parked request is dropped.
func TestWatch(t *testing.T) {
	l := newLoop()
	path := serve(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *Snapshot)
	done := make(chan error)
	go func() {
		done <- Watch(ctx, path, func(s *Snapshot) error {
			got <- s
			return nil
		})
	}()
	next := func() *Snapshot {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no snapshot within 5s")
			return nil
		}
	}
	if s := next(); s.Version != 1 {
		t.Fatalf("first snapshot version %d, want 1", s.Version)
	}
	waitParked(t, l, 1)
	start := time.Now()
	l.bump <- "carrier lost"
	s := next()
	if s.Version != 2 || s.Uplinks[0].Reason != "carrier lost" {
		t.Fatalf("after a change: %+v", s)
	}
	if took := time.Since(start); took > refresh/2 {
		t.Errorf("change delivered after %v: not pushed", took)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
}

// Without changes a watch still gets fresh figures every refresh period.
func TestWatchRefresh(t *testing.T) {
	l := newLoop()
	path := serve(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), refresh+refresh/2)
	defer cancel()
	n := 0
	if err := Watch(ctx, path, func(*Snapshot) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d snapshots in 1.5 refresh periods, want 2", n)
	}
}

func waitParked(t *testing.T, l *loop, n int) {
	t.Helper()
	for {
		select {
		case got := <-l.parked:
			if got == n {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("loop never had %d parked requests", n)
		}
	}
}

func TestWaitersForgetGoneAskers(t *testing.T) {
	var w Waiters
	gone := make(chan struct{})
	close(gone)
	live := make(chan struct{})
	r1, r2 := make(chan Reply, 1), make(chan Reply, 1)
	w.Park(Request{Done: gone, Reply: r1})
	w.Park(Request{Done: live, Reply: r2})
	if w.Len() != 1 {
		t.Errorf("Len = %d after parking a gone and a live request, want 1", w.Len())
	}
	s := &Snapshot{Version: 7}
	w.Release(s)
	if len(r1) != 0 {
		t.Error("a gone asker was answered")
	}
	if rep := <-r2; rep.Snapshot != s {
		t.Errorf("live asker got %+v", rep)
	}
	if w.Len() != 0 {
		t.Errorf("Len = %d after Release", w.Len())
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	_, err := Get(context.Background(), filepath.Join(dir, "missing.sock"))
	if !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "missing.sock") {
		t.Errorf("no socket: %v", err)
	}
	// A socket file nobody listens on, as a killed daemon leaves it.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := Get(context.Background(), stale); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v", err)
	}
	// Listen takes the stale socket over.
	srv, err := Listen(stale, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("Listen on a stale socket: %v", err)
	}
	// ... but not a live one, nor something else.
	if _, err := Listen(stale, nil, nil); err == nil || !strings.Contains(err.Error(), "another uplinkd is running") {
		t.Errorf("Listen on a live socket: %v", err)
	}
	srv.ln.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(file, nil, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a file: %v", err)
	}
}

func TestLoopBusy(t *testing.T) {
	defer func(d time.Duration) { loopTimeout = d }(loopTimeout)
	loopTimeout = 100 * time.Millisecond
	l := newLoop()
	l.stalled = make(chan struct{})
	path := serve(t, l)
	defer close(l.stalled)
	_, err := Get(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "event loop did not answer within 100ms") {
		t.Errorf("busy loop: %v", err)
	}
}

func TestBadRequest(t *testing.T) {
	path := serve(t, newLoop())
	for req, want := range map[string]string{
		"hello\n":                 `{"error":"bad request: `,
		`{"op":"restart"}` + "\n": `{"error":"unknown op \"restart\""}`,
	} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req)
		b, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(b), want) {
			t.Errorf("request %q: response %q, want prefix %q", req, b, want)
		}
	}
}
