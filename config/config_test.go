package config

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const referencePath = "../etc/uplinkd.toml"

var addrComparer = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
var prefixComparer = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func icmp(s string) Target { return Target{Method: MethodICMP, Addr: addr(s)} }

// isp1 and isp2 are minimal valid uplinks, five lines each.
var (
	isp1 = []string{
		`[[uplink]]`,
		`name = "isp1"`,
		`interface = "eth1"`,
		`gateway = "198.51.100.1"`,
		`table = 100`,
	}
	isp2 = []string{
		`[[uplink]]`,
		`name = "isp2"`,
		`interface = "eth2"`,
		`gateway = "203.0.113.1"`,
		`table = 200`,
	}
)

// file joins lines (strings or []string) into a TOML document, so that a
// test can count the line numbers it expects.
func file(parts ...any) string {
	var ls []string
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			ls = append(ls, p)
		case []string:
			ls = append(ls, p...)
		default:
			panic(fmt.Sprintf("file: unexpected %T", p))
		}
	}
	return strings.Join(ls, "\n") + "\n"
}

// uplink returns a valid uplink with one key replaced, added (when absent)
// or removed (when value is empty).
func uplink(key, value string) []string {
	ls := []string{`[[uplink]]`}
	found := false
	for _, l := range isp1[1:] {
		k, _, _ := strings.Cut(l, " = ")
		if k == key {
			found = true
			if value == "" {
				continue
			}
			l = key + " = " + value
		}
		ls = append(ls, l)
	}
	if !found {
		ls = append(ls, key+" = "+value)
	}
	return ls
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func defaults() Config {
	return Config{
		Routing: Routing{BalanceTable: 250, RulePriority: 10000, RouteProtocol: 201, Hash: "l4",
			Balancer: "auto", NexthopIDBase: 2010000000, IdleTimer: 120 * time.Second, UnbalancedTimer: 10 * time.Second,
			FlushConntrack: true, MarkMask: 0xff000000, StateDir: "/run/uplinkd"},
		Probe:  defaultProbe(),
		Hooks:  Hooks{Timeout: 10 * time.Second, MaxRunning: 4},
		Status: Status{Socket: "/run/uplinkd/uplinkd.sock"},
		Log:    Log{Level: slog.LevelInfo, Format: "text"},
	}
}

func defaultProbe() Probe {
	return Probe{
		Interval: 500 * time.Millisecond, Timeout: 430 * time.Millisecond, DownAfter: 4, UpAfter: 2,
		Reliability: 1, Window: 50,
		DegradedLoss: 30, RecoverLoss: 10, DegradedRTT: 300 * time.Millisecond, RecoverRTT: 200 * time.Millisecond,
		DegradedPolicy: "standby",
		FlapLimit:      3, FlapWindow: time.Minute, FlapHold: 30 * time.Second, FlapHoldMax: 10 * time.Minute,
		CheckInterval: 5 * time.Second, CheckTimeout: 2 * time.Second, HTTPExpect: 204,
		Targets6: DefaultTargets6,
	}
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

func TestReference(t *testing.T) {
	got, err := Load(referencePath)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", referencePath, err)
	}
	want := &Config{
		Routing: Routing{
			LANInterfaces: []string{"eth0"},
			BalanceTable:  250,
			RulePriority:  10000,
			RouteProtocol: 201,
			Hash:          "l4",

			Balancer:        "auto",
			NexthopIDBase:   2010000000,
			IdleTimer:       120 * time.Second,
			UnbalancedTimer: 10 * time.Second,
			FlushConntrack:  true,
			MarkMask:        0xff000000,
			StateDir:        "/run/uplinkd",
		},
		Probe: func() Probe {
			p := defaultProbe()
			p.Targets = []Target{icmp("1.1.1.1"), icmp("8.8.8.8"), icmp("9.9.9.9")}
			return p
		}(),
		Uplinks: []Uplink{
			{Name: "isp1", Interface: "eth1", GatewayMode: GatewayAuto, GatewayHold: DefaultGatewayHold, Weight: 1, Table: 100},
			{Name: "isp2", Interface: "eth2", GatewayMode: GatewayAuto, GatewayHold: DefaultGatewayHold, Weight: 3, Table: 200},
		},
		Hooks:  Hooks{Timeout: 10 * time.Second, MaxRunning: 4},
		Status: Status{Socket: "/run/uplinkd/uplinkd.sock"},
		Log:    Log{Level: slog.LevelInfo, Format: "text"},
	}
	if diff := cmp.Diff(want, got, addrComparer, prefixComparer); diff != "" {
		t.Errorf("reference config (-want +got):\n%s", diff)
	}
}

// The reference config sets every defaulted key to its default, so a
// default changed in code without the documentation fails here.
func TestReferenceShowsDefaults(t *testing.T) {
	ref, err := Load(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	def := mustParse(t, file(isp1))
	ref.Routing.LANInterfaces = nil // example values, not defaults
	ref.Probe.Targets = nil
	if diff := cmp.Diff(def.Routing, ref.Routing); diff != "" {
		t.Errorf("[routing] in reference differs from defaults (-default +reference):\n%s", diff)
	}
	if diff := cmp.Diff(def.Probe, ref.Probe, addrComparer, prefixComparer); diff != "" {
		t.Errorf("[probe] in reference differs from defaults (-default +reference):\n%s", diff)
	}
	for _, tc := range []struct {
		table    string
		def, ref any
	}{
		{"hooks", def.Hooks, ref.Hooks},
		{"status", def.Status, ref.Status},
		{"metrics", def.Metrics, ref.Metrics},
		{"log", def.Log, ref.Log},
	} {
		if diff := cmp.Diff(tc.def, tc.ref); diff != "" {
			t.Errorf("[%s] in reference differs from defaults (-default +reference):\n%s", tc.table, diff)
		}
	}
	if ref.Uplinks[0].Weight != def.Uplinks[0].Weight {
		t.Errorf("reference uplink[0].weight = %d, default is %d", ref.Uplinks[0].Weight, def.Uplinks[0].Weight)
	}
}

// Every key the decoder knows must be documented in the reference config,
// set or commented out.
func TestReferenceDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{"[routing]", "[probe]", "[hooks]", "[status]", "[metrics]", "[log]", "[[uplink]]"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(header) + `\s*$`).Match(data) {
			t.Errorf("reference config has no %s table", header)
		}
	}
	for table, keys := range schema {
		for _, k := range keys {
			if table == "" {
				continue
			}
			re := regexp.MustCompile(`(?m)^[ \t]*#?[ \t]*` + regexp.QuoteMeta(k) + `[ \t]*=`)
			if !re.Match(data) {
				t.Errorf("reference config does not document %s.%s", table, k)
			}
		}
	}
	n := 0
	for _, keys := range schema {
		n += len(keys)
	}
	// 9 tables at the top level, 45 keys in [routing], [probe] and
	// [[uplink]], 16 in [[policy]] and [[rule]], 12 in [hooks], [status],
	// [metrics] and [log].
	if n != 9+45+16+12 {
		t.Errorf("schema has %d keys, want %d: %v", n, 9+45+16+12, schema)
	}
}

