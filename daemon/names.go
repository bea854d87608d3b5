package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/uplinkd/uplinkd/config"
)

// Probe targets given by host name are resolved by a resolver goroutine,
// never in the loop: at start, on reload (the loop hands it the names
// again) and every resolveEvery, a name that failed every resolveRetry.
// A name that does not resolve keeps the address it had; one that never
// resolved is left out, and its uplinks probe the targets they have.
const (
	resolveEvery   = 5 * time.Minute
	resolveRetry   = 30 * time.Second
	resolveTimeout = 5 * time.Second
)

// nameResult is one name's resolution: its IPv4 addresses, or why none.
type nameResult struct {
	name  string
	addrs []netip.Addr
	err   error
}

// resolver resolves the names last handed to it, on its own schedule.
type resolver struct {
	names  chan []string // the latest set; capacity 1
	out    chan []nameResult
	lookup func(ctx context.Context, name string) ([]netip.Addr, error)
}

func newResolver() *resolver {
	return &resolver{
		names: make(chan []string, 1),
		out:   make(chan []nameResult, 1),
		lookup: func(ctx context.Context, name string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
		},
	}
}

// set hands the resolver a new set of names, resolved at once; it never
// blocks the loop (a set not yet taken is replaced).
func (r *resolver) set(names []string) {
	select {
	case <-r.names:
	default:
	}
	r.names <- slices.Clone(names)
}

// run resolves until ctx is done.
func (r *resolver) run(ctx context.Context) {
	var names []string
	next := make(map[string]time.Time)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var res []nameResult
		for _, n := range names {
			if next[n].After(now) {
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			addrs, err := r.lookup(lctx, n)
			cancel()
			if ctx.Err() != nil {
				return
			}
			addrs = slices.DeleteFunc(addrs, func(a netip.Addr) bool { return !a.Unmap().Is4() })
			if err == nil && len(addrs) == 0 {
				err = errors.New("no IPv4 address")
			}
			for i := range addrs {
				addrs[i] = addrs[i].Unmap()
			}
			next[n] = now.Add(resolveEvery)
			if err != nil {
				next[n] = now.Add(resolveRetry)
			}
			res = append(res, nameResult{name: n, addrs: addrs, err: err})
		}
		if len(res) > 0 {
			select {
			case r.out <- res:
			case <-ctx.Done():
				return
			}
		}
		var wake time.Time
		for _, n := range names {
			if t := next[n]; wake.IsZero() || t.Before(wake) {
				wake = t
			}
		}
		timer.Stop()
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-ctx.Done():
			return
		case names = <-r.names:
			clear(next) // resolve them all now
		case <-timer.C:
		}
	}
}

// resolved applies resolutions in the loop: an address that is still
// among a name's answers is kept (no prober restart), else the first one
// is taken.
func (d *Daemon) namesResolved(res []nameResult) {
	changed := false
	for _, r := range res {
		old, had := d.resolved[r.name]
		switch {
		case r.err != nil && had:
			d.log.Warn("probe target does not resolve; keeping its last address", "name", r.name, "address", old, "err", r.err,
				"retry", resolveRetry)
		case r.err != nil:
			d.log.Warn("probe target does not resolve; the uplinks probe the targets they have", "name", r.name, "err", r.err,
				"retry", resolveRetry)
		case had && slices.Contains(r.addrs, old):
		default:
			d.resolved[r.name] = r.addrs[0]
			d.resolvedGen++
			d.log.Info("probe target resolved", "name", r.name, "address", r.addrs[0])
			changed = true
		}
	}
	if !changed {
		return
	}
	d.changed = true
	for _, u := range d.uplinks {
		u.m.SetParams(d.fsmParams(u.cfg)) // targets may have appeared
	}
}

// resolve returns the address a probe target's name resolved to.
func (d *Daemon) resolve(name string) (netip.Addr, bool) {
	a, ok := d.resolved[name]
	return a, ok
}

// targetsOf returns the targets u probes now.
func (d *Daemon) targetsOf(u *uplink) []config.Target {
	if u.fam == ipv6 {
		return d.cfg.Targets6For(u.cfg)
	}
	return d.cfg.TargetsResolved(u.cfg, u.gw, d.resolve)
}

// reliabilityOf is how many of targets must answer for a good round:
// [probe] reliability, or all of those probed in rounds when there are
// fewer (as when names did not resolve).
func (d *Daemon) reliabilityOf(targets []config.Target) int {
	rounds, _ := config.Probed(targets)
	return max(1, min(d.cfg.Probe.Reliability, len(rounds)))
}
