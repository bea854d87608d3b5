package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The balance and policy series are recorded at every reconcile, for every
// uplink, and the probe round series at every probe round: with 256
// uplinks, looking each series up by its labels (hashing them, under the
// vector's lock) at every reconcile was a good part of the reconcile's
// work. Metrics keeps their handles (and for balances and policies their
// last values, written only when they change) instead.

// seriesKey names an uplink's series of one family.
type seriesKey struct{ uplink, family string }

// balanceSeries are the handles and values of an uplink's balance series.
type balanceSeries struct {
	inBalance, share prometheus.Gauge
	in               bool
	shareV           float64
}

// policySeries is the last value recorded for a policy.
type policySeries struct {
	tier       int
	lastResort string
}

// cache holds the handles and values; its lock makes Metrics safe for
// concurrent use, as the vectors are.
type cache struct {
	mu       sync.Mutex
	balance  map[seriesKey]*balanceSeries
	policies map[string]policySeries
	rounds   map[seriesKey]*roundSeries
}

// roundSeries are the handles of an uplink's probe round series, which
// every probe round records. The failed and RTT series are exported from
// the first round that feeds them on, so they are looked up then.
type roundSeries struct {
	rounds, failed prometheus.Counter
	rtt            prometheus.Observer
}

// ProbeRound records one probe round; rtt is its fastest reply when good.
func (m *Metrics) ProbeRound(uplink, family string, good bool, rtt time.Duration) {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	k := seriesKey{uplink, family}
	s, ok := m.cache.rounds[k]
	if !ok {
		s = &roundSeries{rounds: m.rounds.WithLabelValues(uplink, family)}
		if m.cache.rounds == nil {
			m.cache.rounds = make(map[seriesKey]*roundSeries)
		}
		m.cache.rounds[k] = s
	}
	s.rounds.Inc()
	if !good {
		if s.failed == nil {
			s.failed = m.failed.WithLabelValues(uplink, family)
		}
		s.failed.Inc()
		return
	}
	if s.rtt == nil {
		s.rtt = m.rtt.WithLabelValues(uplink, family)
	}
	s.rtt.Observe(rtt.Seconds())
}

// Balance records whether the uplink is in the balance and its share.
func (m *Metrics) Balance(uplink, family string, in bool, share float64) {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	k := seriesKey{uplink, family}
	s, ok := m.cache.balance[k]
	if !ok {
		s = &balanceSeries{
			inBalance: m.inBalance.WithLabelValues(uplink, family),
			share:     m.share.WithLabelValues(uplink, family),
		}
		if m.cache.balance == nil {
			m.cache.balance = make(map[seriesKey]*balanceSeries)
		}
		m.cache.balance[k] = s
	} else if s.in == in && s.shareV == share {
		return
	}
	v := 0.0
	if in {
		v = 1
	}
	s.inBalance.Set(v)
	s.share.Set(share)
	s.in, s.shareV = in, share
}

// forgetBalance drops the cached series of uplink (of family, or of both
// when family is ""), which the caller deletes from the vectors.
func (m *Metrics) forgetBalance(uplink, family string) {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	for k := range m.cache.balance {
		if k.uplink == uplink && (family == "" || k.family == family) {
			delete(m.cache.balance, k)
		}
	}
	for k := range m.cache.rounds {
		if k.uplink == uplink && (family == "" || k.family == family) {
			delete(m.cache.rounds, k)
		}
	}
}

// Policy records the tier a policy uses, 0 when its last resort is in
// effect.
func (m *Metrics) Policy(policy string, tier int, lastResort string) {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	now := policySeries{tier, lastResort}
	if old, ok := m.cache.policies[policy]; ok && old == now {
		return
	}
	if m.cache.policies == nil {
		m.cache.policies = make(map[string]policySeries)
	}
	m.cache.policies[policy] = now
	m.policy.tier.WithLabelValues(policy).Set(float64(tier))
	v := 0.0
	if tier == 0 {
		v = 1
	}
	m.policy.lastResort.DeletePartialMatch(prometheus.Labels{"policy": policy})
	m.policy.lastResort.WithLabelValues(policy, lastResort).Set(v)
}

// ForgetPolicy drops the series of a policy a reload removed.
func (m *Metrics) ForgetPolicy(policy string) {
	m.cache.mu.Lock()
	defer m.cache.mu.Unlock()
	delete(m.cache.policies, policy)
	m.policy.tier.DeleteLabelValues(policy)
	m.policy.lastResort.DeletePartialMatch(prometheus.Labels{"policy": policy})
}
