package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/status"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// The loop tests run the whole event loop (Run) against fakeNet and
// fakeProbers: no root, no sockets but the status socket in a temporary
// directory. The lab: LAN eth0 (#2), isp1 on eth1 (#3) with gateway
// 198.51.100.1, isp2 on eth2 (#4) with gateway 203.0.113.1 and weight 3.
// The balance route is written "ifindex:weight ...", a single path
// "ifindex".

const (
	eth1 = 3
	eth2 = 4
	// labBalance is [routing] balance_table's default.
	labBalance = 250
)

func labSnapshot() events.Snapshot {
	return events.Snapshot{
		Links: []events.Link{
			{Index: 2, Name: "eth0", AdminUp: true, Carrier: true},
			{Index: eth1, Name: "eth1", AdminUp: true, Carrier: true},
			{Index: eth2, Name: "eth2", AdminUp: true, Carrier: true},
		},
		Addrs: []events.Addr{
			{Index: 2, Prefix: prefix("192.0.2.1/24")},
			{Index: eth1, Prefix: prefix("198.51.100.2/24")},
			{Index: eth2, Prefix: prefix("203.0.113.2/24")},
		},
	}
}

// probed is the [probe] section of the tests that probe.
const probed = "[probe]\ntargets = [\"198.18.0.1\", \"198.18.0.2\"]\n"

// loop is one run of the daemon against fakes.
type loop struct {
	t      *testing.T
	d      *Daemon
	k      *fakeNet
	p      *fakeProbers
	dir    string
	socket string
	path   string // the configuration file
	keep   chan os.Signal
	done   chan error
	stop   func()
}

// startLoop writes a configuration (the lab's uplinks, extra appended
// before them: sections such as [probe] or [hooks]) and runs the daemon on
// k until the test ends, checking then that Run returned nil and left no
// goroutine behind. It returns once the daemon is ready.
func startLoop(t *testing.T, k *fakeNet, extra string) *loop {
	t.Helper()
	return startLoopWith(t, k, extra, testUplinks)
}

// startLoopWith is startLoop with other [[uplink]] tables than the lab's.
func startLoopWith(t *testing.T, k *fakeNet, extra, uplinks string) *loop {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })

	dir := t.TempDir()
	l := &loop{t: t, k: k, p: newFakeProbers(), dir: dir, socket: filepath.Join(dir, "uplinkd.sock"),
		path: filepath.Join(dir, "uplinkd.toml"), keep: make(chan os.Signal, 1), done: make(chan error, 1)}
	k.mu.Lock()
	if k.snap.Links == nil {
		k.snap = labSnapshot()
	}
	k.mu.Unlock()
	l.writeConfig(extra, uplinks)
	cfg, err := config.Load(l.path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.d = New(cfg, log, Options{ConfigPath: l.path, Keep: l.keep, Kernel: k.kernel(l.p)})
	ready := make(chan struct{})
	l.d.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { l.done <- l.d.Run(ctx) }()
	l.stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-l.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context was cancelled")
		}
	})
	t.Cleanup(l.stop)
	select {
	case <-ready:
	case err := <-l.done:
		t.Fatalf("Run returned before it was ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not get ready")
	}
	return l
}

