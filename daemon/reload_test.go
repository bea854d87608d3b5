package daemon

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uplinkd/uplinkd/config"
)

const base = `
[routing]
lan_interfaces = ["eth0"]
[probe]
targets = ["198.18.0.1"]
` + testUplinks

func parse(t *testing.T, doc string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDescribe(t *testing.T) {
	routingProbe := strings.NewReplacer(
		`lan_interfaces = ["eth0"]`, "lan_interfaces = []\nhash = \"l3\"\nroute_protocol = 202",
		`targets = ["198.18.0.1"]`, "targets = [\"198.18.0.1\", \"198.18.0.2\"]\ninterval = \"1s\"\nup_after = 3",
	).Replace(base)
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{"unchanged", base, nil},
		{"weight", strings.Replace(base, "weight = 3", "weight = 1", 1), []string{"uplink isp2: weight: 3 -> 1"}},
		{"interface", strings.Replace(base, `"eth2"`, `"ppp0"`, 1), []string{"uplink isp2: interface: eth2 -> ppp0 (starts over in state down)"}},
		{"gateway and table", strings.Replace(strings.Replace(base, "203.0.113.1", "203.0.113.9", 1), "table = 200", "table = 201", 1),
			[]string{"uplink isp2: gateway: 203.0.113.1 -> 203.0.113.9", "uplink isp2: table: 200 -> 201"}},
		{"own targets", base + `probe_targets = []`, []string{"uplink isp2: probe_targets: (those of [probe]) -> []"}},
		{"own gateway probing", base + `probe_gateway = true`, []string{"uplink isp2: probe_gateway: (that of [probe]) -> true"}},
		{"health", strings.Replace(base, `targets = ["198.18.0.1"]`, `targets = ["198.18.0.1"]
gateway = true
window = 20
degraded_loss = 25.5
degraded_policy = "keep"
flap_limit = 0
flap_hold = "1m"`, 1), []string{
			"probe.gateway: false -> true",
			"probe.window: 50 -> 20",
			"probe.degraded_loss: 30 -> 25.5",
			"probe.degraded_policy: standby -> keep",
			"probe.flap_limit: 3 -> 0",
			"probe.flap_hold: 30s -> 1m0s",
		}},
		{"removed", base[:strings.Index(base, "[[uplink]]\nname = \"isp2\"")], []string{"uplink isp2: removed"}},
		{"added", base + "[[uplink]]\nname = \"lte\"\ninterface = \"wwan0\"\ngateway = \"192.0.2.1\"\ntable = 300\n", []string{"uplink lte: added"}},
		{"routing and probe", routingProbe, []string{
			"routing.lan_interfaces: [eth0] -> []",
			"routing.route_protocol: 201 -> 202",
			"routing.hash: l4 -> l3",
			"probe.targets: [198.18.0.1] -> [198.18.0.1 198.18.0.2]",
			"probe.interval: 500ms -> 1s",
			"probe.up_after: 2 -> 3",
		}},
		{"operating tables", base + `
[hooks]
on_down = ["/bin/alert", "down"]
timeout = "3s"
[status]
socket = "/run/u.sock"
[metrics]
listen = ":9273"
[log]
level = "debug"
format = "json"
`, []string{
			"hooks.on_down: [] -> [/bin/alert down]",
			"hooks.timeout: 10s -> 3s",
			"status.socket: /run/uplinkd/uplinkd.sock -> /run/u.sock (takes effect on restart)",
			`metrics.listen: "" -> ":9273" (takes effect on restart)`,
			"log.level: INFO -> DEBUG",
			"log.format: text -> json (takes effect on restart)",
		}},
	}
	old := parse(t, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, describe(old, parse(t, tt.doc))); diff != "" {
				t.Errorf("describe (-want +got):\n%s", diff)
			}
		})
	}
}
