package metrics

import "github.com/prometheus/client_golang/prometheus"

// policyMetrics are the series of the policies.
type policyMetrics struct {
	tier       *prometheus.GaugeVec
	lastResort *prometheus.GaugeVec
}

func newPolicyMetrics(f factory) policyMetrics {
	return policyMetrics{
		tier: f.gaugeVec("uplinkd_policy_tier",
			"The policy's tier that carries its new connections, from 1; 0 when no tier has a usable uplink.", "policy"),
		lastResort: f.gaugeVec("uplinkd_policy_last_resort",
			"1 for the policy's last resort while it is in effect (no tier has a usable uplink), 0 otherwise.", "policy", "last_resort"),
	}
}

// Policy records the tier a policy uses, 0 when its last resort is in
// effect.
func (m *Metrics) Policy(policy string, tier int, lastResort string) {
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
	m.policy.tier.DeleteLabelValues(policy)
	m.policy.lastResort.DeletePartialMatch(prometheus.Labels{"policy": policy})
}