func (l *loop) writeConfig(extra, uplinks string) {
	l.t.Helper()
	doc := fmt.Sprintf("[status]\nsocket = %q\n[routing]\nlan_interfaces = [\"eth0\"]\nstate_dir = %q\n%s\n%s",
		l.socket, filepath.Join(l.dir, "state"), extra, uplinks)
	if err := os.WriteFile(l.path, []byte(doc), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// status asks the daemon, through its socket (and so through the loop).
func (l *loop) status() *status.Snapshot {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := status.Get(ctx, l.socket)
	if err != nil {
		l.t.Fatalf("status: %v", err)
	}
	return s
}

func (l *loop) states() map[string]string {
	out := make(map[string]string)
	for _, u := range l.status().Uplinks {
		out[u.Name] = u.State
	}
	return out
}

// waitBalance waits for the installed balance route to be want.
func (l *loop) waitBalance(want string) {
	l.t.Helper()
	waitFor(l.t, fmt.Sprintf("balance %q (have %q)", want, l.k.balance()), func() bool { return l.k.balance() == want })
}

// carrier sets the carrier of link index in the fake kernel and reports
// the change through the subscription, as the kernel does.
func (l *loop) carrier(index int, on bool) {
	l.t.Helper()
	var link events.Link
	l.k.setLink(index, func(k *events.Link) { k.Carrier = on; link = *k })
	l.k.live(l.t).send(l.t, events.LinkEvent{Link: link})
}

// TestLoopBurstCoalesced: events that queued up while the loop was busy
// make one reconcile, and link and address events no dump at all.
func TestLoopBurstCoalesced(t *testing.T) {
	l := startLoop(t, newFakeNet(labBalance), "")
	l.waitBalance("3:1 4:3")
	sub := l.k.live(t)
	dumps, recs, _ := l.k.counts()
	// Only what is ours reaches the loop.
	if f := sub.filter(); !slices.Equal(f.Interfaces, []string{"eth1", "eth2"}) || !slices.Equal(f.Indexes, []int{eth1, eth2}) ||
		!slices.Equal(f.Tables, []int{100, 200, labBalance}) || f.Protocol != 201 {
		t.Fatalf("event filter %+v", f)
	}

	// Hold the loop in the dump after lost events...
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	l.k.mu.Lock()
	l.k.gate, l.k.entered = gate, entered
	l.k.mu.Unlock()
	sub.send(t, events.ResyncEvent{Reason: "test: events lost"})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not dump after lost events")
	}
	l.k.mu.Lock()
	l.k.gate = nil
	l.k.mu.Unlock()
	// ...while isp1 loses its carrier and the kernel reports it with a
	// burst: link, address, route and rule events.
	l.k.setLink(eth1, func(k *events.Link) { k.Carrier = false })
	const n = 200
	burst := make([]events.Event, 0, n)
	for i := range n {
		switch i % 4 {
		case 0:
			burst = append(burst, events.LinkEvent{Link: events.Link{Index: eth1, Name: "eth1", AdminUp: true}})
		case 1:
			burst = append(burst, events.AddrEvent{Addr: events.Addr{Index: eth1, Prefix: prefix("198.51.100.2/24")}})
		case 2:
			burst = append(burst, events.RouteEvent{Table: 100, Protocol: 201, Deleted: true})
		case 3:
			burst = append(burst, events.RuleEvent{Priority: 10100, Table: 100, Protocol: 201, Deleted: true})
		}
	}
	sub.send(t, burst...)
	waitFor(t, "the burst queued", func() bool { return sub.delivered.Load() == n+1 })
	close(gate)

	l.waitBalance("4")
	if s := l.states(); s["isp1"] != "down" || s["isp2"] != "active" {
		t.Fatalf("states %v", s)
	}
	d, r, c := l.k.counts()
	if d-dumps != 1 || r-recs != 2 || c != 0 {
		l.k.mu.Lock()
		defer l.k.mu.Unlock()
		t.Fatalf("the resync and the burst behind it made %d dumps and %d reconciles, want 1 and 2 (cleanups %d); calls %q",
			d-dumps, r-recs, c, l.k.calls)
	}
}

// TestLoopDumpErrors: dumps that fail never remove or change the routing;
// they are retried with backoff, counted and shown in status, and a
// change that came meanwhile is applied once a dump works.
func TestLoopDumpErrors(t *testing.T) {
	interrupted := events.ErrDumpInterrupted
	for _, tt := range []struct {
		name      string
		errs      []error
		transient uint64
		lost      bool   // isp1's carrier goes during the failures
		want      string // the balance after
	}{
		{"interrupted and busy", []error{interrupted, fmt.Errorf("dump links: %w", unix.EBUSY), interrupted}, 3, false, "3:1 4:3"},
		{"receive buffer overrun", []error{fmt.Errorf("dump addresses: %w", unix.ENOBUFS)}, 1, false, "3:1 4:3"},
		{"not transient", []error{errors.New("dump links: decode: message shorter than its fixed header"), interrupted}, 1, false, "3:1 4:3"},
		{"carrier lost meanwhile", []error{interrupted, interrupted}, 2, true, "4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := startLoop(t, newFakeNet(labBalance), "")
			l.waitBalance("3:1 4:3")
			l.k.mu.Lock()
			installed := l.k.objects(l.k.installed)
			from, firstDump, firstRec := len(l.k.calls), len(l.k.dumpTimes), len(l.k.reconciles)
			l.k.dumpErrs = slices.Clone(tt.errs)
			// What status shows, as each dump after the first starts:
			// a failure shows until a dump works. Read in the loop,
			// so a test starved for the length of the backoff (100 ms)
			// cannot miss it; the socket is polled as well below.
			var atRetry []string
			dumpsSince := 0
			l.k.onDump = func() {
				if dumpsSince++; dumpsSince > 1 {
					atRetry = append(atRetry, l.d.snapshot().Netlink.LastError)
				}
			}
			l.k.mu.Unlock()

			// Lost events make the loop dump; the dumps fail, then
			// work. Meanwhile the routing must stay as it is, and status
			// must say why.
			if tt.lost {
				l.k.setLink(eth1, func(k *events.Link) { k.Carrier = false })
			}
			l.k.live(t).send(t, events.ResyncEvent{Reason: "test: events lost"})
			shown := false
			waitFor(t, "the failed dumps and a good one", func() bool {
				l.k.mu.Lock()
				recs, cleanups, tries := slices.Clone(l.k.reconciles[firstRec:]), l.k.cleanups, len(l.k.dumpTimes)-firstDump
				l.k.mu.Unlock()
				for i, d := range recs[:max(0, len(recs)-1)] {
					if !equalSets(l.k.objects(d), installed) {
						t.Fatalf("reconcile %d after the failure changed the routing to %v", i, d)
					}
				}
				if cleanups != 0 {
					t.Fatalf("%d cleanups", cleanups)
				}
				shown = shown || l.status().Netlink.LastError != ""
				return tries > len(tt.errs)
			})
			l.k.mu.Lock()
			l.k.onDump = nil
			retries := slices.Clone(atRetry)
			l.k.mu.Unlock()
			if len(retries) != len(tt.errs) || slices.Contains(retries, "") {
				t.Errorf("status as the retries started: %q, want the failure in each of %d", retries, len(tt.errs))
			}
			if !shown {
				t.Log("status through the socket never showed the failure (the test ran too late), though the loop's did")
			}
			waitFor(t, "the reconcile after the good dump", func() bool { _, r, _ := l.k.counts(); return r > firstRec })
			l.waitBalance(tt.want)

			l.k.mu.Lock()
			calls := slices.Clone(l.k.calls[from:])
			times := slices.Clone(l.k.dumpTimes[firstDump:])
			recs := slices.Clone(l.k.reconciles[firstRec:])
			l.k.mu.Unlock()
			want := append(slices.Repeat([]string{"dump failed"}, len(tt.errs)), "dump", "reconcile")
			if !slices.Equal(calls, want) {
				t.Fatalf("calls %q, want %q: nothing between the failed dumps", calls, want)
			}
			if !tt.lost && !equalSets(l.k.objects(recs[0]), installed) {
				t.Fatalf("the reconcile after the failures changed the routing to %v", recs[0])
			}
			// Backoff: 100 ms, doubling.
			for i := range tt.errs {
				if gap, min := times[i+1].Sub(times[i]), 100*time.Millisecond<<i; gap < min {
					t.Errorf("retry %d came after %v, want at least %v", i+1, gap, min)
				}
			}
			waitFor(t, "status to clear the failure", func() bool { return l.status().Netlink.LastError == "" })
			if n := l.status().Netlink; n.Errors != uint64(len(tt.errs)) || n.Transient != tt.transient {
				t.Fatalf("status netlink %+v, want %d errors, %d transient", n, len(tt.errs), tt.transient)
			}
		})
	}
}

