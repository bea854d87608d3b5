package status

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func sample() *Snapshot {
	return &Snapshot{
		Version:  9,
		Time:     now,
		Daemon:   Daemon{Version: "v1.0", PID: 4242, Started: now.Add(-2*time.Hour - 3*time.Minute)},
		Balancer: "multipath",
		Active:   1,
		Uplinks: []Uplink{
			{
				Name: "isp1", State: "active", Reason: "4 consecutive probe rounds passed", Since: now.Add(-2 * time.Hour),
				Interface: "eth1", Ifindex: 3, AdminUp: true, Carrier: true, Address: "198.51.100.2/24", Gateway: "198.51.100.1",
				Table: 100, Weight: 1, InBalance: true, Share: 1,
				Probe: Probe{Enabled: true, Running: true, Targets: []Target{{Address: "198.18.0.1"}}, Rounds: 28800, Failed: 3, LastRTT: 0.215, PerSecond: 4.2,
					Stats: Stats{Probes: 50, Lost: 1, Loss: 2, RTT: 0.22, Jitter: 0.02, Full: true}},
				Transitions: []Transition{
					{From: "down", To: "probing", Reason: "eth1 up", At: now.Add(-2*time.Hour - time.Second)},
					{From: "probing", To: "active", Reason: "4 consecutive probe rounds passed", At: now.Add(-2 * time.Hour)},
				},
			},
			{
				Name: "isp2", State: "down", Reason: "no carrier on eth2", Since: now.Add(-12 * time.Second),
				Interface: "eth2", Ifindex: 4, AdminUp: true, Address: "203.0.113.2/24", Gateway: "203.0.113.1",
				Table: 200, Weight: 3, Probe: Probe{Enabled: true},
				Transitions: []Transition{{From: "active", To: "down", Reason: "no carrier on eth2", At: now.Add(-12 * time.Second)}},
			},
			{
				Name: "lte", State: "down", Reason: "interface wwan0 does not exist", Since: now.Add(-50 * time.Hour),
				Interface: "wwan0", Gateway: "192.0.2.1", Table: 300, Weight: 1,
			},
		},
		Reconcile: Reconcile{Runs: 14, Changes: 36, Last: now.Add(-12 * time.Second), LastTook: 0.412},
		Netlink:   Netlink{Dumps: 9, Resyncs: 1, Overruns: 1},
		Hooks:     Hooks{Started: 4, Failed: 1},
		Pinning:   Pinning{On: true, Mask: "0xff000000", Restores: 1, Flushes: 2, Flushed: 196},
	}
}

