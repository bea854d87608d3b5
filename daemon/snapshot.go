package daemon

import (
	"math"
	"os"
	"time"

	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/uplinkd/uplinkd/status"
)

// request answers a question from the status server.
func (d *Daemon) request(r status.Request) {
	switch r.Op {
	case status.OpReload:
		d.reload(r.Reply)
	case status.OpStatus:
		if r.After >= d.version {
			d.waiters.Park(r) // answered in settle, after the next change
			return
		}
		r.Reply <- status.Reply{Snapshot: d.snapshot()}
	}
}

// snapshot is the state status shows. It shares nothing mutable with the
// loop: the status server encodes it in its own goroutine.
func (d *Daemon) snapshot() *status.Snapshot {
	hs := d.hooks.Stats()
	s := &status.Snapshot{
		Version: d.version,
		Time:    time.Now(),
		Daemon: status.Daemon{
			Version: d.opts.Version, PID: os.Getpid(), Started: d.started,
			Config: d.opts.ConfigPath, Loaded: d.loaded,
			Reloads: d.reloads, Failed: d.failed, LastFail: d.lastFail,
		},
		Balancer:  d.Balancer(),
		Pinning:   d.pinningStatus(),
		Active:    d.activeEntities(),
		Uplinks:   make([]status.Uplink, 0, len(d.uplinks)),
		Policies:  d.policyStatus(),
		Reconcile: d.reconcile,
		Netlink:   d.netlink,
		Hooks: status.Hooks{
			Started: hs.Started, Failed: hs.Failed, TimedOut: hs.TimedOut, Dropped: hs.Dropped, Running: hs.Running,
		},
	}
	// The resilient groups' buckets move on their own, as they fall idle:
	// read the split the kernel has now, of each family's group.
	split := d.bucketShares(ipv4)
	var split6 map[string]float64
	if len(d.familyEntities(ipv6)) > 0 {
		split6 = d.bucketShares(ipv6)
	}
	for _, u := range d.entities() {
		us := d.uplinkStatus(u)
		sp := split
		if u.fam == ipv6 {
			sp = split6
		}
		if share, ok := sp[u.cfg.Name]; ok {
			us.Share = share
			d.metrics.Balance(u.cfg.Name, u.fam.String(), u.inBal, share)
		}
		s.Uplinks = append(s.Uplinks, us)
	}
	return s
}

func (d *Daemon) uplinkStatus(u *uplink) status.Uplink {
	targets := d.targetsOf(u)
	out := status.Uplink{
		Name:      u.cfg.Name,
		Family:    u.fam.String(),
		State:     string(u.m.State()),
		Reason:    u.m.Reason(),
		Since:     u.m.Since(),
		Interface: u.cfg.Interface,
		Gateway:   u.gatewayStatus(),
		Table:     u.cfg.Table,
		Weight:    u.cfg.Weight,
		InBalance: u.inBal,
		Share:     u.share,
		Probe: status.Probe{
			Enabled: len(targets) > 0,
			Running: u.prober != nil,
			Since:   u.started,
			Targets: make([]status.Target, 0, len(targets)),
			Rounds:  u.rounds,
			Failed:  u.bad,
			LastRTT: status.Millis(u.rtt),
		},
		Transitions: make([]status.Transition, 0, len(u.history)),
	}
	if u.link != nil {
		out.Ifindex, out.AdminUp, out.Carrier = u.link.Index, u.link.AdminUp, u.link.Carrier
	}
	if u.addr.IsValid() {
		out.Address = u.addr.String()
	}
	// The latest result's statistics, by target; none before the first.
	byTarget := make(map[probe.Target]probe.TargetStats, len(u.probe.Targets))
	for _, ts := range u.probe.Targets {
		byTarget[ts.Target] = ts
	}
	pts := probeTargets(targets)
	for i, t := range targets {
		ts := byTarget[pts[i]]
		out.Probe.Targets = append(out.Probe.Targets, status.Target{
			Address: t.String(), Method: string(t.Method), Stats: statsStatus(ts.Stats), Duplicates: ts.Duplicates,
		})
	}
	out.Probe.Stats = statsStatus(u.probe.Stats)
	if u.prober != nil {
		out.Probe.PerSecond = math.Round(10*u.traffic.perSecond()) / 10
	}
	if until, ok := u.m.Held(); ok {
		out.Probe.HeldUntil = until
	}
	for _, t := range u.history {
		out.Transitions = append(out.Transitions, transitionStatus(t))
	}
	return out
}

func statsStatus(s probe.Stats) status.Stats {
	return status.Stats{
		Probes: s.Probes, Lost: s.Lost, Late: s.Late, Loss: math.Round(1000*s.Loss) / 10,
		RTT: status.Millis(s.RTT), Jitter: status.Millis(s.Jitter), Full: s.Full,
	}
}

func transitionStatus(t fsm.Transition) status.Transition {
	return status.Transition{From: string(t.From), To: string(t.To), Reason: t.Reason, At: t.At}
}