// TestLoopSubscriptionFailures: a subscription that cannot be made (at
// start or later) or that dies keeps the routing as installed; it is made
// again with backoff, counted in status, and events flow again.
func TestLoopSubscriptionFailures(t *testing.T) {
	k := newFakeNet(labBalance)
	k.subErrs = []error{fmt.Errorf("join group link: %w", unix.EINTR)}
	l := startLoop(t, k, "")
	l.waitBalance("3:1 4:3")
	sub := k.live(t)

	k.mu.Lock()
	installed := k.objects(k.installed)
	firstRec, firstSub := len(k.reconciles), len(k.subTimes)
	k.subErrs = []error{fmt.Errorf("join group route: %w", unix.EBUSY), fmt.Errorf("join group link: %w", unix.EINTR)}
	k.mu.Unlock()
	sub.fail <- fmt.Errorf("receive rtnetlink events: %w", unix.EBADF)
	waitFor(t, "a new subscription", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.subs == 2 && k.sub != sub && k.sub.running.Load()
	})
	waitFor(t, "a reconcile after the resubscription", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.reconciles) > firstRec
	})

	k.mu.Lock()
	recs := slices.Clone(k.reconciles[firstRec:])
	times := slices.Clone(k.subTimes[firstSub:])
	cleanups := k.cleanups
	k.mu.Unlock()
	if cleanups != 0 {
		t.Fatalf("%d cleanups", cleanups)
	}
	for i, d := range recs {
		if !equalSets(k.objects(d), installed) {
			t.Fatalf("reconcile %d after the subscription failed changed the routing: %v", i, d)
		}
	}
	if len(times) != 3 {
		t.Fatalf("%d subscriptions after the failure, want 3", len(times))
	}
	for i, min := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond} {
		if gap := times[i+1].Sub(times[i]); gap < min {
			t.Errorf("subscription %d came after %v, want at least %v", i+2, gap, min)
		}
	}
	n := l.status().Netlink
	if n.Resubscribes != 4 || n.Errors != 4 || n.Transient != 3 {
		t.Fatalf("status netlink %+v, want 4 resubscriptions and errors, 3 transient", n)
	}
	// Events flow through the new subscription.
	l.carrier(eth2, false)
	l.waitBalance("3")
}

