package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/test/lab"
)

func TestParseLogLine(t *testing.T) {
	ts := time.Date(2026, 11, 25, 9, 20, 1, 123_000_000, time.UTC)
	tests := []struct {
		name string
		in   string
		want logLine
	}{
		{
			name: "transition",
			in:   `time=2026-11-25T09:20:01.123Z level=INFO msg=transition uplink=isp2 from=active to=down reason="no carrier on eth2"`,
			want: logLine{parsed: true, time: ts, level: "INFO", msg: "transition", attrs: []attr{
				{"time", "2026-11-25T09:20:01.123Z"}, {"level", "INFO"}, {"msg", "transition"},
				{"uplink", "isp2"}, {"from", "active"}, {"to", "down"}, {"reason", "no carrier on eth2"},
			}},
		},
		{
			name: "routing updated",
			in:   `time=2026-11-25T09:20:01.123Z level=INFO msg="routing updated" changes=1 reconcile=312µs since_event=401µs added="[default via x, y]" removed=[]`,
			want: logLine{parsed: true, time: ts, level: "INFO", msg: "routing updated", attrs: []attr{
				{"time", "2026-11-25T09:20:01.123Z"}, {"level", "INFO"}, {"msg", "routing updated"},
				{"changes", "1"}, {"reconcile", "312µs"}, {"since_event", "401µs"},
				{"added", "[default via x, y]"}, {"removed", "[]"},
			}},
		},
		{
			name: "escaped quote, offset time",
			in:   `time=2026-11-25T10:20:01.123+01:00 level=WARN msg="reconcile incomplete, will retry" err="replace \"route\": file exists"`,
			want: logLine{parsed: true, time: ts, level: "WARN", msg: "reconcile incomplete, will retry", attrs: []attr{
				{"time", "2026-11-25T10:20:01.123+01:00"}, {"level", "WARN"}, {"msg", "reconcile incomplete, will retry"},
				{"err", `replace "route": file exists`},
			}},
		},
		{
			name: "no time",
			in:   `level=INFO msg=ready`,
			want: logLine{parsed: true, level: "INFO", msg: "ready", attrs: []attr{{"level", "INFO"}, {"msg", "ready"}}},
		},
		{name: "panic", in: "panic: runtime error: index out of range [3] with length 2"},
		{name: "config error", in: "/tmp/x.toml:3: probe.targets: not an IPv4 address"},
		{name: "no msg", in: "level=INFO uplink=isp1"},
		{name: "unterminated quote", in: `level=INFO msg="ready`},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseLogLine(tt.in)
			tt.want.raw = tt.in
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(logLine{}, attr{}), cmp.Comparer(time.Time.Equal)); diff != "" {
				t.Errorf("parseLogLine(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	d := &demo{}
	tests := []struct{ in, want string }{
		{`level=INFO msg=transition uplink=isp2 from=active to=down reason="no carrier on eth2"`,
			"isp2  active → down       no carrier on eth2"},
		{`level=INFO msg=transition uplink=isp1 from=degraded to=probing reason=x`,
			"isp1  degraded → probing  x"},
		{`level=INFO msg="routing updated" changes=1 reconcile=312µs since_event=401µs added=[] removed=[]`,
			"routing updated           1 change, 401µs after the event"},
		{`level=INFO msg="routing updated" changes=10 since_event=1.2ms`,
			"routing updated           10 changes, 1.2ms after the event"},
		{`level=INFO msg=ready`, "ready (first reconcile done)"},
		{`level=WARN msg="netlink events lost, resyncing" reason="no buffer space"`,
			`WARN  netlink events lost, resyncing reason="no buffer space"`},
		{`level=ERROR msg="uplinkd failed" err=boom`, "ERROR uplinkd failed err=boom"},
		{`level=INFO msg=other a=1 b=""`, `other a=1 b=""`},
		{"goroutine 1 [running]:", "uplinkd: goroutine 1 [running]:"},
	}
	for _, tt := range tests {
		if got := d.describe(parseLogLine(tt.in)); got != tt.want {
			t.Errorf("describe(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatSplit(t *testing.T) {
	tests := []struct {
		split map[string]int
		n     int
		want  string
	}{
		{map[string]int{"eth1": 244, "eth2": 756}, 1000, "eth1 24% / eth2 76%"},
		// 24.5 and 75.5 would round to 101 on their own; a tie goes to the first.
		{map[string]int{"eth1": 245, "eth2": 755}, 1000, "eth1 25% / eth2 75%"},
		{map[string]int{"eth1": 1000}, 1000, "eth1 100% / eth2 0%"},
		{map[string]int{"eth2": 1, "eth1": 1, "eth0": 1}, 3, "eth1 34% / eth2 33% / eth0 33%"},
		{map[string]int{}, 10, "eth1 0% / eth2 0%"},
	}
	for _, tt := range tests {
		if got := formatSplit(tt.split, tt.n, "eth1", "eth2"); got != tt.want {
			t.Errorf("formatSplit(%v, %d) = %q, want %q", tt.split, tt.n, got, tt.want)
		}
	}
}

func TestNamespacesWithPrefix(t *testing.T) {
	list := "demo3fa-inet (id: 4)\ndemo3fa-r (id: 0)\ndemo3fab-r\nxdemo3fa-r\nother\n\n"
	got := namespacesWithPrefix(list, "demo3fa")
	if diff := cmp.Diff([]string{"demo3fa-inet", "demo3fa-r"}, got); diff != "" {
		t.Errorf("namespacesWithPrefix mismatch (-want +got):\n%s", diff)
	}
}

// The demo's configuration must describe the lab it runs in.
func TestDemoConfigMatchesLab(t *testing.T) {
	cfg, err := config.Parse("demo", []byte(demoConfig))
	if err != nil {
		t.Fatal(err)
	}
	var targets []netip.Addr
	for _, t := range cfg.Probe.Targets {
		if t.Method == config.MethodICMP {
			targets = append(targets, t.Addr)
		}
	}
	if diff := cmp.Diff([]netip.Addr{lab.Target1, lab.Target2}, targets, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("probe targets (-lab +config):\n%s", diff)
	}
	if diff := cmp.Diff([]string{lab.RouterLANLink}, cfg.Routing.LANInterfaces); diff != "" {
		t.Errorf("LAN interfaces (-lab +config):\n%s", diff)
	}
	if cfg.Routing.BalanceTable != 250 || cfg.Routing.RouteProtocol != 201 || ownProto != "201" {
		t.Errorf("balance table %d, route protocol %d (ownProto %s): the demo shows table 250 and proto 201",
			cfg.Routing.BalanceTable, cfg.Routing.RouteProtocol, ownProto)
	}
	want := map[string]netip.Addr{lab.ISP1: lab.ISP1Gateway, lab.ISP2: lab.ISP2Gateway}
	if len(cfg.Uplinks) != len(want) {
		t.Fatalf("%d uplinks, want %d", len(cfg.Uplinks), len(want))
	}
	for _, u := range cfg.Uplinks {
		if gw, ok := want[u.Name]; !ok || u.Gateway != gw {
			t.Errorf("uplink %s gateway %s, want the lab's %s", u.Name, u.Gateway, gw)
		}
	}
}

func TestCheckDemoEnv(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ bin, want string }{
		{"", "--uplinkd is required"},
		{filepath.Join(dir, "missing"), "no such file"},
		{plain, "not an executable file"},
		{dir, "not an executable file"},
	} {
		_, err := checkDemoEnv(tt.bin)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkDemoEnv(%q) = %v, want an error containing %q", tt.bin, err, tt.want)
		}
	}
}

func TestLogFollower(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	w, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f := followLog(path)
	defer f.Stop()

	next := func() logLine {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			if l, ok := f.Next(); ok {
				return l
			}
			select {
			case <-f.Notify():
			case <-deadline:
				t.Fatal("no line within 5s")
			}
		}
	}
	// A line written in two pieces comes out whole.
	w.WriteString("level=INFO msg=trans")
	time.Sleep(3 * followPoll)
	if l, ok := f.Next(); ok {
		t.Fatalf("partial line delivered: %q", l.raw)
	}
	w.WriteString("ition uplink=isp1 to=down\nlevel=INFO msg=ready\n")
	if l := next(); l.msg != "transition" || l.get("to") != "down" {
		t.Errorf("first line = %+v", l)
	}
	if l := next(); l.msg != "ready" {
		t.Errorf("second line = %+v", l)
	}
	// Stop delivers an unterminated last line: its writer is gone.
	w.WriteString("level=INFO msg=stopped")
	f.Stop()
	if l, ok := f.Next(); !ok || l.msg != "stopped" {
		t.Errorf("after Stop: %+v, %v", l, ok)
	}
	if err := f.Err(); err != nil {
		t.Error(err)
	}
}
