package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// Balance and Policy keep their series' handles and write only changes;
// forgetting an uplink, a family or a policy drops the handles too, so
// that recording it again makes its series anew (a stale handle would
// write into a series no longer exported).
func TestCachedSeriesSurviveForget(t *testing.T) {
	m := New(nil)
	m.Balance("isp1", "ipv4", true, 0.5)
	m.Balance("isp1", "ipv4", true, 0.5)
	m.Balance("isp1", "ipv6", true, 1)
	m.Balance("isp1", "ipv4", false, 0)
	if body := scrape(t, m); !strings.Contains(body, `uplinkd_uplink_in_balance{family="ipv4",uplink="isp1"} 0`) ||
		!strings.Contains(body, `uplinkd_uplink_share_ratio{family="ipv6",uplink="isp1"} 1`) {
		t.Fatalf("balance series not updated:\n%s", body)
	}
	m.ForgetFamily("isp1", "ipv6")
	m.Forget("isp1")
	if body := scrape(t, m); strings.Contains(body, `uplink="isp1"`) {
		t.Fatalf("forgotten uplink's series remain:\n%s", body)
	}
	// The same values as before the forget: written again all the same.
	m.Balance("isp1", "ipv4", false, 0)
	m.Balance("isp1", "ipv6", true, 1)
	if body := scrape(t, m); !strings.Contains(body, `uplinkd_uplink_in_balance{family="ipv4",uplink="isp1"} 0`) ||
		!strings.Contains(body, `uplinkd_uplink_in_balance{family="ipv6",uplink="isp1"} 1`) {
		t.Fatalf("series not made again after Forget:\n%s", body)
	}

	m.Policy("guest", 1, "main")
	m.ForgetPolicy("guest")
	m.Policy("guest", 1, "main")
	if body := scrape(t, m); !strings.Contains(body, `uplinkd_policy_tier{policy="guest"} 1`) ||
		!strings.Contains(body, `uplinkd_policy_last_resort{last_resort="main",policy="guest"} 0`) {
		t.Fatalf("policy series not made again after ForgetPolicy:\n%s", body)
	}
	m.Policy("guest", 0, "unreachable")
	body := scrape(t, m)
	if !strings.Contains(body, `uplinkd_policy_last_resort{last_resort="unreachable",policy="guest"} 1`) ||
		strings.Contains(body, `last_resort="main",policy="guest"`) {
		t.Fatalf("policy series not changed:\n%s", body)
	}
}

// Recording unchanged balances of 256 uplinks, as every reconcile does.
func BenchmarkBalance256(b *testing.B) {
	m := New(nil)
	names := make([]string, 256)
	for i := range names {
		names[i] = "w" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	for b.Loop() {
		for _, n := range names {
			m.Balance(n, "ipv4", true, 1.0/256)
		}
	}
}
