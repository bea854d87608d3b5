package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// States are the values of the state label, one series each per uplink
// and family.
var States = []string{"down", "probing", "degraded", "active"}

// Metrics holds every series uplinkd exports.
type Metrics struct {
	reg *prometheus.Registry

	info        *prometheus.GaugeVec
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	inBalance   *prometheus.GaugeVec
	share       *prometheus.GaugeVec
	rounds      *prometheus.CounterVec
	failed      *prometheus.CounterVec
	rtt         *prometheus.HistogramVec

	reconcileTook    prometheus.Histogram
	reconcileErrors  prometheus.Counter
	reconcileChanges prometheus.Counter

	dumps, resyncs, overruns, resubscribes prometheus.Counter
	netlinkErrors                          *prometheus.CounterVec

	reloads *prometheus.CounterVec

	pin    pinMetrics
	policy policyMetrics
	probe  *probeMetrics // probe.go
	cache  cache         // cached.go
}

// HookStats reads the hook runner's counters at scrape time.
type HookStats func() (started, failed, timedOut, dropped uint64)

// New returns the metrics of one daemon; hooks may be nil.
func New(hooks HookStats) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.info = f.gaugeVec("uplinkd_info", "Always 1; the labels say which uplinkd runs and how it balances.", "version", "balancer")
	m.state = f.gaugeVec("uplinkd_uplink_state", "1 for the uplink's current state (of the family), 0 for the others.", "uplink", "family", "state")
	m.transitions = f.counterVec("uplinkd_uplink_transitions_total", "State transitions of the uplink (of the family).", "uplink", "family", "from", "to")
	m.inBalance = f.gaugeVec("uplinkd_uplink_in_balance", "1 when the uplink carries balanced traffic of the family.", "uplink", "family")
	m.share = f.gaugeVec("uplinkd_uplink_share_ratio", "The uplink's share of new balanced flows: its weight over the weights in the balance (of the family).", "uplink", "family")
	m.rounds = f.counterVec("uplinkd_probe_rounds_total", "Probe rounds completed through the uplink (of the family).", "uplink", "family")
	m.failed = f.counterVec("uplinkd_probe_rounds_failed_total", "Probe rounds through the uplink (of the family) that no target answered in time.", "uplink", "family")
	m.rtt = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "uplinkd_probe_rtt_seconds",
		Help:    "Fastest echo reply of each good probe round through the uplink.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 13), // 0.5ms .. 2s
	}, []string{"uplink", "family"})
	m.reg.MustRegister(m.rtt)
	m.probe = newProbeMetrics(f)
	m.reconcileTook = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "uplinkd_reconcile_duration_seconds",
		Help:    "Time one reconcile took: listing uplinkd's routes and rules and writing the difference.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14), // 0.1ms .. 0.8s
	})
	m.reg.MustRegister(m.reconcileTook)
	m.reconcileErrors = f.counter("uplinkd_reconcile_errors_total", "Reconciles that failed and were retried.")
	m.reconcileChanges = f.counter("uplinkd_reconcile_changes_total", "Routes and rules written or removed.")
	m.dumps = f.counter("uplinkd_netlink_dumps_total", "Full reads of the kernel's links and addresses.")
	m.resyncs = f.counter("uplinkd_netlink_resyncs_total", "Times netlink events were lost and everything was re-read.")
	m.overruns = f.counter("uplinkd_netlink_enobufs_total", "Netlink event socket receive buffer overruns (ENOBUFS).")
	m.netlinkErrors = f.counterVec("uplinkd_netlink_errors_total", "Failed reads of the kernel's state or subscriptions, retried while the routing stays as installed; kind is transient or other.", "kind")
	for _, k := range []string{"transient", "other"} {
		m.netlinkErrors.WithLabelValues(k)
	}
	m.resubscribes = f.counter("uplinkd_netlink_resubscribes_total", "Times the netlink event socket failed and was opened again.")
	m.reloads = f.counterVec("uplinkd_config_reloads_total", "Configuration reloads, applied (ok) or refused (error).", "result")
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	if hooks != nil {
		for i, c := range []struct{ name, help string }{
			{"uplinkd_hooks_started_total", "Hook programs started."},
			{"uplinkd_hooks_failed_total", "Hook programs that failed: non-zero exit, signal, timeout or could not start."},
			{"uplinkd_hooks_timed_out_total", "Hook programs killed at their timeout."},
			{"uplinkd_hooks_dropped_total", "Hook invocations dropped: queue full, or still queued at shutdown."},
		} {
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help}, func() float64 {
				s, f, t, d := hooks()
				return float64([]uint64{s, f, t, d}[i])
			}))
		}
	}
	m.pin = newPinMetrics(f)
	m.policy = newPolicyMetrics(f)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type factory struct{ reg *prometheus.Registry }

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

