package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetQuality is what the probes of one target measured over their
// statistics window.
type TargetQuality struct {
	Target string // address
	Method string // how it is probed: "icmp"
	Probes int    // in the window; nothing is exported before the first
	Loss   float64
	RTT    time.Duration // mean of the answered probes
	Jitter time.Duration
}

// probeMetrics are the per-target and probe traffic series. Every probe
// round of every uplink records them (with 64 uplinks, over a hundred
// times a second), so they keep their series' handles rather than look
// each series up by its labels every time (see cached.go).
type probeMetrics struct {
	loss, rtt, jitter *prometheus.GaugeVec
	packets           *prometheus.CounterVec

	mu      sync.Mutex
	targets map[[2]string]map[[2]string]*targetSeries // {uplink, family} -> {target, method} exported
	sent    map[[2]string]prometheus.Counter          // {uplink, family} -> its packets series
	seq     uint64                                    // of the last ProbeTargets call
}

// targetSeries are the handles of one target's series, and the
// ProbeTargets call that last set them.
type targetSeries struct {
	loss, rtt, jitter prometheus.Gauge
	seen              uint64
}

func newProbeMetrics(f factory) *probeMetrics {
	labels := []string{"uplink", "family", "target", "method"}
	return &probeMetrics{
		loss:    f.gaugeVec("uplinkd_probe_target_loss_ratio", "Share of the target's probes lost over the statistics window, 0 to 1.", labels...),
		rtt:     f.gaugeVec("uplinkd_probe_target_rtt_seconds", "Mean round-trip time of the target's answered probes over the statistics window.", labels...),
		jitter:  f.gaugeVec("uplinkd_probe_target_jitter_seconds", "Mean difference between consecutive round-trip times of the target over the statistics window.", labels...),
		packets: f.counterVec("uplinkd_probe_packets_total", "Probe packets sent through the uplink (of the family), confirmation bursts included.", "uplink", "family"),
		targets: make(map[[2]string]map[[2]string]*targetSeries),
		sent:    make(map[[2]string]prometheus.Counter),
	}
}

// ProbeTargets sets the per-target series of uplink's family. Targets of
// the uplink missing from ts (no longer probed) lose their series.
func (m *Metrics) ProbeTargets(uplink, family string, ts []TargetQuality) {
	id := [2]string{uplink, family}
	p := m.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	series := p.targets[id]
	if series == nil {
		series = make(map[[2]string]*targetSeries, len(ts))
		p.targets[id] = series
	}
	for _, t := range ts {
		if t.Probes == 0 {
			continue
		}
		k := [2]string{t.Target, t.Method}
		s := series[k]
		if s == nil {
			s = &targetSeries{
				loss:   p.loss.WithLabelValues(uplink, family, t.Target, t.Method),
				rtt:    p.rtt.WithLabelValues(uplink, family, t.Target, t.Method),
				jitter: p.jitter.WithLabelValues(uplink, family, t.Target, t.Method),
			}
			series[k] = s
		}
		s.seen = p.seq
		s.loss.Set(t.Loss)
		s.rtt.Set(t.RTT.Seconds())
		s.jitter.Set(t.Jitter.Seconds())
	}
	for k, s := range series {
		if s.seen != p.seq {
			p.deleteTarget(id, k)
			delete(series, k)
		}
	}
}

// ProbePackets counts n more probe packets sent through uplink's family.
func (m *Metrics) ProbePackets(uplink, family string, n uint64) {
	p := m.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	id := [2]string{uplink, family}
	c := p.sent[id]
	if c == nil {
		c = p.packets.WithLabelValues(uplink, family)
		p.sent[id] = c
	}
	c.Add(float64(n))
}

func (p *probeMetrics) deleteTarget(id, k [2]string) {
	l := prometheus.Labels{"uplink": id[0], "family": id[1], "target": k[0], "method": k[1]}
	p.loss.Delete(l)
	p.rtt.Delete(l)
	p.jitter.Delete(l)
}

// forget removes every probe series of uplink.
func (p *probeMetrics) forget(uplink string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ks := range p.targets {
		if id[0] != uplink {
			continue
		}
		for k := range ks {
			p.deleteTarget(id, k)
		}
		delete(p.targets, id)
	}
	for id := range p.sent {
		if id[0] == uplink {
			delete(p.sent, id)
		}
	}
	p.packets.DeletePartialMatch(prometheus.Labels{"uplink": uplink})
}

// forgetFamily removes the probe series of one family of uplink.
func (p *probeMetrics) forgetFamily(uplink, family string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id := [2]string{uplink, family}
	for k := range p.targets[id] {
		p.deleteTarget(id, k)
	}
	delete(p.targets, id)
	delete(p.sent, id)
	p.packets.DeletePartialMatch(prometheus.Labels{"uplink": uplink, "family": family})
}