func TestDefaults(t *testing.T) {
	got := mustParse(t, file(isp1))
	want := defaults()
	want.Uplinks = []Uplink{{Name: "isp1", Interface: "eth1", Gateway: addr("198.51.100.1"), Weight: 1, Table: 100}}
	if diff := cmp.Diff(&want, got, addrComparer, prefixComparer); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// Values on the edge of every range are accepted, and empty lists are
// normalised.
func TestLimitsAccepted(t *testing.T) {
	table := "4294967295"
	wantTable := 0
	if strconv.IntSize == 64 {
		wantTable = 4294967295
	} else {
		table = "2147483647"
		wantTable = 2147483647
	}
	doc := file(
		`[routing]`,
		`lan_interfaces = []`,
		`balance_table = 1`,
		`rule_priority = 32665`,
		`route_protocol = 255`,
		`hash = "l3"`,
		`balancer = "multipath"`,
		`nexthop_id_base = 4294965248`,
		`idle_timer = "24h"`,
		`unbalanced_timer = "1s"`,
		`flush_conntrack = false`,
		`mark_mask = 0x80000001`,
		`state_dir = "/var/lib/x"`,
		`[probe]`,
		`targets = []`,
		`interval = "10ms"`,
		`timeout = "10s"`,
		`down_after = 1`,
		`up_after = 1`,
		`gateway = true`,
		`reliability = 1`,
		`window = 10000`,
		`degraded_loss = 100`,
		`recover_loss = 0`,
		`degraded_rtt = "9.999s"`,
		`recover_rtt = "0s"`,
		`degraded_policy = "keep"`,
		`flap_limit = 0`,
		`flap_window = "1ms"`,
		`flap_hold = "1h"`,
		`flap_hold_max = "1h"`,
		`[hooks]`,
		`on_transition = ["/x", "", "--flag"]`,
		`on_down = []`,
		`timeout = "1h"`,
		`max_running = 64`,
		`[status]`,
		`socket = "/`+strings.Repeat("s", 106)+`"`,
		`[metrics]`,
		`listen = ":65535"`,
		`[log]`,
		`level = "error"`,
		`format = "json"`,
		`[[uplink]]`,
		`name = "`+strings.Repeat("a", 32)+`"`,
		`interface = "`+strings.Repeat("b", 15)+`"`,
		`gateway = "192.0.2.1"`,
		`weight = 256`,
		`table = `+table,
		`[[uplink]]`,
		`name = "A-z_0.9"`,
		`interface = "wan.7@x"`,
		`gateway = "169.254.0.1"`,
		`weight = 1`,
		`table = 2`,
		`[[uplink]]`,
		`name = "x"`,
		`interface = "ppp0"`,
		`gateway = "203.0.113.9"`,
		`table = 252`,
	)
	got := mustParse(t, doc)
	want := &Config{
		Routing: Routing{BalanceTable: 1, RulePriority: 32665, RouteProtocol: 255, Hash: "l3",
			Balancer: "multipath", NexthopIDBase: 4294965248, IdleTimer: 24 * time.Hour, UnbalancedTimer: time.Second,
			MarkMask: 0x80000001, StateDir: "/var/lib/x"},
		Probe: Probe{
			Gateway: true, Interval: 10 * time.Millisecond, Timeout: 10 * time.Second, DownAfter: 1, UpAfter: 1,
			Reliability: 1, Window: 10000, DegradedLoss: 100, RecoverLoss: 0, DegradedRTT: 9999 * time.Millisecond,
			DegradedPolicy: "keep", FlapWindow: time.Millisecond, FlapHold: time.Hour, FlapHoldMax: time.Hour,
			CheckInterval: 5 * time.Second, CheckTimeout: 2 * time.Second, HTTPExpect: 204, Targets6: DefaultTargets6,
		},
		Uplinks: []Uplink{
			{Name: strings.Repeat("a", 32), Interface: strings.Repeat("b", 15), Gateway: addr("192.0.2.1"), Weight: 256, Table: wantTable},
			{Name: "A-z_0.9", Interface: "wan.7@x", Gateway: addr("169.254.0.1"), Weight: 1, Table: 2},
			{Name: "x", Interface: "ppp0", Gateway: addr("203.0.113.9"), Weight: 1, Table: 252},
		},
		Hooks:   Hooks{OnTransition: []string{"/x", "", "--flag"}, Timeout: time.Hour, MaxRunning: 64},
		Status:  Status{Socket: "/" + strings.Repeat("s", 106)},
		Metrics: Metrics{Listen: ":65535"},
		Log:     Log{Level: slog.LevelError, Format: "json"},
	}
	if diff := cmp.Diff(want, got, addrComparer, prefixComparer); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	minimal := mustParse(t, file(`[routing]`, `route_protocol = 5`, `rule_priority = 1`, `nexthop_id_base = 1`,
		`idle_timer = "1s"`, `unbalanced_timer = "24h"`, `hash = "source"`, `balancer = "resilient"`,
		`[hooks]`, `max_running = 1`, `timeout = "1ns"`, `[metrics]`, `listen = "[::1]:1"`, `[log]`, `level = "debug"`, isp1))
	if r := minimal.Routing; r.RouteProtocol != 5 || r.RulePriority != 1 || r.NexthopIDBase != 1 || r.IdleTimer != time.Second ||
		r.UnbalancedTimer != 24*time.Hour || r.Hash != "source" || r.Balancer != "resilient" {
		t.Errorf("routing = %+v, want the values of the file", minimal.Routing)
	}
	if minimal.Hooks.MaxRunning != 1 || minimal.Hooks.Timeout != 1 || minimal.Metrics.Listen != "[::1]:1" || minimal.Log.Level != slog.LevelDebug {
		t.Errorf("hooks %+v, metrics %+v, log %+v: want max_running 1, timeout 1ns, listen [::1]:1, level debug",
			minimal.Hooks, minimal.Metrics, minimal.Log)
	}
}

func TestTargetsFor(t *testing.T) {
	doc := file(
		`[probe]`,
		`targets = ["198.18.0.1", "198.18.0.2"]`,
		isp1, // no probe_targets: the [probe] targets
		isp2,
		`probe_targets = []`, // carrier-only
		`[[uplink]]`,
		`name = "isp3"`,
		`interface = "eth3"`,
		`gateway = "192.0.2.1"`,
		`table = 300`,
		`probe_targets = ["198.19.0.1"]`,
	)
	c := mustParse(t, doc)
	global := []Target{icmp("198.18.0.1"), icmp("198.18.0.2")}
	tests := []struct {
		uplink int
		want   []Target
	}{
		{0, global},
		{1, []Target{}},
		{2, []Target{icmp("198.19.0.1")}},
	}
	for _, tt := range tests {
		u := c.Uplinks[tt.uplink]
		got := c.TargetsFor(u)
		if diff := cmp.Diff(tt.want, got, addrComparer, prefixComparer); diff != "" {
			t.Errorf("TargetsFor(%s) (-want +got):\n%s", u.Name, diff)
		}
		if (got == nil) != (tt.want == nil) {
			t.Errorf("TargetsFor(%s) = %#v, want nil=%t", u.Name, got, tt.want == nil)
		}
	}
	if c.Uplinks[0].ProbeTargets != nil {
		t.Errorf("absent probe_targets = %#v, want nil", c.Uplinks[0].ProbeTargets)
	}

	// Without [probe] targets every uplink without its own is carrier-only.
	c = mustParse(t, file(isp1))
	if got := c.TargetsFor(c.Uplinks[0]); len(got) != 0 {
		t.Errorf("TargetsFor without any targets = %v, want none", got)
	}
}

func TestGatewayProbing(t *testing.T) {
	doc := file(
		`[probe]`,
		`gateway = true`,
		`reliability = 2`,
		isp1, // no targets: its gateway
		isp2,
		`probe_gateway = false`, // carrier-only
		`[[uplink]]`,
		`name = "isp3"`,
		`interface = "eth3"`,
		`gateway = "192.0.2.1"`,
		`table = 300`,
		`probe_targets = ["198.19.0.1", "198.19.0.2"]`, // targets win
	)
	c := mustParse(t, doc)
	tests := []struct {
		uplink      int
		want        []Target
		reliability int
	}{
		{0, []Target{icmp("198.51.100.1")}, 1},
		{1, nil, 1},
		{2, []Target{icmp("198.19.0.1"), icmp("198.19.0.2")}, 2},
	}
	for _, tt := range tests {
		u := c.Uplinks[tt.uplink]
		if diff := cmp.Diff(tt.want, c.TargetsFor(u), addrComparer, prefixComparer); diff != "" {
			t.Errorf("TargetsFor(%s) (-want +got):\n%s", u.Name, diff)
		}
		if got := c.ReliabilityFor(u); got != tt.reliability {
			t.Errorf("ReliabilityFor(%s) = %d, want %d", u.Name, got, tt.reliability)
		}
	}
	// An uplink can ask for gateway probing on its own.
	c = mustParse(t, file(isp1, `probe_gateway = true`))
	if got := c.TargetsFor(c.Uplinks[0]); len(got) != 1 || got[0] != icmp("198.51.100.1") {
		t.Errorf("TargetsFor with probe_gateway = true: %v, want the gateway", got)
	}
}

// problem is an Error without its file; Msg is a substring to look for.
type problem struct {
	Line int
	Key  string
	Msg  string
}

func TestProblems(t *testing.T) {
	tooMany := make([]string, 0, 257*5)
	for i := range 257 {
		tooMany = append(tooMany,
			`[[uplink]]`,
			fmt.Sprintf(`name = "isp%d"`, i),
			fmt.Sprintf(`interface = "eth%d"`, i),
			`gateway = "198.51.100.1"`,
			fmt.Sprintf(`table = %d`, 1000+i),
		)
	}
	long := strings.Repeat("x", 33)

	tests := []struct {
		name string
		doc  string
		want []problem
	}{
		// TOML syntax.
		{"syntax bare duration", file(`[probe]`, `interval = 250ms`, isp1), []problem{{2, "", "invalid TOML"}}},
		{"syntax unclosed header", file(isp1, `[routing`), []problem{{6, "", "invalid TOML"}}},
		{"syntax duplicate key", file(isp1, `table = 101`), []problem{{6, "", "invalid TOML"}}},

		// Unknown keys.
		{"unknown routing key", file(`[routing]`, `hash = "l4"`, `hashing = "l3"`, isp1),
			[]problem{{3, "routing.hashing", "unknown key"}}},
		{"unknown uplink key", file(isp1, isp2, `wieght = 3`), []problem{{11, "uplink[1].wieght", "unknown key"}}},
		{"unknown table", file(`[foo]`, `bar = 1`, isp1), []problem{{1, "foo", "unknown key"}}},
		{"unknown top-level key", file(`debug = true`, isp1), []problem{{1, "debug", "unknown key"}}},
		{"unknown dotted key", file(`probe.jitter = "1ms"`, isp1), []problem{{1, "probe.jitter", "unknown key"}}},
		{"unknown key in inline table",
			file(`uplink = [{name = "isp1", interface = "eth1", gateway = "198.51.100.1", table = 100, bogus = 1}]`),
			[]problem{{1, "uplink[0].bogus", "unknown key"}}},
		{"keys are case-sensitive", file(isp1, `Weight = 3`), []problem{{6, "uplink[0].Weight", `did you mean "weight"`}}},
		{"table names are case-sensitive", file(`[Probe]`, `interval = "1s"`, isp1),
			[]problem{{1, "Probe", `did you mean "probe"`}}},

		// Wrong types.
		{"integer as string", file(`[routing]`, `balance_table = "250"`, isp1),
			[]problem{{2, "routing.balance_table", `expected an integer, got string "250"`}}},
		{"duration as integer", file(`[probe]`, `interval = 250`, isp1),
			[]problem{{2, "probe.interval", `expected a duration string such as "250ms", got integer 250`}}},
		{"name as integer", file(uplink("name", "1")), []problem{{2, "uplink[0].name", "expected a string, got integer 1"}}},
		{"weight as float", file(isp1, `weight = 1.5`), []problem{{6, "uplink[0].weight", "got float 1.5"}}},
		{"gateway as array", file(uplink("gateway", `["198.51.100.1"]`)), []problem{{4, "uplink[0].gateway", "got an array"}}},
		{"targets as string", file(`[probe]`, `targets = "198.18.0.1"`, isp1),
			[]problem{{2, "probe.targets", `expected an array of strings, got string "198.18.0.1"`}}},
		{"list with an integer", file(`[routing]`, `lan_interfaces = ["eth0", 1]`, isp1),
			[]problem{{2, "routing.lan_interfaces", "element 1 is integer 1"}}},
		{"routing not a table", file(`routing = 5`, isp1), []problem{{1, "routing", "expected a table, got integer 5"}}},
		{"probe array of tables", file(`[[probe]]`, `interval = "1s"`, isp1), []problem{{1, "probe", "got an array of tables"}}},
		{"uplink single table", file(`[uplink]`, `name = "isp1"`), []problem{{1, "uplink", "expected an array of tables"}}},
		{"uplink element not a table", file(`uplink = [1]`), []problem{{1, "uplink[0]", "expected a table, got integer 1"}}},

		// The uplink list.
		{"no uplinks", file(`[routing]`, `hash = "l4"`), []problem{{0, "uplink", "no uplinks"}}},
		{"empty file", "", []problem{{0, "uplink", "no uplinks"}}},
		{"empty uplink array", file(`uplink = []`), []problem{{1, "uplink", "no uplinks"}}},
		{"too many uplinks", file(tooMany), []problem{
			{0, "routing.mark_mask", "0xff000000 has room for 255 uplinks, the file has 257; give it more bits"},
			{1281, "uplink", "too many uplinks: 257 (at most 256)"}}},

		// name.
		{"name missing", file(uplink("name", "")), []problem{{1, "uplink[0].name", "missing"}}},
		{"name with space", file(uplink("name", `"isp 1"`)), []problem{{2, "uplink[0].name", "invalid name"}}},
		{"name empty", file(uplink("name", `""`)), []problem{{2, "uplink[0].name", "invalid name"}}},
		{"name too long", file(uplink("name", `"`+long+`"`)), []problem{{2, "uplink[0].name", "invalid name"}}},
		{"name duplicate", file(isp1, isp2[:1], `name = "isp1"`, isp2[2:]),
			[]problem{{7, "uplink[1].name", `duplicate name "isp1" (also uplink[0], line 2)`}}},

		// interface.
		{"interface missing", file(uplink("interface", "")), []problem{{1, "uplink[0].interface", "missing"}}},
		{"interface empty", file(uplink("interface", `""`)), []problem{{3, "uplink[0].interface", "invalid interface name"}}},
		{"interface slash", file(uplink("interface", `"eth/0"`)), []problem{{3, "uplink[0].interface", "'/'"}}},
		{"interface colon", file(uplink("interface", `"eth1:0"`)), []problem{{3, "uplink[0].interface", "':'"}}},
		{"interface space", file(uplink("interface", `"eth 1"`)), []problem{{3, "uplink[0].interface", "whitespace"}}},
		{"interface dot", file(uplink("interface", `"."`)), []problem{{3, "uplink[0].interface", "invalid interface name"}}},
		{"interface dotdot", file(uplink("interface", `".."`)), []problem{{3, "uplink[0].interface", "invalid interface name"}}},
		{"interface too long", file(uplink("interface", `"abcdefghijklmnop"`)), []problem{{3, "uplink[0].interface", "longer than 15 bytes"}}},
		{"interface loopback", file(uplink("interface", `"lo"`)), []problem{{3, "uplink[0].interface", "loopback"}}},
		{"interface duplicate", file(isp1, isp2[:2], `interface = "eth1"`, isp2[3:]),
			[]problem{{8, "uplink[1].interface", `duplicate interface "eth1" (also uplink[0], line 3)`}}},

		// table and balance_table.
		{"table missing", file(uplink("table", "")), []problem{{1, "uplink[0].table", "missing"}}},
		{"table 0", file(uplink("table", "0")), []problem{{5, "uplink[0].table", "reserved (unspecified)"}}},
		{"table 253", file(uplink("table", "253")), []problem{{5, "uplink[0].table", "reserved (default)"}}},
		{"table 254", file(uplink("table", "254")), []problem{{5, "uplink[0].table", "reserved (main)"}}},
		{"table 255", file(uplink("table", "255")), []problem{{5, "uplink[0].table", "reserved (local)"}}},
		{"table negative", file(uplink("table", "-1")), []problem{{5, "uplink[0].table", "out of range"}}},
		{"table over uint32", file(uplink("table", "4294967296")), []problem{{5, "uplink[0].table", "out of range"}}},
		{"table is balance table", file(uplink("table", "250")), []problem{{5, "uplink[0].table", "routing.balance_table"}}},
		{"table is custom balance table", file(`[routing]`, `balance_table = 100`, isp1),
			[]problem{{7, "uplink[0].table", "routing.balance_table"}}},
		{"table duplicate", file(isp1, isp2[:4], `table = 100`),
			[]problem{{10, "uplink[1].table", "duplicate table 100 (also uplink[0], line 5)"}}},
		{"balance_table reserved", file(`[routing]`, `balance_table = 254`, isp1),
			[]problem{{2, "routing.balance_table", "reserved (main)"}}},
		{"balance_table 0", file(`[routing]`, `balance_table = 0`, isp1),
			[]problem{{2, "routing.balance_table", "reserved (unspecified)"}}},
		{"balance_table negative", file(`[routing]`, `balance_table = -250`, isp1),
			[]problem{{2, "routing.balance_table", "out of range"}}},
		{"balance_table over uint32", file(`[routing]`, `balance_table = 4294967296`, isp1),
			[]problem{{2, "routing.balance_table", "out of range"}}},

		// weight.
		{"weight 0", file(isp1, `weight = 0`), []problem{{6, "uplink[0].weight", "0 is out of range (1..256)"}}},
		{"weight 257", file(isp1, `weight = 257`), []problem{{6, "uplink[0].weight", "257 is out of range (1..256)"}}},
		{"weight negative", file(isp1, `weight = -1`), []problem{{6, "uplink[0].weight", "out of range"}}},

		// gateway.
		{"gateway missing", file(uplink("gateway", "")), []problem{{1, "uplink[0].gateway", "missing, and so is gateway6: an uplink needs gateway (IPv4), gateway6 (IPv6) or both"}}},
		{"gateway IPv6", file(uplink("gateway", `"2001:db8::1"`)), []problem{{4, "uplink[0].gateway", "not an IPv4 address"}}},
		{"gateway garbage", file(uplink("gateway", `"isp1-router"`)), []problem{{4, "uplink[0].gateway", "not an IPv4 address"}}},
		{"gateway empty", file(uplink("gateway", `""`)), []problem{{4, "uplink[0].gateway", "not an IPv4 address"}}},
		{"gateway prefix", file(uplink("gateway", `"198.51.100.1/24"`)), []problem{{4, "uplink[0].gateway", "not an IPv4 address"}}},
		{"gateway mapped", file(uplink("gateway", `"::ffff:198.51.100.1"`)), []problem{{4, "uplink[0].gateway", "not an IPv4 address"}}},
		{"gateway unspecified", file(uplink("gateway", `"0.0.0.0"`)), []problem{{4, "uplink[0].gateway", "unspecified"}}},
		{"gateway this network", file(uplink("gateway", `"0.1.2.3"`)), []problem{{4, "uplink[0].gateway", "unspecified"}}},
		{"gateway broadcast", file(uplink("gateway", `"255.255.255.255"`)), []problem{{4, "uplink[0].gateway", "broadcast"}}},
		{"gateway multicast", file(uplink("gateway", `"224.0.0.1"`)), []problem{{4, "uplink[0].gateway", "multicast"}}},
		{"gateway loopback", file(uplink("gateway", `"127.0.0.1"`)), []problem{{4, "uplink[0].gateway", "loopback"}}},

		// Probe targets.
		{"target IPv6", file(`[probe]`, `targets = ["198.18.0.1", "2001:db8::1"]`, isp1),
			[]problem{{2, "probe.targets[1]", `"2001:db8::1" is not an IPv4 address`}}},
		{"target garbage on its own line", file(`[probe]`, `targets = [`, `  "198.18.0.1",`, `  "one example",`, `]`, isp1),
			[]problem{{4, "probe.targets[1]", "not an IPv4 address"}}},
		{"target multicast", file(`[probe]`, `targets = ["224.0.0.1"]`, isp1), []problem{{2, "probe.targets[0]", "multicast"}}},
		{"target unspecified", file(`[probe]`, `targets = ["0.0.0.0"]`, isp1), []problem{{2, "probe.targets[0]", "unspecified"}}},
		{"target broadcast", file(`[probe]`, `targets = ["255.255.255.255"]`, isp1), []problem{{2, "probe.targets[0]", "broadcast"}}},
		{"target loopback", file(`[probe]`, `targets = ["127.0.0.1"]`, isp1), []problem{{2, "probe.targets[0]", "loopback"}}},
		{"target unknown method", file(`[probe]`, `targets = ["udp://198.18.0.1:53"]`, isp1), []problem{{2, "probe.targets[0]", `unknown probe method "udp"`}}},
		{"tcp target without port", file(`[probe]`, `targets = ["tcp://198.18.0.1"]`, isp1), []problem{{2, "probe.targets[0]", "tcp://ADDRESS:PORT"}}},
		{"tcp target port 0", file(`[probe]`, `targets = ["tcp://198.18.0.1:0"]`, isp1), []problem{{2, "probe.targets[0]", "1 to 65535"}}},
		{"tcp target bad address", file(`[probe]`, `targets = ["tcp://example.net:443"]`, isp1), []problem{{2, "probe.targets[0]", "not an IPv4 address"}}},
		{"http check alone", file(`[probe]`, `targets = ["http://198.18.0.3/generate_204"]`, isp1),
			[]problem{{2, "probe.targets", "no ICMP or TCP target"}}},
		{"http check without host", file(`[probe]`, `targets = ["198.18.0.1", "http:///x"]`, isp1), []problem{{2, "probe.targets[1]", "http://HOST/PATH"}}},
		{"dns check bad port", file(`[probe]`, `targets = ["198.18.0.1", "dns://198.18.0.1:0"]`, isp1), []problem{{2, "probe.targets[1]", "1 to 65535"}}},
		{"dns check bad address", file(`[probe]`, `targets = ["198.18.0.1", "dns://resolver/example.net"]`, isp1), []problem{{2, "probe.targets[1]", "not an IPv4 address"}}},
		{"http_expect out of range", file(`[probe]`, `http_expect = 99`, isp1), []problem{{2, "probe.http_expect", "not an HTTP status"}}},
		{"check_timeout over check_interval", file(`[probe]`, `check_interval = "1s"`, isp1),
			[]problem{{2, "probe.check_interval", "check_timeout 2s (the default) is longer than check_interval (1s)"}}},
		{"duplicate tcp target", file(`[probe]`, `targets = ["tcp://198.18.0.1:443", "tcp://198.18.0.1:443"]`, isp1),
			[]problem{{2, "probe.targets[1]", "duplicate target tcp://198.18.0.1:443"}}},
		{"target duplicate", file(`[probe]`, `targets = ["198.18.0.1", "198.18.0.1"]`, isp1),
			[]problem{{2, "probe.targets[1]", "duplicate target 198.18.0.1"}}},
		{"uplink target invalid", file(isp1, `probe_targets = ["198.18.0.1", "x"]`),
			[]problem{{6, "uplink[0].probe_targets[1]", `"x" is not an IPv4 address`}}},
		{"uplink targets wrong type", file(isp1, `probe_targets = "198.18.0.1"`),
			[]problem{{6, "uplink[0].probe_targets", "expected an array of strings"}}},

		// Durations.
		{"interval malformed", file(`[probe]`, `interval = "fast"`, isp1), []problem{{2, "probe.interval", `"fast" is not a duration`}}},
		{"interval no unit", file(`[probe]`, `interval = "250"`, isp1), []problem{{2, "probe.interval", "not a duration"}}},
		{"interval empty", file(`[probe]`, `interval = ""`, isp1), []problem{{2, "probe.interval", "not a duration"}}},
		{"interval negative", file(`[probe]`, `interval = "-1s"`, isp1), []problem{{2, "probe.interval", "must be positive"}}},
		{"interval zero", file(`[probe]`, `interval = "0s"`, isp1), []problem{{2, "probe.interval", "must be positive"}}},
		{"interval too short", file(`[probe]`, `interval = "9ms"`, isp1), []problem{{2, "probe.interval", "shorter than 10ms"}}},
		{"timeout zero", file(`[probe]`, `timeout = "0"`, isp1), []problem{{2, "probe.timeout", "must be positive"}}},
		{"timeout negative", file(`[probe]`, `timeout = "-5ms"`, isp1), []problem{{2, "probe.timeout", "must be positive"}}},
		{"timeout too long", file(`[probe]`, `timeout = "10.001s"`, isp1), []problem{{2, "probe.timeout", "longer than 10s"}}},

		// Counters.
		{"down_after 0", file(`[probe]`, `down_after = 0`, isp1), []problem{{2, "probe.down_after", "at least 1"}}},
		{"up_after negative", file(`[probe]`, `up_after = -1`, isp1), []problem{{2, "probe.up_after", "at least 1"}}},
		{"window 0", file(`[probe]`, `window = 0`, isp1), []problem{{2, "probe.window", "at least 1"}}},
		{"window too large", file(`[probe]`, `window = 10001`, isp1), []problem{{2, "probe.window", "more than 10000"}}},
		{"reliability 0", file(`[probe]`, `reliability = 0`, isp1), []problem{{2, "probe.reliability", "at least 1"}}},
		{"reliability above the targets", file(`[probe]`, `targets = ["198.18.0.1"]`, `reliability = 2`, isp1),
			[]problem{{3, "probe.reliability", "2 targets must answer, but probe.targets has 1 target"}}},
		{"reliability above an uplink's targets", file(`[probe]`, `reliability = 2`, isp1, `probe_targets = ["198.18.0.1"]`),
			[]problem{{8, "uplink[0].probe_targets", "1 target, fewer than the 2 that probe.reliability requires"}}},
		{"flap_limit negative", file(`[probe]`, `flap_limit = -1`, isp1), []problem{{2, "probe.flap_limit", "out of range"}}},

		// Quality thresholds and damping.
		{"degraded_loss over 100", file(`[probe]`, `degraded_loss = 100.5`, isp1), []problem{{2, "probe.degraded_loss", "out of range (0 to 100 percent)"}}},
		{"degraded_loss as string", file(`[probe]`, `degraded_loss = "30%"`, isp1), []problem{{2, "probe.degraded_loss", `expected a percentage such as 30 or 2.5, got string "30%"`}}},
		{"recover_loss not below", file(`[probe]`, `degraded_loss = 20`, `recover_loss = 20`, isp1),
			[]problem{{3, "probe.recover_loss", "recover_loss 20% is not below degraded_loss (20%)"}}},
		{"default recover_loss not below", file(`[probe]`, `degraded_loss = 5`, isp1),
			[]problem{{2, "probe.degraded_loss", "recover_loss 10% (the default) is not below degraded_loss (5%)"}}},
		{"degraded_rtt at the timeout", file(`[probe]`, `timeout = "300ms"`, `degraded_rtt = "300ms"`, isp1),
			[]problem{{3, "probe.degraded_rtt", "not shorter than the timeout"}}},
		{"default degraded_rtt over a short timeout", file(`[probe]`, `timeout = "250ms"`, isp1),
			[]problem{{2, "probe.timeout", "degraded_rtt 300ms (the default) is not shorter than the timeout (250ms)"}}},
		{"recover_rtt not below", file(`[probe]`, `recover_rtt = "300ms"`, isp1),
			[]problem{{2, "probe.recover_rtt", "not shorter than degraded_rtt"}}},
		{"degraded_rtt malformed", file(`[probe]`, `degraded_rtt = "slow"`, isp1), []problem{{2, "probe.degraded_rtt", "not a duration"}}},
		{"degraded_policy unknown", file(`[probe]`, `degraded_policy = "drop"`, isp1),
			[]problem{{2, "probe.degraded_policy", `"drop": must be "standby" or "keep"`}}},
		{"flap_hold_max below flap_hold", file(`[probe]`, `flap_hold = "1m"`, `flap_hold_max = "30s"`, isp1),
			[]problem{{3, "probe.flap_hold_max", "shorter than flap_hold"}}},
		{"flap_window zero", file(`[probe]`, `flap_window = "0s"`, isp1), []problem{{2, "probe.flap_window", "must be positive"}}},
		{"gateway as string", file(`[probe]`, `gateway = "yes"`, isp1), []problem{{2, "probe.gateway", `expected true or false, got string "yes"`}}},
		{"probe_gateway as integer", file(isp1, `probe_gateway = 1`), []problem{{6, "uplink[0].probe_gateway", "expected true or false, got integer 1"}}},

		// [routing] scalars.
		{"rule_priority 0", file(`[routing]`, `rule_priority = 0`, isp1), []problem{{2, "routing.rule_priority", "out of range (1..32665)"}}},
		{"rule_priority too high", file(`[routing]`, `rule_priority = 32666`, isp1),
			[]problem{{2, "routing.rule_priority", "32666 is out of range (1..32665)"}}},
		{"route_protocol 4", file(`[routing]`, `route_protocol = 4`, isp1), []problem{{2, "routing.route_protocol", "out of range (5..255)"}}},
		{"route_protocol 256", file(`[routing]`, `route_protocol = 256`, isp1), []problem{{2, "routing.route_protocol", "out of range (5..255)"}}},
		{"hash unknown", file(`[routing]`, `hash = "l5"`, isp1), []problem{{2, "routing.hash", `"l5": must be "l4", "l3" or "source"`}}},
		{"hash upper case", file(`[routing]`, `hash = "L4"`, isp1), []problem{{2, "routing.hash", `must be "l4", "l3" or "source"`}}},
		{"balancer unknown", file(`[routing]`, `balancer = "ecmp"`, isp1),
			[]problem{{2, "routing.balancer", `"ecmp": must be "auto", "hash-threshold", "resilient" or "multipath"`}}},
		{"nexthop_id_base 0", file(`[routing]`, `nexthop_id_base = 0`, isp1),
			[]problem{{2, "routing.nexthop_id_base", "0 is out of range (1..4294965248)"}}},
		{"nexthop_id_base too high", file(`[routing]`, `nexthop_id_base = 4294965249`, isp1),
			[]problem{{2, "routing.nexthop_id_base", "up to nexthop_id_base+2047"}}},
		{"idle_timer zero", file(`[routing]`, `idle_timer = "0s"`, isp1), []problem{{2, "routing.idle_timer", "must be positive"}}},
		{"idle_timer too short", file(`[routing]`, `idle_timer = "999ms"`, isp1),
			[]problem{{2, "routing.idle_timer", `"999ms" is out of range (1s..24h0m0s)`}}},
		{"idle_timer as integer", file(`[routing]`, `idle_timer = 120`, isp1),
			[]problem{{2, "routing.idle_timer", "expected a duration string"}}},
		{"unbalanced_timer negative", file(`[routing]`, `unbalanced_timer = "-1s"`, isp1),
			[]problem{{2, "routing.unbalanced_timer", "must not be negative"}}},
		{"unbalanced_timer too long", file(`[routing]`, `unbalanced_timer = "25h"`, isp1),
			[]problem{{2, "routing.unbalanced_timer", `"0s" for never`}}},
		{"flush_conntrack as string", file(`[routing]`, `flush_conntrack = "yes"`, isp1),
			[]problem{{2, "routing.flush_conntrack", `expected true or false, got string "yes"`}}},

		// lan_interfaces.
		{"lan invalid", file(`[routing]`, `lan_interfaces = ["eth0", "br/lan"]`, isp1),
			[]problem{{2, "routing.lan_interfaces[1]", "invalid interface name"}}},
		{"lan duplicate", file(`[routing]`, `lan_interfaces = [`, `"eth0",`, `"eth0",`, `]`, isp1),
			[]problem{{4, "routing.lan_interfaces[1]", `duplicate interface "eth0"`}}},
		{"lan is uplink", file(`[routing]`, `lan_interfaces = ["eth1"]`, isp1),
			[]problem{{2, "routing.lan_interfaces[0]", "interface of uplink isp1 (uplink[0], line 5)"}}},
		{"lan loopback", file(`[routing]`, `lan_interfaces = ["lo"]`, isp1),
			[]problem{{2, "routing.lan_interfaces[0]", "always balanced"}}},

		// [hooks].
		{"hook relative", file(`[hooks]`, `on_transition = ["alert.sh", "-v"]`, isp1),
			[]problem{{2, "hooks.on_transition[0]", `"alert.sh" is not an absolute path`}}},
		{"hook as string", file(`[hooks]`, `on_down = "/usr/local/bin/alert"`, isp1),
			[]problem{{2, "hooks.on_down", "expected an array of strings"}}},
		{"hook NUL", file(`[hooks]`, `on_active = ["/bin/echo", "a\u0000b"]`, isp1),
			[]problem{{2, "hooks.on_active", "NUL"}}},
		{"hook unknown state", file(`[hooks]`, `on_up = ["/bin/true"]`, isp1),
			[]problem{{2, "hooks.on_up", "[hooks] accepts on_transition, on_down"}}},
		{"hook timeout zero", file(`[hooks]`, `timeout = "0s"`, isp1), []problem{{2, "hooks.timeout", "must be positive"}}},
		{"hook timeout too long", file(`[hooks]`, `timeout = "61m"`, isp1), []problem{{2, "hooks.timeout", "longer than 1h"}}},
		{"max_running 0", file(`[hooks]`, `max_running = 0`, isp1), []problem{{2, "hooks.max_running", "out of range (1..64)"}}},
		{"max_running 65", file(`[hooks]`, `max_running = 65`, isp1), []problem{{2, "hooks.max_running", "out of range (1..64)"}}},

		// [status].
		{"socket relative", file(`[status]`, `socket = "uplinkd.sock"`, isp1), []problem{{2, "status.socket", "not an absolute path"}}},
		{"socket too long", file(`[status]`, `socket = "/`+strings.Repeat("s", 107)+`"`, isp1),
			[]problem{{2, "status.socket", "longer than a unix socket path may be (107 bytes)"}}},
		{"socket directory", file(`[status]`, `socket = "/run/uplinkd/"`, isp1), []problem{{2, "status.socket", "names a directory"}}},
		{"socket integer", file(`[status]`, `socket = 1`, isp1), []problem{{2, "status.socket", "expected a string"}}},

		// [metrics].
		{"listen no port", file(`[metrics]`, `listen = "127.0.0.1"`, isp1), []problem{{2, "metrics.listen", "write an address and port"}}},
		{"listen port 0", file(`[metrics]`, `listen = "127.0.0.1:0"`, isp1), []problem{{2, "metrics.listen", "port must be a number"}}},
		{"listen port name", file(`[metrics]`, `listen = "127.0.0.1:http"`, isp1), []problem{{2, "metrics.listen", "port must be a number"}}},
		{"listen host name", file(`[metrics]`, `listen = "localhost:9273"`, isp1), []problem{{2, "metrics.listen", "must be an IP address"}}},
		{"listen bare IPv6", file(`[metrics]`, `listen = "::1:9273"`, isp1), []problem{{2, "metrics.listen", "write an address and port"}}},

		// [log].
		{"log level unknown", file(`[log]`, `level = "verbose"`, isp1), []problem{{2, "log.level", `"verbose": must be "debug"`}}},
		{"log level upper case", file(`[log]`, `level = "INFO"`, isp1), []problem{{2, "log.level", "must be"}}},
		{"log format unknown", file(`[log]`, `format = "logfmt"`, isp1), []problem{{2, "log.format", `"logfmt": must be "text" or "json"`}}},
		{"log not a table", file(`log = "debug"`, isp1), []problem{{1, "log", "expected a table"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("test.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want problems %v", c, tt.want)
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T (%v) is not config.Errors", err, err)
			}
			if diff := cmp.Diff(tt.want, project(errs, tt.want)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nfull error:\n%v", diff, err)
			}
			for _, e := range errs {
				if e.File != "test.toml" {
					t.Errorf("problem %v: File = %q, want test.toml", e, e.File)
				}
			}
		})
	}
}

// project turns errs into problems, with Msg replaced by the wanted
// substring where it matches, so that cmp.Diff shows real differences only.
func project(errs Errors, want []problem) []problem {
	var got []problem
	for i, e := range errs {
		p := problem{Line: e.Line, Key: e.Key, Msg: e.Msg}
		if i < len(want) && strings.Contains(e.Msg, want[i].Msg) {
			p.Msg = want[i].Msg
		}
		got = append(got, p)
	}
	return got
}

func TestManyProblemsReportedTogether(t *testing.T) {
	doc := file(
		`[routing]`,                          // 1
		`balance_table = 255`,                // 2
		`hash = "l7"`,                        // 3
		`lan_interfaces = ["eth1", "eth1"]`,  // 4
		`[probe]`,                            // 5
		`interval = "1"`,                     // 6
		`timeout = "1m"`,                     // 7
		`targets = ["198.18.0.1", "::1"]`,    // 8
		`colour = "blue"`,                    // 9
		`[[uplink]]`,                         // 10
		`name = "isp1"`,                      // 11
		`interface = "eth1"`,                 // 12
		`gateway = "2001:db8::1"`,            // 13
		`weight = 0`,                         // 14
		`[[uplink]]`,                         // 15 (no table for uplink[0])
		`name = "isp1"`,                      // 16
		`interface = "eth1"`,                 // 17
		`table = 100`,                        // 18
		`gateway = "203.0.113.1"`,            // 19
		`probe_targets = ["198.18.0.1", 12]`, // 20
		`[[uplink]]`,                         // 21
		`name = "isp/3"`,                     // 22
		`interface = "eth3"`,                 // 23
		`gateway = "192.0.2.1"`,              // 24
		`table = 100`,                        // 25
	)
	_, err := Parse("uplinkd.toml", []byte(doc))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error = %v, want config.Errors", err)
	}
	want := []problem{
		{2, "routing.balance_table", "255 is reserved (local)"},
		{3, "routing.hash", `"l7": must be "l4", "l3" or "source"`},
		{4, "routing.lan_interfaces[0]", "eth1 is the interface of uplink isp1 (uplink[0], line 12)"},
		{4, "routing.lan_interfaces[1]", `duplicate interface "eth1"`},
		{6, "probe.interval", `"1" is not a duration`},
		{7, "probe.timeout", `"1m" is longer than 10s`},
		{8, "probe.targets[1]", `"::1" is not an IPv4 address`},
		{9, "probe.colour", "unknown key"},
		{10, "uplink[0].table", "missing"},
		{13, "uplink[0].gateway", `"2001:db8::1" is not an IPv4 address`},
		{14, "uplink[0].weight", "0 is out of range (1..256)"},
		{16, "uplink[1].name", `duplicate name "isp1" (also uplink[0], line 11)`},
		{17, "uplink[1].interface", `duplicate interface "eth1" (also uplink[0], line 12)`},
		{20, "uplink[1].probe_targets", "element 1 is integer 12"},
		{22, "uplink[2].name", `"isp/3" is an invalid name`},
		{25, "uplink[2].table", "duplicate table 100 (also uplink[1], line 18)"},
	}
	if diff := cmp.Diff(want, project(errs, want)); diff != "" {
		t.Errorf("problems (-want +got):\n%s\nfull error:\n%v", diff, err)
	}

	// Error() prints every problem on its own line, in line order.
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("Error() has %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		prefix := fmt.Sprintf("uplinkd.toml:%d: %s: ", w.Line, w.Key)
		if !strings.HasPrefix(lines[i], prefix) || !strings.Contains(lines[i], w.Msg) {
			t.Errorf("Error() line %d = %q, want prefix %q and %q", i, lines[i], prefix, w.Msg)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	errs := Errors{
		{File: "/etc/uplinkd/uplinkd.toml", Line: 7, Key: "uplink[1].weight", Msg: "0 is out of range (1..256)"},
		{File: "/etc/uplinkd/uplinkd.toml", Key: "uplink", Msg: "no uplinks configured"},
		{File: "/etc/uplinkd/uplinkd.toml", Line: 3, Msg: "invalid TOML: bare words"},
	}
	want := strings.Join([]string{
		"/etc/uplinkd/uplinkd.toml:7: uplink[1].weight: 0 is out of range (1..256)",
		"/etc/uplinkd/uplinkd.toml: uplink: no uplinks configured",
		"/etc/uplinkd/uplinkd.toml:3: invalid TOML: bare words",
	}, "\n")
	if got := errs.Error(); got != want {
		t.Errorf("Errors.Error() =\n%s\nwant\n%s", got, want)
	}
	if got, want := errs[0].Error(), "/etc/uplinkd/uplinkd.toml:7: uplink[1].weight: 0 is out of range (1..256)"; got != want {
		t.Errorf("Error.Error() = %q, want %q", got, want)
	}

	// A single problem can be taken out of the list with errors.As.
	var wrapped error = fmt.Errorf("reload: %w", errs)
	var one *Error
	if !errors.As(wrapped, &one) || one.Key != "uplink[1].weight" {
		t.Errorf("errors.As(*Error) = %v, want the first problem", one)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	if err := os.WriteFile(good, []byte(file(isp1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(%s) = %v", good, err)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte(file(isp1, `weight = 0`)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if want := bad + ":6: uplink[0].weight: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(%s) = %v, want prefix %q", bad, err, want)
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.toml")
	tests := []struct {
		path string
		is   error
	}{
		{missing, fs.ErrNotExist},
		{dir, nil}, // a directory
	}
	for _, tt := range tests {
		c, err := Load(tt.path)
		if err == nil {
			t.Errorf("Load(%s) = %+v, want an error", tt.path, c)
			continue
		}
		if !strings.Contains(err.Error(), tt.path) {
			t.Errorf("Load(%s) error %q does not name the path", tt.path, err)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("Load(%s) error %v is not %v", tt.path, err, tt.is)
		}
	}
}

func TestPositions(t *testing.T) {
	doc := file(
		`# comment [not] = "a table"`,     // 1
		`top = """`,                       // 2
		`[fake]`,                          // 3
		`x = 1"""`,                        // 4
		`[routing]`,                       // 5
		`lan_interfaces = [ # "eth9" = 1`, // 6
		`  'eth0',`,                       // 7
		`  "eth\"1",`,                     // 8
		`]`,                               // 9
		`"hash" = 'l4'`,                   // 10
		`[[uplink]]`,                      // 11
		`name = "a" # [[uplink]]`,         // 12
		`[[ uplink ]]`,                    // 13
		`probe_targets = ['''`,            // 14
		`''', "b"]`,                       // 15
		`[uplink.sub]`,                    // 16
		`k = {a = 1, b = [{c = 2}]}`,      // 17
		`probe.interval = "1s"`,           // 18
	)
	got := scanPositions(doc)
	want := map[string]int{
		"top":                          2,
		"routing":                      5,
		"routing.lan_interfaces":       6,
		"routing.lan_interfaces[0]":    7,
		"routing.lan_interfaces[1]":    8,
		"routing.hash":                 10,
		"uplink[0]":                    11,
		"uplink[0].name":               12,
		"uplink[1]":                    13,
		"uplink[1].probe_targets":      14,
		"uplink[1].probe_targets[0]":   14,
		"uplink[1].probe_targets[1]":   15,
		"uplink[1].sub":                16,
		"uplink[1].sub.k":              17,
		"uplink[1].sub.k.a":            17,
		"uplink[1].sub.k.b":            17,
		"uplink[1].sub.k.b[0]":         17,
		"uplink[1].sub.k.b[0].c":       17,
		"uplink[1].sub.probe.interval": 18,
	}
	if diff := cmp.Diff(want, got.lines); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	for path, line := range map[string]int{
		"uplink[1].weight":          13,
		"uplink[7].weight":          0,
		"routing.lan_interfaces[5]": 6,
		"probe.interval":            0,
	} {
		if got := got.line(path); got != line {
			t.Errorf("line(%q) = %d, want %d", path, got, line)
		}
	}
}

// FuzzParse checks that no input makes Parse or the position scanner panic
// or hang. `go test` runs the seeds; `go test -fuzz FuzzParse` explores.
func FuzzParse(f *testing.F) {
	if ref, err := os.ReadFile(referencePath); err == nil {
		f.Add(ref)
	}
	for _, s := range []string{
		file(isp1, isp2),
		`a = [1, {b = "c"}, '''x''']`,
		`a = {`,
		`[[a]] [b] = "`,
		"a = \"\"\"\\\n\"\"\"\"\"",
		`x = [ ] ] } , = # `,
		"\x00[",
		`"a\q" = 1`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.toml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of config and error", c, err)
		}
		scanPositions(string(data))
		if err != nil {
			// Refusals are located: every problem names the file.
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %v is not a non-empty Errors", err)
			}
			for _, e := range errs {
				if e.File != "fuzz.toml" || e.Msg == "" {
					t.Fatalf("problem without file or message: %#v", e)
				}
			}
			return
		}
		// What loads holds what validation promises.
		if len(c.Uplinks) == 0 {
			t.Fatal("a configuration without uplinks loaded")
		}
		for _, u := range c.Uplinks {
			if ifnameProblem(u.Interface) != "" || u.Weight < 1 || u.Gateway.Is4() != (u.GatewayMode == GatewayStatic) {
				t.Fatalf("invalid uplink loaded: %+v", u)
			}
		}
	})
}

func TestTargetMethods(t *testing.T) {
	c := mustParse(t, file(`[probe]`, `targets = ["198.18.0.1", "icmp://198.18.0.2", "tcp://198.18.0.1:443", "tcp://198.18.0.1:80"]`, isp1))
	want := []Target{icmp("198.18.0.1"), icmp("198.18.0.2"),
		{Method: MethodTCP, Addr: addr("198.18.0.1"), Port: 443}, {Method: MethodTCP, Addr: addr("198.18.0.1"), Port: 80}}
	if diff := cmp.Diff(want, c.Probe.Targets, addrComparer); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	c = mustParse(t, file(`[probe]`, `targets = ["198.18.0.1", "tcp://198.18.0.1:443", "https://example.net/generate_204"]`, `reliability = 2`, isp1))
	if rounds, checks := Probed(c.Probe.Targets); len(rounds) != 2 || len(checks) != 1 || checks[0].URL != "https://example.net/generate_204" || c.ReliabilityFor(c.Uplinks[0]) != 2 {
		t.Errorf("targets %v: want 2 probed in rounds, 1 check, reliability 2", c.Probe.Targets)
	}
	want = append(want, Target{Method: MethodHTTP, URL: "http://198.18.0.3/generate_204"},
		Target{Method: MethodDNS, Addr: addr("198.18.0.1"), Port: 53, URL: "dns://198.18.0.1"},
		Target{Method: MethodDNS, Addr: addr("198.18.0.2"), Port: 5353, URL: "dns://198.18.0.2:5353/example.net", Name: "example.net"})
	c = mustParse(t, file(`[probe]`, `targets = ["198.18.0.1", "icmp://198.18.0.2", "tcp://198.18.0.1:443", "tcp://198.18.0.1:80", "http://198.18.0.3/generate_204", "dns://198.18.0.1", "dns://198.18.0.2:5353/example.net"]`, isp1))
	if diff := cmp.Diff(want, c.Probe.Targets, addrComparer); diff != "" {
		t.Errorf("targets with a check (-want +got):\n%s", diff)
	}
	var strs []string
	for _, tg := range c.Probe.Targets {
		strs = append(strs, tg.String())
	}
	if got := strings.Join(strs, " "); got != "198.18.0.1 198.18.0.2 tcp://198.18.0.1:443 tcp://198.18.0.1:80 http://198.18.0.3/generate_204 dns://198.18.0.1 dns://198.18.0.2:5353/example.net" {
		t.Errorf("targets written back: %s", got)
	}
}

// A configuration file any user may write is refused with its name and
// mode; group-writable is the administrator's choice.
func TestLoadWorldWritable(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o664, true}, {0o666, false}, {0o602, false},
	} {
		p := filepath.Join(dir, fmt.Sprintf("uplinkd-%o.toml", tt.mode))
		if err := os.WriteFile(p, []byte(file(isp1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p)
		if tt.ok {
			if err != nil {
				t.Errorf("mode %o: %v", tt.mode, err)
			}
			continue
		}
		want := fmt.Sprintf("%s: refused: mode %#o lets any user rewrite", p, tt.mode)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("mode %o: Load = %v, want prefix %q", tt.mode, err, want)
		}
	}
}

func TestMarkMask(t *testing.T) {
	isp3 := []string{`[[uplink]]`, `name = "isp3"`, `interface = "eth3"`, `gateway = "192.0.2.1"`, `table = 300`}
	// One bit holds one uplink; two bits hold three.
	if _, err := Parse("t.toml", []byte(file(`[routing]`, `mark_mask = 0x100`, isp1, isp2))); err == nil ||
		!strings.Contains(err.Error(), "routing.mark_mask: 0x100 has room for 1 uplinks, the file has 2") {
		t.Fatalf("one bit for two uplinks: %v", err)
	}
	if _, err := Parse("t.toml", []byte(file(`[routing]`, `mark_mask = 0x300`, isp1, isp2, isp3))); err != nil {
		t.Fatalf("two bits for three uplinks: %v", err)
	}
	// 0 turns pinning off.
	cfg := mustParse(t, file(`[routing]`, `mark_mask = 0`, isp1))
	if cfg.Routing.MarkMask != 0 || len(cfg.Warnings()) != 0 {
		t.Fatalf("mask 0: %#x, warnings %v", cfg.Routing.MarkMask, cfg.Warnings())
	}
	if _, err := Parse("t.toml", []byte(file(`[routing]`, `mark_mask = 0x100000000`, isp1))); err == nil {
		t.Fatal("a mask of 33 bits was accepted")
	}
	// Well-known marks are warned about.
	cfg = mustParse(t, file(`[routing]`, `mark_mask = 0xffff00`, isp1))
	w := strings.Join(cfg.Warnings(), "\n")
	for _, who := range []string{"tailscale", "wg-quick", "kube-proxy (masquerade mark)", "docker"} {
		if !strings.Contains(w, who) {
			t.Errorf("no warning about %s in %q", who, w)
		}
	}
	if w := mustParse(t, file(isp1)).Warnings(); len(w) != 0 {
		t.Errorf("default mask: %v", w)
	}
}

func TestOverlapWarnings(t *testing.T) {
	two := []string{`[[uplink]]`, `name = "isp2"`, `interface = "eth2"`, `gateway = "198.51.100.1"`, `table = 200`}
	cfg := mustParse(t, file(isp1, two))
	if w := cfg.Warnings(); len(w) != 1 || !strings.Contains(w[0], "same gateway 198.51.100.1") {
		t.Fatalf("same gateway: %v", w)
	}
	got := cfg.OverlapWarnings(map[string]netip.Prefix{
		"eth1": netip.MustParsePrefix("198.51.100.2/24"), "eth2": netip.MustParsePrefix("198.51.100.3/24"),
	})
	if len(got) != 1 || !strings.Contains(got[0], "overlapping prefixes") {
		t.Fatalf("overlap: %v", got)
	}
	if got := cfg.OverlapWarnings(map[string]netip.Prefix{
		"eth1": netip.MustParsePrefix("198.51.100.2/25"), "eth2": netip.MustParsePrefix("198.51.100.130/25"),
	}); len(got) != 0 {
		t.Fatalf("disjoint: %v", got)
	}
}
