package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPolicyMetrics(t *testing.T) {
	m := New(nil)
	m.Policy("default", 2, "main")
	m.Policy("guest", 1, "unreachable")
	m.Policy("guest", 0, "unreachable")
	m.Policy("gone", 1, "main")
	m.ForgetPolicy("gone")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`uplinkd_policy_tier{policy="default"} 2`,
		`uplinkd_policy_tier{policy="guest"} 0`,
		`uplinkd_policy_last_resort{last_resort="main",policy="default"} 0`,
		`uplinkd_policy_last_resort{last_resort="unreachable",policy="guest"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(body, `policy="gone"`) {
		t.Errorf("a forgotten policy's series remain")
	}
}