// TestLoopLinkChanges: every way isp1's link can stop carrying traffic
// takes it out of the balance on the event itself, and it comes back when
// the change is undone (carrier-only mode: no probes to wait for).
func TestLoopLinkChanges(t *testing.T) {
	eth1Link := events.Link{Index: eth1, Name: "eth1", AdminUp: true, Carrier: true}
	eth1Addr := events.Addr{Index: eth1, Prefix: prefix("198.51.100.2/24")}
	setLink := func(l events.Link) func(*events.Snapshot) {
		return func(s *events.Snapshot) {
			s.Links = slices.DeleteFunc(s.Links, func(o events.Link) bool { return o.Index == eth1 })
			if l.Name != "" {
				s.Links = append(s.Links, l)
			}
		}
	}
	setAddr := func(present bool) func(*events.Snapshot) {
		return func(s *events.Snapshot) {
			s.Addrs = slices.DeleteFunc(s.Addrs, func(o events.Addr) bool { return o.Index == eth1 })
			if present {
				s.Addrs = append(s.Addrs, eth1Addr)
			}
		}
	}
	for _, tt := range []struct {
		name         string
		change, undo func(*events.Snapshot)
		ev           events.Event
		undoEvs      []events.Event // the kernel's events as the change is undone
		reason       string         // isp1's, once down
	}{
		{"carrier lost", setLink(events.Link{Index: eth1, Name: "eth1", AdminUp: true}), setLink(eth1Link),
			events.LinkEvent{Link: events.Link{Index: eth1, Name: "eth1", AdminUp: true}}, []events.Event{events.LinkEvent{Link: eth1Link}},
			"no carrier on eth1"},
		{"set down", setLink(events.Link{Index: eth1, Name: "eth1"}), setLink(eth1Link),
			events.LinkEvent{Link: events.Link{Index: eth1, Name: "eth1"}}, []events.Event{events.LinkEvent{Link: eth1Link}},
			"eth1 is administratively down"},
		{"renamed away", setLink(events.Link{Index: eth1, Name: "wan9", AdminUp: true, Carrier: true}), setLink(eth1Link),
			events.LinkEvent{Link: events.Link{Index: eth1, Name: "wan9", AdminUp: true, Carrier: true}}, []events.Event{events.LinkEvent{Link: eth1Link}},
			"interface eth1 does not exist"},
		{"deleted", setLink(events.Link{}), setLink(eth1Link),
			events.LinkEvent{Link: eth1Link, Deleted: true}, []events.Event{events.LinkEvent{Link: eth1Link}, events.AddrEvent{Addr: eth1Addr}},
			"interface eth1 does not exist"},
		{"address removed", setAddr(false), setAddr(true),
			events.AddrEvent{Addr: eth1Addr, Deleted: true}, []events.Event{events.AddrEvent{Addr: eth1Addr}},
			"eth1 has no IPv4 address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := startLoop(t, newFakeNet(labBalance), "")
			l.waitBalance("3:1 4:3")
			l.k.change(tt.change)
			l.k.live(t).send(t, tt.ev)
			l.waitBalance("4")
			if u := l.status().Uplinks[0]; u.State != "down" || u.Reason != tt.reason {
				t.Fatalf("isp1 %s: %q, want down: %q", u.State, u.Reason, tt.reason)
			}
			l.k.change(tt.undo)
			l.k.live(t).send(t, tt.undoEvs...)
			l.waitBalance("3:1 4:3")
			if _, _, c := l.k.counts(); c != 0 {
				t.Fatalf("%d cleanups", c)
			}
		})
	}
}

