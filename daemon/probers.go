package daemon

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/probe"
)

// syncProber keeps one prober per usable, probed uplink, restarted whenever
// what it probes changes: the interface or address it is bound to, its
// targets, interval or timeout.
func (d *Daemon) syncProber(u *uplink) {
	in := proberInputs{cfg: d.cfg, names: d.resolvedGen, gw: u.gw, addr: u.addr, down: u.m.State() == fsm.Down,
		interval: d.probeInterval(u)}
	if u.link != nil {
		in.link, in.hasLink = *u.link, true
	}
	if u.keyDone && u.keyOf == in {
		return
	}
	u.keyOf, u.keyDone = in, false
	targets := d.targetsOf(u)
	key := ""
	if ok, _ := u.usability(); ok && len(targets) > 0 && u.m.State() != fsm.Down {
		p := d.cfg.Probe
		key = fmt.Sprintf("%s#%d %s %v every %v within %v, %d must answer, window %d fresh after %d, checks every %v within %v expecting %d",
			u.cfg.Interface, u.link.Index, u.addr.Addr(), targets, d.probeInterval(u), p.Timeout, d.reliabilityOf(targets), p.Window, p.DownAfter,
			p.CheckInterval, p.CheckTimeout, p.HTTPExpect)
	}
	if key == u.key {
		u.keyDone = true
		return
	}
	u.stopProber()
	if key == "" {
		u.keyOf, u.keyDone = in, true
		return
	}
	d.gen++
	p, err := d.kern.Probers.Start(probe.Config{
		Uplink:      u.cfg.Name,
		Interface:   u.cfg.Interface,
		Index:       u.link.Index,
		Source:      u.addr.Addr(),
		Targets:     probeTargets(targets),
		Interval:    d.probeInterval(u),
		Timeout:     d.cfg.Probe.Timeout,
		Reliability: d.reliabilityOf(targets),
		Window:      d.cfg.Probe.Window,
		// An outage long enough to take the uplink out of the balance
		// is not held against it when it comes back.
		FreshAfter:    d.cfg.Probe.DownAfter,
		CheckInterval: d.cfg.Probe.CheckInterval,
		CheckTimeout:  d.cfg.Probe.CheckTimeout,
		HTTPExpect:    d.cfg.Probe.HTTPExpect,
		Gen:           d.gen,
	}, d.results)
	if err != nil {
		d.log.Error("start probes", "uplink", u.label(), "err", err)
		d.armRetry()
		return
	}
	d.log.Debug("probes started", "uplink", u.label(), "probes", key)
	u.prober, u.key, u.gen, u.started = p, key, d.gen, time.Now()
	u.keyOf, u.keyDone = in, true
	u.probe = probe.Result{}
}

// proberInputs is everything a prober's key depends on: the configuration
// (replaced as a whole on reload, the uplink's own part included), the
// addresses of target names, the gateway in use, the interface, the
// address, whether the uplink is down and the interval (longer while it
// stands by).
type proberInputs struct {
	cfg      *config.Config
	interval time.Duration
	names    uint64 // Daemon.resolvedGen
	gw       netip.Addr
	link     events.Link
	hasLink  bool
	addr     netip.Prefix
	down     bool
}

func (u *uplink) stopProber() {
	if u.prober != nil {
		u.prober.Stop()
		u.prober = nil
	}
	u.key, u.started = "", time.Time{}
	u.keyDone = false
}

func (d *Daemon) probeResult(r probe.Result) {
	for _, u := range d.entities() {
		if u.cfg.Name != r.Uplink || u.gen != r.Gen || u.prober == nil {
			continue
		}
		if r.Err != nil {
			d.log.Debug("probe round failed", "uplink", u.label(), "round", r.Round, "err", r.Err)
		}
		u.rounds++
		if r.Good {
			u.rtt = r.RTT
		} else {
			u.bad++
		}
		d.metrics.ProbeRound(u.cfg.Name, u.fam.String(), r.Good, r.RTT)
		d.observeProbes(u, r, time.Now())
		d.heldRound(u, r.Good)
		u.probe = r
		q := fsm.Quality{Known: r.Stats.Full, Probes: r.Stats.Probes, Loss: r.Stats.Loss, RTT: r.Stats.RTT}
		if !r.Good && r.Err != nil {
			q.Failure = failure(r.Err)
		}
		if r.Silent {
			reason := fmt.Sprintf("no reply for %v to %d probes", r.Silence.Round(time.Millisecond), r.Unanswered)
			if tr, ok := u.m.ProbesSilent(reason, time.Now()); ok {
				d.transition(u, tr)
				d.needReconcile = true
			}
		}
		if tr, ok := u.m.ProbeRound(r.Good, q, time.Now()); ok {
			d.transition(u, tr)
			d.needReconcile = true
		}
	}
}
