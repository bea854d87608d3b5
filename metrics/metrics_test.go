package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/uplinkd/uplinkd/test/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// values maps the label values of each series of family name to its
// value (counter, gauge) or sample count (histogram).
func values(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := make(map[string]float64)
	f, ok := fams[name]
	if !ok {
		return nil
	}
	for _, m := range f.GetMetric() {
		key := ""
		for _, l := range m.GetLabel() {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		out[key] = testutil.Value(m)
	}
	return out
}

func TestEndpoint(t *testing.T) {
	m := New(func() (uint64, uint64, uint64, uint64) { return 5, 2, 1, 3 })
	m.Info("v1", "multipath")
	m.State("isp1", "ipv4", "down")
	m.State("isp2", "ipv4", "down")
	m.Transition("isp1", "ipv4", "down", "probing")
	m.Transition("isp1", "ipv4", "probing", "active")
	// The families of one uplink have their own series.
	m.Transition("isp1", "ipv6", "down", "probing")
	m.Balance("isp1", "ipv4", true, 1)
	m.Balance("isp2", "ipv4", false, 0)
	m.ProbeRound("isp1", "ipv4", true, 2*time.Millisecond)
	m.ProbeRound("isp1", "ipv4", false, 0)
	m.ProbeRound("isp2", "ipv4", true, 30*time.Millisecond)
	m.ProbeTargets("isp1", "ipv4", []TargetQuality{
		{Target: "198.18.0.1", Method: "icmp", Probes: 50, Loss: 0.04, RTT: 20 * time.Millisecond, Jitter: 2 * time.Millisecond},
		{Target: "198.18.0.3", Method: "icmp", Probes: 50},
	})
	// A target no longer probed loses its series; one without probes yet
	// has none.
	m.ProbeTargets("isp1", "ipv4", []TargetQuality{
		{Target: "198.18.0.1", Method: "icmp", Probes: 50, Loss: 0.04, RTT: 20 * time.Millisecond, Jitter: 2 * time.Millisecond},
		{Target: "198.18.0.2", Method: "icmp"},
	})
	m.ProbeTargets("isp2", "ipv4", []TargetQuality{{Target: "198.18.0.1", Method: "icmp", Probes: 3, Loss: 1}})
	m.ProbePackets("isp1", "ipv4", 40)
	m.ProbePackets("isp2", "ipv4", 4)
	m.Reconcile(300*time.Microsecond, 7, nil)
	m.Reconcile(time.Millisecond, 1, errors.New("x"))
	m.Dump()
	m.Resync(true)
	m.Resync(false)
	m.NetlinkError(true)
	m.NetlinkError(true)
	m.NetlinkError(false)
	m.Reload(true)

	srv, err := m.Listen("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	fams := testutil.Scrape(t, client, "http://"+srv.Addr().String()+"/metrics")

	want := map[string]map[string]float64{
		"uplinkd_info": {"balancer=multipath version=v1 ": 1},
		"uplinkd_uplink_state": {
			"family=ipv4 state=active uplink=isp1 ": 1, "family=ipv4 state=degraded uplink=isp1 ": 0, "family=ipv4 state=down uplink=isp1 ": 0, "family=ipv4 state=probing uplink=isp1 ": 0,
			"family=ipv4 state=active uplink=isp2 ": 0, "family=ipv4 state=degraded uplink=isp2 ": 0, "family=ipv4 state=down uplink=isp2 ": 1, "family=ipv4 state=probing uplink=isp2 ": 0,
			"family=ipv6 state=active uplink=isp1 ": 0, "family=ipv6 state=degraded uplink=isp1 ": 0, "family=ipv6 state=down uplink=isp1 ": 0, "family=ipv6 state=probing uplink=isp1 ": 1,
		},
		"uplinkd_uplink_transitions_total": {
			"family=ipv4 from=down to=probing uplink=isp1 ": 1, "family=ipv4 from=probing to=active uplink=isp1 ": 1,
			"family=ipv6 from=down to=probing uplink=isp1 ": 1,
		},
		"uplinkd_uplink_in_balance":         {"family=ipv4 uplink=isp1 ": 1, "family=ipv4 uplink=isp2 ": 0},
		"uplinkd_uplink_share_ratio":        {"family=ipv4 uplink=isp1 ": 1, "family=ipv4 uplink=isp2 ": 0},
		"uplinkd_probe_rounds_total":        {"family=ipv4 uplink=isp1 ": 2, "family=ipv4 uplink=isp2 ": 1},
		"uplinkd_probe_rounds_failed_total": {"family=ipv4 uplink=isp1 ": 1},
		"uplinkd_probe_rtt_seconds":         {"family=ipv4 uplink=isp1 ": 1, "family=ipv4 uplink=isp2 ": 1},
		"uplinkd_probe_target_loss_ratio": {
			"family=ipv4 method=icmp target=198.18.0.1 uplink=isp1 ": 0.04, "family=ipv4 method=icmp target=198.18.0.1 uplink=isp2 ": 1,
		},
		"uplinkd_probe_target_rtt_seconds": {
			"family=ipv4 method=icmp target=198.18.0.1 uplink=isp1 ": 0.02, "family=ipv4 method=icmp target=198.18.0.1 uplink=isp2 ": 0,
		},
		"uplinkd_probe_target_jitter_seconds": {
			"family=ipv4 method=icmp target=198.18.0.1 uplink=isp1 ": 0.002, "family=ipv4 method=icmp target=198.18.0.1 uplink=isp2 ": 0,
		},
		"uplinkd_probe_packets_total":        {"family=ipv4 uplink=isp1 ": 40, "family=ipv4 uplink=isp2 ": 4},
		"uplinkd_reconcile_duration_seconds": {"": 2},
		"uplinkd_reconcile_changes_total":    {"": 8},
		"uplinkd_reconcile_errors_total":     {"": 1},
		"uplinkd_netlink_dumps_total":        {"": 1},
		"uplinkd_netlink_resyncs_total":      {"": 2},
		"uplinkd_netlink_enobufs_total":      {"": 1},
		"uplinkd_netlink_resubscribes_total": {"": 0},
		"uplinkd_netlink_errors_total":       {"kind=transient ": 2, "kind=other ": 1},
		"uplinkd_config_reloads_total":       {"result=ok ": 1, "result=error ": 0},
		"uplinkd_hooks_started_total":        {"": 5},
		"uplinkd_hooks_failed_total":         {"": 2},
		"uplinkd_hooks_timed_out_total":      {"": 1},
		"uplinkd_hooks_dropped_total":        {"": 3},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, values(fams, name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if fams["go_goroutines"] == nil || fams["process_start_time_seconds"] == nil {
		t.Error("no Go or process metrics")
	}
	h := fams["uplinkd_probe_rtt_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleSum() != 0.002 {
		t.Errorf("isp1 rtt sum = %v, want 0.002", h.GetSampleSum())
	}

	// A removed uplink's series go away.
	m.Forget("isp2")
	fams = testutil.Scrape(t, client, "http://"+srv.Addr().String()+"/metrics")
	for _, name := range []string{"uplinkd_uplink_state", "uplinkd_uplink_in_balance", "uplinkd_probe_rounds_total", "uplinkd_probe_rtt_seconds",
		"uplinkd_probe_target_loss_ratio", "uplinkd_probe_target_rtt_seconds", "uplinkd_probe_packets_total"} {
		for key := range values(fams, name) {
			if strings.Contains(key, "uplink=isp2 ") {
				t.Errorf("%s{%s} still exported after Forget", name, key)
			}
		}
	}
	// Added again, it is exported again: no handle of a deleted series
	// is kept.
	m.ProbeRound("isp2", "ipv4", false, 0)
	m.ProbeTargets("isp2", "ipv4", []TargetQuality{{Target: "198.18.0.1", Method: "icmp", Probes: 3, Loss: 0.5}})
	m.ProbePackets("isp2", "ipv4", 2)
	fams = testutil.Scrape(t, client, "http://"+srv.Addr().String()+"/metrics")
	for name, w := range map[string]float64{
		"uplinkd_probe_rounds_total": 1, "uplinkd_probe_rounds_failed_total": 1, "uplinkd_probe_packets_total": 2,
		"uplinkd_probe_target_loss_ratio": 0.5,
	} {
		found := false
		for key, v := range values(fams, name) {
			if strings.Contains(key, "uplink=isp2 ") {
				found = true
				if v != w {
					t.Errorf("%s{%s} = %v after Forget and again, want %v", name, key, v, w)
				}
			}
		}
		if !found {
			t.Errorf("%s of isp2 not exported again after Forget", name)
		}
	}
	client.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestListenError(t *testing.T) {
	m := New(nil)
	srv, err := m.Listen("127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.ln.Close()
	if _, err := m.Listen(srv.Addr().String(), nil); err == nil {
		t.Error("second Listen on the same address succeeded")
	}
}