// TestLoopAdoption: a run that exits keeping its routing (SIGUSR2) and the
// next run, which adopts it: the uplinks keep their place until their
// first probe verdict, and a carrier loss removes one at once.
func TestLoopAdoption(t *testing.T) {
	k := newFakeNet(labBalance)
	first := startLoop(t, k, probed)
	for _, u := range []string{"isp1", "isp2"} {
		first.p.prober(t, u).rounds(t, 2, true)
	}
	first.waitBalance("3:1 4:3")
	first.keep <- syscall.SIGUSR2
	select {
	case err := <-first.done:
		if err != nil || !first.d.Kept() {
			t.Fatalf("Run: %v, kept %v", err, first.d.Kept())
		}
		first.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return on SIGUSR2")
	}
	k.mu.Lock()
	left := k.objects(k.installed)
	firstRec := len(k.reconciles)
	if k.cleanups != 0 {
		t.Fatalf("SIGUSR2 removed the routing")
	}
	k.mu.Unlock()

	second := startLoop(t, k, probed)
	if s := second.states(); s["isp1"] != "probing" || s["isp2"] != "probing" {
		t.Fatalf("states after the restart %v", s)
	}
	k.mu.Lock()
	recs := slices.Clone(k.reconciles[firstRec:])
	k.mu.Unlock()
	if len(recs) == 0 {
		t.Fatal("no reconcile at start")
	}
	for i, d := range recs {
		if !equalSets(k.objects(d), left) {
			t.Fatalf("reconcile %d of the new run changed what the earlier one left: %v", i, d)
		}
	}
	for _, u := range second.status().Uplinks {
		if !u.InBalance {
			t.Errorf("%s is not shown in the balance while adopted", u.Name)
		}
	}

	// isp2 loses its carrier: out at once, without waiting for probes.
	second.carrier(eth2, false)
	second.waitBalance("3")
	// isp1's first verdict: it becomes active and stays.
	second.p.prober(t, "isp1").rounds(t, 2, true)
	waitFor(t, "isp1 active", func() bool { return second.states()["isp1"] == "active" })
	if b := k.balance(); b != "3" {
		t.Fatalf("balance %q after isp1's verdict", b)
	}
}

