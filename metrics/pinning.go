package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pinMetrics are the series of connection pinning.
type pinMetrics struct {
	on         prometheus.Gauge
	restores   prometheus.Counter
	flushes    *prometheus.CounterVec
	flushed    prometheus.Counter
	flushTook  prometheus.Histogram
	flushFails prometheus.Counter
}

func newPinMetrics(f factory) pinMetrics {
	var p pinMetrics
	p.on = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "uplinkd_pinning", Help: "1 when connections are pinned to their uplink (nftables table and conntrack marks), 0 when not.",
	})
	f.reg.MustRegister(p.on)
	p.restores = f.counter("uplinkd_pin_table_restores_total",
		"Times uplinkd's nftables table was removed or changed by someone else (a firewall reload) and written again.")
	p.flushes = f.counterVec("uplinkd_conntrack_flushes_total",
		"Conntrack deletes by mark (and family) of an uplink that became down or probing in that family.", "uplink", "family")
	p.flushed = f.counter("uplinkd_conntrack_flushed_entries_total", "Conntrack entries those deletes removed.")
	p.flushFails = f.counter("uplinkd_conntrack_flush_errors_total", "Conntrack deletes by mark that failed.")
	p.flushTook = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "uplinkd_conntrack_flush_duration_seconds",
		Help:    "Time of one kernel-filtered conntrack delete by mark.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1ms .. 3.3s
	})
	f.reg.MustRegister(p.flushTook)
	return p
}

// Pinning records whether connections are pinned.
func (m *Metrics) Pinning(on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.pin.on.Set(v)
}

// PinRestore counts one restore of the nftables table.
func (m *Metrics) PinRestore() { m.pin.restores.Inc() }

// ConntrackFlush records one delete by mark. It may be called from any
// goroutine.
func (m *Metrics) ConntrackFlush(uplink, family string, deleted int, took time.Duration, err error) {
	m.pin.flushes.WithLabelValues(uplink, family).Inc()
	if err != nil {
		m.pin.flushFails.Inc()
		return
	}
	m.pin.flushed.Add(float64(deleted))
	m.pin.flushTook.Observe(took.Seconds())
}
