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

// probeMetrics are the per-target and probe traffic series.
type probeMetrics struct {
	loss, rtt, jitter *prometheus.GaugeVec
	packets           *prometheus.CounterVec

	mu      sync.Mutex
	targets map[string]map[[2]string]bool // uplink -> {target, method} exported
}

func newProbeMetrics(f factory) *probeMetrics {
	labels := []string{"uplink", "target", "method"}
	return &probeMetrics{
		loss:    f.gaugeVec("uplinkd_probe_target_loss_ratio", "Share of the target's probes lost over the statistics window, 0 to 1.", labels...),
		rtt:     f.gaugeVec("uplinkd_probe_target_rtt_seconds", "Mean round-trip time of the target's answered probes over the statistics window.", labels...),
		jitter:  f.gaugeVec("uplinkd_probe_target_jitter_seconds", "Mean difference between consecutive round-trip times of the target over the statistics window.", labels...),
		packets: f.counterVec("uplinkd_probe_packets_total", "Probe packets sent through the uplink, confirmation bursts included.", "uplink"),
		targets: make(map[string]map[[2]string]bool),
	}
}

// ProbeTargets sets the per-target series of uplink. Targets of the uplink
// missing from ts (no longer probed) lose their series.
func (m *Metrics) ProbeTargets(uplink string, ts []TargetQuality) {
	p := m.probe
	p.mu.Lock()
	defer p.mu.Unlock()
	now := make(map[[2]string]bool, len(ts))
	for _, t := range ts {
		if t.Probes == 0 {
			continue
		}
		now[[2]string{t.Target, t.Method}] = true
		p.loss.WithLabelValues(uplink, t.Target, t.Method).Set(t.Loss)
		p.rtt.WithLabelValues(uplink, t.Target, t.Method).Set(t.RTT.Seconds())
		p.jitter.WithLabelValues(uplink, t.Target, t.Method).Set(t.Jitter.Seconds())
	}
	for k := range p.targets[uplink] {
		if !now[k] {
			p.deleteTarget(uplink, k)
		}
	}
	p.targets[uplink] = now
}

// ProbePackets counts n more probe packets sent through uplink.
func (m *Metrics) ProbePackets(uplink string, n uint64) {
	m.probe.packets.WithLabelValues(uplink).Add(float64(n))
}

func (p *probeMetrics) deleteTarget(uplink string, k [2]string) {
	l := prometheus.Labels{"uplink": uplink, "target": k[0], "method": k[1]}
	p.loss.Delete(l)
	p.rtt.Delete(l)
	p.jitter.Delete(l)
}

// forget removes every probe series of uplink.
func (p *probeMetrics) forget(uplink string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.targets[uplink] {
		p.deleteTarget(uplink, k)
	}
	delete(p.targets, uplink)
	p.packets.DeletePartialMatch(prometheus.Labels{"uplink": uplink})
}