// TestLoopHooksInOrder: the hooks of one uplink's transitions in quick
// succession run one at a time, in order, although the first is slow.
func TestLoopHooksInOrder(t *testing.T) {
	k := newFakeNet(labBalance)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	hook := writeHook(t, dir, `echo "start $UPLINKD_UPLINK $UPLINKD_TO" >> "$1"
[ "$UPLINKD_TO" = down ] && sleep 0.2
echo "end $UPLINKD_UPLINK $UPLINKD_TO" >> "$1"
`)
	l := startLoop(t, k, fmt.Sprintf("[probe]\nflap_limit = 100\n[hooks]\non_transition = [%q, %q]\n", hook, log))
	l.waitBalance("3:1 4:3")
	// isp1 flaps three times; each change is its own burst.
	want := []string{"active"}
	for range 3 {
		l.carrier(eth1, false)
		l.waitBalance("4")
		l.carrier(eth1, true)
		l.waitBalance("3:1 4:3")
		want = append(want, "down", "active")
	}
	var lines []string
	waitFor(t, "every hook to end", func() bool {
		lines = hookLines(t, log, "isp1")
		return len(lines) == 2*len(want)
	})
	for i, to := range want {
		if lines[2*i] != "start isp1 "+to || lines[2*i+1] != "end isp1 "+to {
			t.Fatalf("isp1's hooks ran out of order or overlapped:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// TestLoopHooksParallel: hooks of different uplinks run at the same time:
// each of the two waits for the other to have started.
func TestLoopHooksParallel(t *testing.T) {
	k := newFakeNet(labBalance)
	dir := t.TempDir()
	hook := writeHook(t, dir, `d=$(dirname "$1")
touch "$d/started.$UPLINKD_UPLINK"
other=isp1; [ "$UPLINKD_UPLINK" = isp1 ] && other=isp2
i=0
while [ ! -e "$d/started.$other" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
if [ -e "$d/started.$other" ]; then echo "$UPLINKD_UPLINK with $other" >> "$1"; else echo "$UPLINKD_UPLINK alone" >> "$1"; fi
`)
	log := filepath.Join(dir, "log")
	l := startLoop(t, k, fmt.Sprintf("[hooks]\non_transition = [%q, %q]\n", hook, log))
	l.waitBalance("3:1 4:3")
	var lines []string
	waitFor(t, "both hooks", func() bool { lines = hookLines(t, log, ""); return len(lines) == 2 })
	slices.Sort(lines)
	if lines[0] != "isp1 with isp2" || lines[1] != "isp2 with isp1" {
		t.Fatalf("the hooks of two uplinks did not run at the same time: %q", lines)
	}
}

// TestLoopOrdering: a probe result makes a transition, the transition a
// reconcile, and the hook is queued once the routing changed: it sees the
// new balance, although the kernel is slow.
func TestLoopOrdering(t *testing.T) {
	k := newFakeNet(labBalance)
	dir := t.TempDir()
	k.stateFile = filepath.Join(dir, "balance")
	// A hook queued before the routing change would run while it is
	// made, and see the old balance.
	k.slow = 100 * time.Millisecond
	log := filepath.Join(dir, "log")
	hook := writeHook(t, dir, `echo "$UPLINKD_UPLINK $UPLINKD_FROM->$UPLINKD_TO balance=$(cat "$2")" >> "$1"`+"\n")
	l := startLoop(t, k, probed+fmt.Sprintf("[hooks]\non_transition = [%q, %q, %q]\n", hook, log, k.stateFile))

	steps := []struct {
		uplink string
		good   bool
		rounds int
		want   string // the hook's line
	}{
		{"isp1", true, 2, "isp1 probing->active balance=3"},
		{"isp2", true, 2, "isp2 probing->active balance=3:1 4:3"},
		{"isp1", false, 4, "isp1 active->probing balance=4"},
	}
	for _, s := range steps {
		l.p.prober(t, s.uplink).rounds(t, s.rounds, s.good)
		waitFor(t, fmt.Sprintf("hook line %q (have %q)", s.want, hookLines(t, log, s.uplink)), func() bool {
			return slices.Contains(hookLines(t, log, s.uplink), s.want)
		})
	}
}

// TestLoopReload: what a reload changes is applied to the installed
// routing before the reply; a key that needs a restart is reported as
// such and not applied; a file that does not load changes nothing.
func TestLoopReload(t *testing.T) {
	for _, tt := range []struct {
		name    string
		edit    func(doc string) string
		ok      bool
		changes []string
		balance string
		tables  []int // of the installed routes
	}{
		{"weight", func(doc string) string { return strings.Replace(doc, "weight = 3", "weight = 2", 1) },
			true, []string{"uplink isp2: weight: 3 -> 2"}, "3:1 4:2", []int{100, 200, labBalance}},
		{"table", func(doc string) string { return strings.Replace(doc, "table = 200", "table = 201", 1) },
			true, []string{"uplink isp2: table: 200 -> 201"}, "3:1 4:3", []int{100, 201, labBalance}},
		{"uplink removed", func(doc string) string { return doc[:strings.LastIndex(doc, "[[uplink]]")] },
			true, []string{"uplink isp2: removed"}, "3", []int{100, labBalance}},
		{"restart only", func(doc string) string {
			return strings.Replace(doc, "[routing]\n", "[routing]\nbalancer = \"hash-threshold\"\n", 1)
		}, true, []string{"routing.balancer: auto -> hash-threshold" + restartNote}, "3:1 4:3", []int{100, 200, labBalance}},
		{"refused", func(doc string) string { return doc + "\n[routing]\n" }, false, nil, "3:1 4:3", []int{100, 200, labBalance}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := startLoop(t, newFakeNet(labBalance), "")
			l.waitBalance("3:1 4:3")
			b, err := os.ReadFile(l.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(l.path, []byte(tt.edit(string(b))), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := status.Reload(ctx, l.socket)
			if err != nil || res.OK != tt.ok || (!tt.ok && res.Error == "") {
				t.Fatalf("reload: %+v, %v", res, err)
			}
			if !slices.Equal(res.Changes, tt.changes) {
				t.Fatalf("reload reported %q, want %q", res.Changes, tt.changes)
			}
			// The reply comes once the routing matches.
			if got := l.k.balance(); got != tt.balance {
				t.Fatalf("balance after the reload %q, want %q", got, tt.balance)
			}
			l.k.mu.Lock()
			var tables []int
			for _, r := range l.k.installed.Routes {
				tables = append(tables, r.Table)
			}
			l.k.mu.Unlock()
			slices.Sort(tables)
			if tables = slices.Compact(tables); !slices.Equal(tables, tt.tables) {
				t.Fatalf("routes in tables %v, want %v", tables, tt.tables)
			}
			if s := l.status(); s.Balancer != "multipath" {
				t.Fatalf("balancer %q after the reload, want multipath (as chosen at start)", s.Balancer)
			}
		})
	}
}

// writeHook writes an executable shell script for the hooks; its
// arguments are the on_transition setting's.
func writeHook(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// hookLines returns the lines of log about uplink (all with "").
func hookLines(t *testing.T, log, uplink string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if uplink == "" || strings.Contains(l, " "+uplink+" ") || strings.HasPrefix(l, uplink+" ") || strings.HasSuffix(l, " "+uplink) {
			out = append(out, l)
		}
	}
	return out
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// syncBuffer is a bytes.Buffer for a logger used by several goroutines.
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
