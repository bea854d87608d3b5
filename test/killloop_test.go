package test

import (
	"context"
	"errors"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/kernelview"
	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 13 (acceptance 5): uplinkd killed with SIGKILL at random points
// while LAN flows run and both uplinks' carriers flap, and started again
// each time: once the flapping stops, the kernel holds exactly what the
// configuration requires, with no duplicate and no leftover (kernelview);
// the final SIGTERM removes everything of uplinkd's and restores the
// multipath hash policy and src_valid_mark found before the first start.
// 5 kills, 50 with UPLINKD_LONG=1; UPLINKD_SEED=N replays the kill points.
func TestKill9Loop(t *testing.T) {
	kills, limit := 5, 2*time.Minute
	if long() {
		kills, limit = 50, 10*time.Minute
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("UPLINKD_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("UPLINKD_SEED=%q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewSource(seed))
	c := newConvRig(t, limit)
	// Not the values uplinkd sets, so that restoring them shows.
	c.must(sysctl(c.rig, "net.ipv4.fib_multipath_hash_policy=2"))
	origHash := c.hashPolicy()
	origSVM := map[string]string{"eth1": c.srcValidMark("eth1"), "eth2": c.srcValidMark("eth2")}
	c.startDaemon()
	c.settle(seed)

	flows, err := c.lab.StartFlows(c.ctx, lab.FlowOptions{TCP: 16, UDP: 16})
	c.must(err)
	defer flows.Close()
	stopFlaps := c.flapCarriers(seed)
	for i := range kills {
		// A random point: somewhere between the start and the next
		// flaps' reconciles.
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		c.step("kill-9 #%d", i+1)
		c.kill()
		time.Sleep(time.Duration(rng.Intn(100)) * time.Millisecond)
		c.startDaemon()
	}
	if err := stopFlaps(); err != nil {
		t.Fatalf("flapping the carriers: %v", err)
	}
	c.settle(seed)
	if err := flows.Close(); err != nil {
		t.Errorf("flows: %v", err)
	}
	t.Logf("%d kills (seed %d): converged, no duplicate or leftover", kills, seed)

	if code := c.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	c.running = false
	v, err := kernelview.Read(c.ctx, c.lab.NS(lab.Router))
	c.must(err)
	if left := v.Leftovers(201, "uplinkd"); len(left) > 0 {
		t.Errorf("left after SIGTERM (seed %d):\n%s", seed, strings.Join(left, "\n"))
	}
	if p := c.hashPolicy(); p != origHash {
		t.Errorf("hash policy after SIGTERM: %s, want the original %s", p, origHash)
	}
	for dev, want := range origSVM {
		if got := c.srcValidMark(dev); got != want {
			t.Errorf("src_valid_mark of %s after SIGTERM: %s, want the original %s", dev, got, want)
		}
	}
}

// sysctl sets a sysctl in the router's namespace.
func sysctl(r *rig, kv string) error {
	out, err := r.lab.Exec(r.ctx, lab.Router, "sysctl", "-q", "-w", kv)
	if err != nil {
		return errors.New(strings.TrimSpace(out))
	}
	return nil
}

// flapCarriers pulls and restores the ISPs' cables at random until the
// returned function is called; that function waits for the flapping to end,
// leaves both carriers up and returns the first error.
func (c *convRig) flapCarriers(seed int64) func() error {
	ctx, cancel := context.WithCancel(c.ctx)
	rng := rand.New(rand.NewSource(seed + 1))
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		down := map[string]bool{}
		for ctx.Err() == nil {
			isp := []string{lab.ISP1, lab.ISP2}[rng.Intn(2)]
			var e error
			if down[isp] {
				e = c.lab.CarrierUp(ctx, isp)
			} else {
				e = c.lab.CarrierDown(ctx, isp)
			}
			if e != nil && ctx.Err() == nil {
				err = e
				return
			}
			down[isp] = !down[isp]
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(20+rng.Intn(200)) * time.Millisecond):
			}
		}
	}()
	return func() error {
		cancel()
		wg.Wait()
		for _, isp := range []string{lab.ISP1, lab.ISP2} {
			if e := c.lab.CarrierUp(c.ctx, isp); e != nil && err == nil {
				err = e
			}
		}
		return err
	}
}
