package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/bench/internal/monitor"
	"github.com/uplinkd/uplinkd/bench/internal/results"
	"github.com/uplinkd/uplinkd/test/lab"
)

// Storm sizes (issue 13's storm): foreign routes added to main and carrier
// flaps of one uplink, at once, as fast as the bench can make them.
const (
	stormUplinks = 8
	stormRoutes  = 50000
	stormFlaps   = 100
)

// runStorm floods the router with route events and flaps uplink 1 while
// uplinkd runs, the flaps ending with the uplink down, and measures from
// the end of the storm: until uplinkd reports that uplink out of the
// balance, and until its last routing change.
func runStorm(ctx context.Context, cfg ScaleConfig, res *results.Results) error {
	const sec = "Scale: storm"
	s, _, err := startScale(ctx, cfg, "storm", stormUplinks, 0, false)
	if err != nil {
		return fmt.Errorf("storm: %w", err)
	}
	defer s.close()
	h, err := handleIn(s.lab.NS(lab.Router))
	if err != nil {
		return err
	}
	peer, err := h.LinkByName(lab.PeerLink)
	h.Close()
	if err != nil {
		return err
	}
	wan, err := handleIn(s.lab.NS(lab.WAN))
	if err != nil {
		return err
	}
	defer wan.Close()
	u := lab.ScaleUplinkAt(1)
	far, err := wan.LinkByName(u.Far)
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	var routeErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		routeErr = LoadRoutes(s.lab.NS(lab.Router), stormRoutes, lab.PeerAddr, peer.Attrs().Index)
	}()
	var flapErr error
	for i := 0; i < stormFlaps && flapErr == nil; i++ {
		if flapErr = wan.LinkSetDown(far); flapErr == nil {
			flapErr = wan.LinkSetUp(far)
		}
	}
	if flapErr == nil {
		flapErr = wan.LinkSetDown(far)
	}
	wg.Wait()
	end := time.Now()
	if routeErr != nil || flapErr != nil {
		return fmt.Errorf("storm: routes: %v; flaps: %v", routeErr, flapErr)
	}

	out := &results.Figure{}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = pollUntil(wctx, func() (bool, error) {
		st, err := s.up.Status(wctx)
		if err != nil {
			return false, err
		}
		for _, x := range st.Uplinks {
			if x.Name == "w1" {
				return !x.InBalance && x.State != "active" && st.Active == stormUplinks-1, nil
			}
		}
		return false, nil
	})
	cancel()
	if err != nil {
		out.Miss(30000)
	} else {
		out.Add(ms(time.Since(end)))
	}
	last := &results.Figure{}
	if evs := s.mon.Since(end.Add(-time.Hour)); len(evs) > 0 {
		// The last routing change uplinkd made, once 300 ms went by
		// without one.
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var lastEv monitor.Event
		for _, e := range evs {
			if balanceChange(e) && e.Proto != 4 { // not the bench's own routes (proto static)
				lastEv = e
			}
		}
		if !lastEv.At.IsZero() {
			lastEv = s.mon.Settled(sctx, lastEv, func(e monitor.Event) bool { return balanceChange(e) && e.Proto != 4 }, quiet)
			last.Add(ms(max(0, lastEv.At.Sub(end))))
		}
		cancel()
	}
	overruns := 0
	for _, e := range s.mon.Since(end.Add(-time.Hour)) {
		if e.Overrun {
			overruns++
		}
	}
	st, err := s.up.Status(ctx)
	if err != nil {
		return fmt.Errorf("storm: uplinkd after the storm: %w", err)
	}
	nl, _ := json.Marshal(st.Netlink)
	what := fmt.Sprintf("%d uplinks, %d routes added to main while uplink w1 flaps %d times and stays down", stormUplinks, stormRoutes, stormFlaps)
	res.Add(results.Row{Section: sec, What: what + ": storm end → uplinkd reports w1 out of the balance", Unit: results.Millis, Uplinkd: out, Seed: results.NA(noSeed), Summary: true,
		Note: fmt.Sprintf("uplinkd's netlink status after: %s; the bench's own monitor overflowed %d times", nl, overruns)})
	res.Add(results.Row{Section: sec, What: what + ": storm end → uplinkd's last routing change", Unit: results.Millis, Uplinkd: last, Seed: results.NA(noSeed),
		Note: "0 when uplinkd's last change came before the storm ended"})
	return nil
}

// pollUntil calls ok every 20 ms until it reports true or ctx ends.
func pollUntil(ctx context.Context, ok func() (bool, error)) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if done, _ := ok(); done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
