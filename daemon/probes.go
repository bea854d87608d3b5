package daemon

import (
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/metrics"
	"github.com/uplinkd/uplinkd/probe"
)

// rateSpan is the span the probe packet rate in status is measured over.
const rateSpan = 10 * time.Second

// probeTraffic follows the probe packets sent through one uplink, from the
// cumulative counts its probers report, for status and metrics.
type probeTraffic struct {
	gen     uint64 // prober the count is of
	sent    uint64 // its last count
	samples []trafficSample
}

type trafficSample struct {
	at   time.Time
	sent uint64 // the prober's count
}

// observe takes in the count sent of prober gen at now and returns how
// many packets it sent since the last call.
func (p *probeTraffic) observe(gen, sent uint64, now time.Time) uint64 {
	if gen != p.gen {
		*p = probeTraffic{gen: gen}
	}
	added := uint64(0)
	if sent > p.sent {
		added = sent - p.sent
		p.sent = sent
	}
	p.samples = append(p.samples, trafficSample{now, sent})
	// Keep one sample at or before the span's start.
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateSpan {
		p.samples = p.samples[1:]
	}
	return added
}

// perSecond is the packet rate over the last rateSpan (less while the
// prober is younger); 0 before two samples.
func (p *probeTraffic) perSecond() float64 {
	if len(p.samples) < 2 {
		return 0
	}
	first, last := p.samples[0], p.samples[len(p.samples)-1]
	d := last.at.Sub(first.at)
	if d <= 0 {
		return 0
	}
	return float64(last.sent-first.sent) / d.Seconds()
}

// observeProbes exports what result r of u's prober says about its probe
// traffic and targets.
func (d *Daemon) observeProbes(u *uplink, r probe.Result, now time.Time) {
	d.metrics.ProbePackets(u.cfg.Name, u.fam.String(), u.traffic.observe(r.Gen, r.Sent, now))
	ts := make([]metrics.TargetQuality, 0, len(r.Targets))
	for _, t := range r.Targets {
		ts = append(ts, metrics.TargetQuality{
			Target: t.Target.String(), Method: t.Target.Method, Probes: t.Probes,
			Loss: t.Loss, RTT: t.RTT, Jitter: t.Jitter,
		})
	}
	d.metrics.ProbeTargets(u.cfg.Name, u.fam.String(), ts)
}

// probeTargets are the configured targets as the probe package takes them.
func probeTargets(ts []config.Target) []probe.Target {
	out := make([]probe.Target, len(ts))
	for i, t := range ts {
		out[i] = probe.Target{Method: string(t.Method), Addr: t.Addr, Port: t.Port, URL: t.URL, Name: t.Name}
	}
	return out
}

// failure is a failed round's error for a transition's reason: its first
// line, at most 200 bytes (joined send errors can be long).
func failure(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
