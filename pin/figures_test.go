package pin

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// TestFiguresFlush measures a flush by mark in a table of 200k entries:
// 150k of one uplink (deleted) and 50k of another (kept), created through
// ctnetlink in a test namespace. `make figures` runs it
// (UPLINKD_FIGURES=1).
func TestFiguresFlush(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("a figure: set UPLINKD_FIGURES=1 (make figures)")
	}
	ns := newNS(t, "pin-fig")
	const total, ours = 200_000, 150_000
	start := time.Now()
	// Entries differ by source address and port: 50 sources x 4000 ports.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			c, err := conntrack.Dial(&netlink.Config{NetNS: ns.fd()})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := w; i < total; i += workers {
				mark := uint32(m2 | 0x1234)
				if i < ours {
					mark = m1 | 0x1234
				}
				src := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i/4000)})
				f := conntrack.NewFlow(unix.IPPROTO_UDP, 0, src, netip.MustParseAddr("198.18.0.1"), uint16(1024+i%4000), 53, 600, mark)
				if err := c.Create(f); err != nil {
					errs <- fmt.Errorf("create entry %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("created %d entries in %v", total, time.Since(start).Round(time.Millisecond))

	f, err := NewFlusher(ns.fd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := flushWait(t, f, unix.AF_INET, m1, DefaultMask)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("FIGURE flush by mark: deleted %d of %d conntrack entries in one request in %v (the other uplink's %d kept)",
		r.deleted, total, r.took.Round(10*time.Microsecond), total-ours)
	if r.deleted != ours {
		t.Fatalf("deleted %d, want %d", r.deleted, ours)
	}
	left, err := f.count()
	if err != nil || left != total-ours {
		t.Fatalf("%d entries left (%v), want %d", left, err, total-ours)
	}
	r = flushWait(t, f, unix.AF_INET, m1, DefaultMask)
	t.Logf("FIGURE flush by mark with nothing to delete in %d entries: %v", total-ours, r.took.Round(10*time.Microsecond))

	// The same request once more, for the other uplink, with the CPU
	// time the kernel spent on it (it runs in the sending thread), which
	// a loaded machine does not inflate as it does the wall time.
	c := ns.conntrack(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &before)
	wall := time.Now()
	if err := c.FlushFilter(conntrack.NewFilter().Family(netfilter.ProtoIPv4).Mark(m2).MarkMask(DefaultMask)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(wall)
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &after)
	cpu := time.Duration(after.Stime.Nano()-before.Stime.Nano()) + time.Duration(after.Utime.Nano()-before.Utime.Nano())
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("FIGURE flush by mark: deleted the other %d entries in %v wall, %v CPU (load average %s)",
		total-ours, took.Round(10*time.Microsecond), cpu.Round(10*time.Microsecond), strings.Fields(string(load))[0])
}

// TestFiguresApply measures Apply with 8 uplinks: a write (the table
// replaced in one transaction) and a no-op (read back and compared).
func TestFiguresApply(t *testing.T) {
	if os.Getenv("UPLINKD_FIGURES") != "1" {
		t.Skip("a figure: set UPLINKD_FIGURES=1 (make figures)")
	}
	ns := newNS(t, "pin-figa")
	tb := openTable(t, ns)
	var ups []Uplink
	for i := range 8 {
		ups = append(ups, Uplink{Name: fmt.Sprintf("isp%d", i), Ifname: fmt.Sprintf("eth%d", i), Mark: uint32(i+1) << 24})
	}
	const rounds = 50
	var write, noop time.Duration
	for i := range rounds {
		ups[0].Ifname = fmt.Sprintf("wan%d", i) // a rename: the table changes
		start := time.Now()
		if changed, err := tb.Apply(ups); err != nil || !changed {
			t.Fatalf("Apply = %v, %v", changed, err)
		}
		write += time.Since(start)
		start = time.Now()
		if changed, err := tb.Apply(ups); err != nil || changed {
			t.Fatalf("Apply = %v, %v", changed, err)
		}
		noop += time.Since(start)
	}
	// With Watch running, an unchanged Apply does not read the kernel.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = tb.Watch(ctx, make(chan struct{}, 1)) })
	defer func() { cancel(); wg.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); tb.watchers() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not subscribe")
		}
	}
	var watched time.Duration
	for range rounds {
		start := time.Now()
		if changed, err := tb.Apply(ups); err != nil || changed {
			t.Fatalf("Apply = %v, %v", changed, err)
		}
		watched += time.Since(start)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("FIGURE pin table with 8 uplinks: Apply that rewrites it %v, that finds it in place %v, the same while Watch runs %v (mean of %d; load average %s)",
		(write / rounds).Round(time.Microsecond), (noop / rounds).Round(time.Microsecond), (watched / rounds).Round(time.Microsecond),
		rounds, strings.Fields(string(load))[0])
}
