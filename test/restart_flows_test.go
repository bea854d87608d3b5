package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// batchTimes are the moments after a restart or reload at which new
// connections are opened: the balance must hold at each.
var batchTimes = []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}

// Issue 9, acceptance "hitless restart", with real connections under
// masquerade: after kill -9 then start, after SIGUSR2 then the start of a
// new binary, and after a SIGHUP that changes isp2's weight from 3 to 1,
// no established connection moves, loses a UDP sequence number or sees a
// reset, and every batch of 128 new connections opened at +50, +200 and
// +500 ms takes both uplinks (each at least 10%).
func TestHitlessRestartFlows(t *testing.T) {
	for _, b := range pinnedBalancers {
		t.Run(balancerName(b), func(t *testing.T) {
			config := flapOff(coreConfig(b))
			r := newNATRig(t, config, lab.Options{}, 4*time.Minute)
			bin := filepath.Join(binDir, "uplinkd")
			newBin := filepath.Join(r.dir, "uplinkd-new")
			if b, err := os.ReadFile(bin); err != nil {
				t.Fatal(err)
			} else if err := os.WriteFile(newBin, b, 0o755); err != nil {
				t.Fatal(err)
			}
			r.start()
			r.waitBoth()
			// A record unanswered for 10s is a hang: less would count the
			// test process's own stalls on a busy machine (seen: 4s).
			f := r.startFlows(lab.FlowOptions{Interval: 200 * time.Millisecond, HangAfter: 10 * time.Second})
			ready := regexp.MustCompile(`msg=ready`)
			for _, step := range []struct {
				name string
				do   func()
				wait func(mark int)
			}{
				{"kill -9, start", func() { r.stop(syscall.SIGKILL); r.launch(bin) }, func(mark int) {
					r.waitLog(mark, ready, 30*time.Second)
					r.waitTransition(mark, "isp1", "active", 30*time.Second)
					r.waitTransition(mark, "isp2", "active", 30*time.Second)
				}},
				{"SIGUSR2, start of a new binary", func() {
					if code := r.stop(syscall.SIGUSR2); code != 75 {
						t.Fatalf("SIGUSR2: exit code %d, want 75", code)
					}
					r.launch(newBin)
				}, func(mark int) {
					r.waitLog(mark, ready, 30*time.Second)
					r.waitTransition(mark, "isp1", "active", 30*time.Second)
					r.waitTransition(mark, "isp2", "active", 30*time.Second)
				}},
				{"SIGHUP, isp2's weight 3 -> 1", func() {
					r.writeConfig(strings.Replace(config, "weight = 3", "weight = 1", 1))
					if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
						t.Fatal(err)
					}
				}, func(int) { r.waitMembers("eth1/1", "eth2/1") }},
			} {
				what := balancerName(b) + ", " + step.name
				before := f.waitEstablished(30 * time.Second)
				kept := established(before)
				mark := r.mark()
				at := time.Now()
				step.do()
				var batches [][]uint32
				var offsets []time.Duration
				for _, off := range batchTimes {
					if d := time.Until(at.Add(off)); d > 0 {
						time.Sleep(d)
					}
					offsets = append(offsets, time.Since(at))
					ids, err := f.Add(r.ctx, 64, 64)
					if err != nil {
						t.Fatal(err)
					}
					batches = append(batches, ids)
				}
				step.wait(mark)
				for i, ids := range batches {
					got := firstUplinks(f.waitEchoed(ids, 20*time.Second))
					t.Logf("FIGURE %s: 128 new connections opened at +%v: %v", what, offsets[i].Round(time.Millisecond), got)
					for _, u := range []string{lab.ISP1, lab.ISP2} {
						if got[u] < 128/10 {
							t.Errorf("%s: new connections opened at +%v: %v, want both uplinks", what, offsets[i].Round(time.Millisecond), got)
						}
					}
				}
				after := f.waitEchoedAfter(kept, time.Now(), 30*time.Second) // the kept connections' echoes after the change
				checkKept(t, what, kept, at, before, after)
				if len(kept) < 256 {
					t.Errorf("%s: only %d of 256 connections established before: %s", what, len(kept), before.Summary())
				}
			}
			if s := f.Snapshot().Summary(); s.Hung > 0 || s.Resets > 0 {
				t.Errorf("connections reset or hung: %s", s)
			}
		})
	}
}