// Info sets the uplinkd_info labels.
func (m *Metrics) Info(version, balancer string) {
	m.info.Reset()
	m.info.WithLabelValues(version, balancer).Set(1)
}

// State records the uplink's current state, one-hot.
func (m *Metrics) State(uplink, family, state string) {
	for _, s := range States {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(uplink, family, s).Set(v)
	}
}

// Transition counts one transition and records the new state.
func (m *Metrics) Transition(uplink, family, from, to string) {
	m.transitions.WithLabelValues(uplink, family, from, to).Inc()
	m.State(uplink, family, to)
}

// Forget removes every series of an uplink that is no longer configured,
// of both families.
func (m *Metrics) Forget(uplink string) {
	l := prometheus.Labels{"uplink": uplink}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.state, m.transitions, m.inBalance, m.share, m.rounds, m.failed, m.rtt} {
		v.DeletePartialMatch(l)
	}
	m.forgetBalance(uplink, "")
	m.probe.forget(uplink)
}

// ForgetFamily removes the series of one family of an uplink (its IPv6
// side, when gateway6 was removed).
func (m *Metrics) ForgetFamily(uplink, family string) {
	l := prometheus.Labels{"uplink": uplink, "family": family}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.state, m.transitions, m.inBalance, m.share, m.rounds, m.failed, m.rtt} {
		v.DeletePartialMatch(l)
	}
	m.forgetBalance(uplink, family)
	m.probe.forgetFamily(uplink, family)
}

// Reconcile records one reconcile.
func (m *Metrics) Reconcile(took time.Duration, changes int, err error) {
	m.reconcileTook.Observe(took.Seconds())
	m.reconcileChanges.Add(float64(changes))
	if err != nil {
		m.reconcileErrors.Inc()
	}
}

// Dump counts a full read of links and addresses.
func (m *Metrics) Dump() { m.dumps.Inc() }

// Resync counts lost events; overrun says the buffer overran (ENOBUFS).
func (m *Metrics) Resync(overrun bool) {
	m.resyncs.Inc()
	if overrun {
		m.overruns.Inc()
	}
}

// NetlinkError counts a failed read of the kernel's state or a failed
// subscription.
func (m *Metrics) NetlinkError(transient bool) {
	if transient {
		m.netlinkErrors.WithLabelValues("transient").Inc()
	} else {
		m.netlinkErrors.WithLabelValues("other").Inc()
	}
}

// Resubscribe counts a failure of the event socket.
func (m *Metrics) Resubscribe() { m.resubscribes.Inc() }

// Reload counts a configuration reload.
func (m *Metrics) Reload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("error").Inc()
	}
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Server is the HTTP endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen opens the endpoint at addr ("127.0.0.1:9273"), serving /metrics.
func (m *Metrics) Listen(addr string, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "uplinkd: metrics at /metrics")
	})
	return &Server{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Addr is where the endpoint listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx is done, then closes the endpoint and returns.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil {
			s.srv.Close()
		}
	})
	err := s.srv.Serve(s.ln)
	if !stop() {
		<-done // Shutdown started: wait until it has finished
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics: %w", err)
}