func TestRender(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, sample(), false, now); err != nil {
		t.Fatal(err)
	}
	want := `uplinkd v1.0 (pid 4242), up 2h3m, multipath balancer, 1 of 3 uplinks active

UPLINK  STATE   FOR   INTERFACE  LINK        ADDRESS          GATEWAY       WEIGHT  SHARE  PROBES                                   REASON
isp1    active  2h0m  eth1 #3    up          198.51.100.2/24  198.51.100.1  1       100%   0.215ms, loss 2%, 4.2/s, 3/28800 failed  4 consecutive probe rounds passed
isp2    down    12s   eth2 #4    no carrier  203.0.113.2/24   203.0.113.1   3       -      stopped                                  no carrier on eth2
lte     down    2d2h  wwan0      missing     -                192.0.2.1     1       -      off                                      interface wwan0 does not exist

recent transitions
  2h0m ago  isp1  down -> probing    eth1 up
  2h0m ago  isp1  probing -> active  4 consecutive probe rounds passed
  12s ago   isp2  active -> down     no carrier on eth2

routing  14 reconciles (last took 0.412ms, 12s ago), 36 routes and rules written or removed, 0 failed
pinning  on (mask 0xff000000), 1 table restores, 2 conntrack flushes (196 entries, 0 failed)
netlink  9 dumps, 1 resyncs (1 ENOBUFS), 0 resubscribes, 0 errors retried (0 transient)
hooks    4 started, 1 failed (0 timed out), 0 dropped, 0 running
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// Colours wrap padded cells, so columns stay aligned on a terminal.
func TestRenderColour(t *testing.T) {
	var plain, coloured bytes.Buffer
	s := sample()
	_ = Render(&plain, s, false, now)
	_ = Render(&coloured, s, true, now)
	if !strings.Contains(coloured.String(), "\x1b[32mactive\x1b[0m") || !strings.Contains(coloured.String(), "\x1b[31mdown  \x1b[0m") {
		t.Errorf("no state colours:\n%q", coloured.String())
	}
	stripped := regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(coloured.String(), "")
	if diff := cmp.Diff(plain.String(), stripped); diff != "" {
		t.Errorf("coloured table differs from the plain one beyond colours (-plain +stripped):\n%s", diff)
	}
	if strings.Contains(plain.String(), "\x1b") {
		t.Error("escape sequences without colour")
	}
}

func TestRenderRefusedReload(t *testing.T) {
	s := sample()
	s.Daemon.LastFail = "uplinkd.toml:3: probe.interval: \"soon\" is not a duration\nuplinkd.toml:9: uplink[0].weight: 0 is out of range"
	s.Daemon.Loaded = time.Date(2024, 5, 1, 11, 0, 0, 0, time.Local)
	s.Reconcile.Errors, s.Reconcile.LastErr = 2, "replace route default table 250: network is unreachable"
	var b bytes.Buffer
	_ = Render(&b, s, false, now)
	for _, want := range []string{
		"last reload refused, the configuration of 2024-05-01 11:00:00 is in force: uplinkd.toml:3: probe.interval: \"soon\" is not a duration ...\n",
		"written or removed, 2 failed\n",
		"         last failure: replace route default table 250: network is unreachable\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                            "0s",
		1400 * time.Millisecond:      "1s",
		59 * time.Second:             "59s",
		61 * time.Second:             "1m1s",
		time.Hour + 59*time.Minute:   "1h59m",
		47*time.Hour + 5*time.Minute: "47h5m",
		50 * time.Hour:               "2d2h",
		-time.Second:                 "0s", // clock skew between client and daemon
	} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	if got := ago(now, time.Time{}); got != "-" {
		t.Errorf("ago(zero) = %q", got)
	}
}

// Text from the daemon's state (reasons, errors, names) cannot write
// terminal escape sequences or extra lines: control characters are shown
// escaped, the table keeps its lines and its alignment.
func TestRenderEscapesControlCharacters(t *testing.T) {
	s := sample()
	evil := "x\x1b]0;owned\x07\x1b[2J\nuplinkd: all good\r\x00\u0085"
	s.Uplinks[0].Reason = evil
	s.Uplinks[1].Interface = "eth\x1b[31m2"
	s.Uplinks[1].Transitions[0].Reason = evil
	s.Reconcile.Errors, s.Reconcile.LastErr = 1, evil
	s.Netlink.LastError = evil
	s.Daemon.LastFail = evil
	var b, clean bytes.Buffer
	if err := Render(&b, s, false, now); err != nil {
		t.Fatal(err)
	}
	if err := Render(&clean, sample(), false, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsFunc(out, func(r rune) bool { return r != '\n' && (r < 0x20 || r == 0x7f || r == 0x85) }) {
		t.Fatalf("control characters in the output:\n%q", out)
	}
	for _, want := range []string{`x\x1b]0;owned\x07\x1b[2J\nuplinkd: all good\x0d\x00\x85`, `eth\x1b[31m2 #4`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	// Three lines more than the clean table: the refused reload, the
	// reconcile and the netlink failures.
	if got, want := strings.Count(out, "\n"), strings.Count(clean.String(), "\n")+3; got != want {
		t.Errorf("%d lines, want %d:\n%s", got, want, out)
	}
}

func TestRenderPinningOff(t *testing.T) {
	var b strings.Builder
	s := &Snapshot{Balancer: "resilient", Pinning: Pinning{Reason: "nf_tables is not available"}}
	if err := Render(&b, s, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\npinning  off (nf_tables is not available)\n") {
		t.Fatalf("no pinning line in:\n%s", b.String())
	}
}

// An uplink with IPv6 has a row per family, with the FAMILY column.
func TestRenderFamilies(t *testing.T) {
	s := sample()
	s.Uplinks = s.Uplinks[:1]
	s.Uplinks[0].Family = FamilyIPv4
	s.Uplinks = append(s.Uplinks, Uplink{
		Name: "isp1", Family: FamilyIPv6, State: "down", Reason: "probes failed", Since: now.Add(-5 * time.Second),
		Interface: "eth1", Ifindex: 3, AdminUp: true, Carrier: true, Address: "2001:db8:1::2/64", Gateway: "fe80::1 (auto)",
		Table: 100, Weight: 1, Probe: Probe{Enabled: true},
		Transitions: []Transition{{From: "active", To: "down", Reason: "probes failed", At: now.Add(-5 * time.Second)}},
	})
	var b bytes.Buffer
	if err := Render(&b, s, false, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"1 of 2 uplink families active",
		"UPLINK  FAMILY  STATE ",
		"isp1    IPv4    active",
		"isp1    IPv6    down    5s    eth1 #3    up    2001:db8:1::2/64  fe80::1 (auto)",
		"5s ago    isp1 (IPv6)  active -> down",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in\n%s", want, b.String())
		}
	}
}
