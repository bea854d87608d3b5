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
