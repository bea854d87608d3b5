package lab_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

var toolDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "labtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	toolDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// labtool builds the labtool binary once per test run.
func labtool(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(toolDir, "labtool")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "github.com/uplinkd/uplinkd/test/labtool").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build labtool: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bin
}

func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "lt" + hex.EncodeToString(b)
}

// newLab builds a lab that is closed when the test ends.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	testutil.RequirePriv(t)
	start := time.Now()
	l, err := lab.New(t.Context(), randomPrefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("New took %v", time.Since(start))
	t.Cleanup(func() {
		start := time.Now()
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		t.Logf("Close took %v", time.Since(start))
	})
	return l
}

func mustIP(t *testing.T, l *lab.Lab, ns string, args ...string) string {
	t.Helper()
	out, err := l.IP(t.Context(), ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustExec(t *testing.T, l *lab.Lab, ns string, args ...string) string {
	t.Helper()
	out, err := l.Exec(t.Context(), ns, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

// hasNetns reports whether `ip netns list` output names ns.
func hasNetns(list, ns string) bool {
	for line := range strings.Lines(list) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ns {
			return true
		}
	}
	return false
}

type jsonLink struct {
	Index    int      `json:"ifindex"`
	Name     string   `json:"ifname"`
	Flags    []string `json:"flags"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

func routerLink(t *testing.T, l *lab.Lab, name string) jsonLink {
	t.Helper()
	var links []jsonLink
	if err := json.Unmarshal([]byte(mustIP(t, l, lab.Router, "-j", "addr", "show", "dev", name)), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip addr show dev %s: %v (%d links)", name, err, len(links))
	}
	return links[0]
}

func (j jsonLink) v4() []string {
	var a []string
	for _, ai := range j.AddrInfo {
		if ai.Family == "inet" {
			a = append(a, fmt.Sprintf("%s/%d", ai.Local, ai.PrefixLen))
		}
	}
	return a
}

type jsonRoute struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
	Proto   string `json:"protocol"`
}

func mainRoutes(t *testing.T, l *lab.Lab) []jsonRoute {
	t.Helper()
	var routes []jsonRoute
	if err := json.Unmarshal([]byte(mustIP(t, l, lab.Router, "-j", "-4", "route", "show", "table", "main")), &routes); err != nil {
		t.Fatal(err)
	}
	return routes
}

func hasAdminDefault(routes []jsonRoute, dev string) bool {
	return slices.Contains(routes, jsonRoute{Dst: "default", Gateway: lab.ISP1Gateway.String(), Dev: dev})
}

func TestTopology(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()

	list := netnsList(t)
	for _, ns := range []string{lab.Router, lab.Host, lab.ISP1, lab.ISP2, lab.Inet} {
		if !hasNetns(list, l.NS(ns)) {
			t.Errorf("namespace %s missing from ip netns list:\n%s", l.NS(ns), list)
		}
	}

	// Main table: connected routes and the admin's default, nothing else.
	var others []jsonRoute
	routes := mainRoutes(t, l)
	for _, r := range routes {
		if r.Proto != "kernel" && !hasAdminDefault([]jsonRoute{r}, "eth1") {
			others = append(others, r)
		}
	}
	if !hasAdminDefault(routes, "eth1") || len(others) > 0 {
		t.Errorf("router main table = %+v, want connected routes plus default via %s dev eth1", routes, lab.ISP1Gateway)
	}

	for _, sport := range []int{1024, 20000, 40000, 65535} {
		for _, dst := range []netip.Addr{lab.Target1, lab.Target2} {
			dev, err := l.RouteGet(ctx, dst, lab.HostAddr, lab.RouterLANLink, sport, 9)
			if err != nil {
				t.Fatal(err)
			}
			if dev != "eth1" {
				t.Errorf("RouteGet(%s sport %d) = %s, want eth1", dst, sport, dev)
			}
		}
	}
	split, err := l.Split(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if split["eth1"] != 100 {
		t.Errorf("Split(100) = %v, want all on eth1", split)
	}

	for _, ns := range []string{lab.Router, lab.ISP1, lab.ISP2, lab.Inet} {
		out := mustExec(t, l, ns, "sysctl", "-n", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter")
		if strings.Fields(out)[0] != "0" || strings.Fields(out)[1] != "0" {
			t.Errorf("%s: rp_filter all/default = %q, want 0 0", ns, out)
		}
	}
	for _, link := range []string{"eth0", "eth1", "eth2"} {
		if out := mustExec(t, l, lab.Router, "sysctl", "-n", "net.ipv4.conf."+link+".rp_filter"); strings.TrimSpace(out) != "0" {
			t.Errorf("router %s rp_filter = %q, want 0", link, out)
		}
	}
	if out := mustExec(t, l, lab.Router, "sysctl", "-n", "net.ipv4.ip_forward"); strings.TrimSpace(out) != "1" {
		t.Errorf("router ip_forward = %q, want 1", out)
	}
	if got := routerLink(t, l, "eth2").v4(); !slices.Equal(got, []string{"203.0.113.2/24"}) {
		t.Errorf("router eth2 addresses = %v", got)
	}
}

func TestNamespaceGuard(t *testing.T) {
	l := newLab(t)
	for _, ns := range []string{"", "x", "isp3", l.NS(lab.Router) + "x"} {
		if out, err := l.Exec(t.Context(), ns, "true"); err == nil {
			t.Errorf("Exec in %q succeeded (%q), want an error", ns, out)
		}
		if _, err := l.IP(t.Context(), ns, "link"); err == nil {
			t.Errorf("IP in %q succeeded, want an error", ns)
		}
	}
	// Both the short and the full name work.
	mustIP(t, l, l.NS(lab.Inet), "addr", "show", "dev", "lo")
}

func TestNewRefusesExistingNamespace(t *testing.T) {
	l := newLab(t)
	prefix := strings.TrimSuffix(l.NS(lab.Router), "-r")
	if _, err := lab.New(t.Context(), prefix); err == nil {
		t.Fatal("second New with the same prefix succeeded")
	}
	// The failed New must not have removed the first lab's namespaces.
	list := netnsList(t)
	for _, ns := range []string{lab.Router, lab.Inet} {
		if !hasNetns(list, l.NS(ns)) {
			t.Errorf("failed New deleted %s", l.NS(ns))
		}
	}
	for _, bad := range []string{"", "1ab", "Lab", "a-b", "abcdefghijk"} {
		if _, err := lab.New(t.Context(), bad); err == nil {
			t.Errorf("New(%q) succeeded, want an error", bad)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	mustIP(t, l, lab.Router, "route", "add", "default", "table", "250",
		"nexthop", "via", "198.51.100.1", "dev", "eth1", "weight", "1",
		"nexthop", "via", "203.0.113.1", "dev", "eth2", "weight", "3")
	mustIP(t, l, lab.Router, "rule", "add", "iif", "eth0", "lookup", "250", "pref", "10002")
	mustExec(t, l, lab.Router, "sysctl", "-w", "net.ipv4.fib_multipath_hash_policy=1")

	start := time.Now()
	split, err := l.Split(ctx, 2000)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Split(2000) = %v in %v", split, time.Since(start))
	if split["eth1"]+split["eth2"] != 2000 {
		t.Fatalf("Split(2000) = %v, want only eth1 and eth2", split)
	}
	if frac := float64(split["eth2"]) / 2000; frac < 0.70 || frac > 0.80 {
		t.Errorf("eth2 carries %.1f%% of the flows, want 75%% ± 5%%", 100*frac)
	}

	// RouteGet agrees with Split flow by flow.
	for sport := lab.SplitFirstPort; sport < lab.SplitFirstPort+20; sport++ {
		if _, err := l.RouteGet(ctx, lab.Target1, lab.HostAddr, lab.RouterLANLink, sport, 9); err != nil {
			t.Fatal(err)
		}
	}
	// Flows that are not from the LAN still use the main table.
	if dev, err := l.RouteGet(ctx, lab.Target1, netip.Addr{}, "", 5000, 9); err != nil || dev != "eth1" {
		t.Errorf("locally generated RouteGet = %q, %v; want eth1", dev, err)
	}
}

func linkFlags(t *testing.T, l *lab.Lab, name string) []string {
	t.Helper()
	return routerLink(t, l, name).Flags
}

// eventually retries check until it returns true or a few seconds pass.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCarrier(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	if f := linkFlags(t, l, "eth2"); !slices.Contains(f, "LOWER_UP") {
		t.Fatalf("eth2 flags before CarrierDown = %v, want LOWER_UP", f)
	}
	if err := l.CarrierDown(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "eth2 to lose LOWER_UP", func() bool {
		f := linkFlags(t, l, "eth2")
		return !slices.Contains(f, "LOWER_UP") && slices.Contains(f, "UP") && slices.Contains(f, "NO-CARRIER")
	})
	if f := linkFlags(t, l, "eth1"); !slices.Contains(f, "LOWER_UP") {
		t.Errorf("eth1 flags = %v: CarrierDown(isp2) touched eth1", f)
	}
	if err := l.CarrierUp(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "eth2 to regain LOWER_UP", func() bool {
		return slices.Contains(linkFlags(t, l, "eth2"), "LOWER_UP")
	})
	if err := l.CarrierDown(ctx, "isp3"); err == nil {
		t.Error("CarrierDown(isp3) succeeded")
	}
}

// sink is a running labtool udpsink.
type sink struct {
	cmd    *exec.Cmd
	report string
}

func startSink(t *testing.T, l *lab.Lab, ns string, addr netip.AddrPort) *sink {
	t.Helper()
	dir := t.TempDir()
	logfile := filepath.Join(dir, "sink.log")
	s := &sink{report: filepath.Join(dir, "report.json")}
	var err error
	s.cmd, err = l.Start(t.Context(), ns, logfile, labtool(t), "udpsink", "--listen", addr.String(), "--report", s.report)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := lab.WaitLog(ctx, logfile, "listening"); err != nil {
		t.Fatal(err)
	}
	return s
}

// stop ends the sink with SIGTERM and returns its report.
func (s *sink) stop(t *testing.T) lab.SinkReport {
	t.Helper()
	// Datagrams already sent may still be in a softirq backlog.
	time.Sleep(50 * time.Millisecond)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("udpsink: %v", err)
	}
	r, err := lab.ReadSinkReport(s.report)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send runs labtool udpsend in ns to completion and returns its report.
func send(t *testing.T, l *lab.Lab, ns string, args ...string) lab.SendReport {
	t.Helper()
	out := mustExec(t, l, ns, append([]string{labtool(t), "udpsend"}, args...)...)
	var r lab.SendReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("udpsend output %q: %v", out, err)
	}
	return r
}

func TestBlackhole(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()
	target := netip.AddrPortFrom(lab.Target1, 9000)
	gateway := netip.AddrPortFrom(lab.ISP2Gateway, 9000)
	inet := startSink(t, l, lab.Inet, target)
	isp2 := startSink(t, l, lab.ISP2, gateway)
	// The router's own traffic to Target1 through isp2.
	mustIP(t, l, lab.Router, "route", "add", lab.Target1.String()+"/32", "via", lab.ISP2Gateway.String(), "dev", "eth2")

	flow := func(dst netip.AddrPort, sport int) string {
		r := send(t, l, lab.Router, "--to", dst.String(), "--sport", fmt.Sprint(sport), "--count", "50", "--interval", "1ms")
		if r.Sent != 50 || r.Errors != 0 {
			t.Fatalf("udpsend to %s: %+v", dst, r)
		}
		return fmt.Sprintf("%s:%d", lab.ISP2RouterAddr.Addr(), sport)
	}
	before := flow(target, 41000)
	if err := l.Blackhole(ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	if err := l.Blackhole(ctx, lab.ISP2, true); err != nil {
		t.Fatalf("Blackhole twice: %v", err)
	}
	during := flow(target, 41001)
	toGateway := flow(gateway, 41002)
	if err := l.Blackhole(ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	if err := l.Blackhole(ctx, lab.ISP2, false); err != nil {
		t.Fatalf("Blackhole off twice: %v", err)
	}
	after := flow(target, 41003)

	ri, rg := inet.stop(t), isp2.stop(t)
	for _, f := range []string{before, after} {
		if got := ri.Flows[f].Received; got != 50 {
			t.Errorf("flow %s outside the blackhole: %d of 50 datagrams reached %s", f, got, target)
		}
	}
	if fr, ok := ri.Flows[during]; ok {
		t.Errorf("flow %s reached %s through the blackhole: %+v", during, target, fr)
	}
	if got := rg.Flows[toGateway].Received; got != 50 {
		t.Errorf("flow %s: %d of 50 datagrams reached the isp2 gateway during the blackhole", toGateway, got)
	}

	var neigh []struct {
		Dst    string   `json:"dst"`
		Lladdr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(mustIP(t, l, lab.Router, "-j", "neigh", "show", "dev", "eth2")), &neigh); err != nil {
		t.Fatal(err)
	}
	resolved := false
	for _, n := range neigh {
		if n.Dst == lab.ISP2Gateway.String() && n.Lladdr != "" && !slices.Contains(n.State, "FAILED") {
			resolved = true
		}
	}
	if !resolved {
		t.Errorf("router has no ARP entry for %s on eth2: %+v", lab.ISP2Gateway, neigh)
	}
}

func TestFlowEndToEnd(t *testing.T) {
	l := newLab(t)
	s := startSink(t, l, lab.Inet, netip.AddrPortFrom(lab.Target1, 9000))
	r1 := send(t, l, lab.Host, "--to", "198.18.0.1:9000", "--sport", "40000", "--interval", "1ms", "--duration", "300ms")
	r2 := send(t, l, lab.Host, "--to", "198.18.0.1:9000", "--from", lab.HostAddr2.String(), "--sport", "40001", "--count", "20")
	rep := s.stop(t)
	t.Logf("sent %d, sink report %+v", r1.Sent, rep)

	f1 := rep.Flows["192.0.2.10:40000"]
	if r1.Sent < 10 || r1.Errors != 0 || f1.Received != r1.Sent || f1.Lost != 0 || f1.LastSeq != uint64(r1.Sent-1) {
		t.Errorf("flow 192.0.2.10:40000: sent %+v, received %+v", r1, f1)
	}
	if f1.MaxGapMS <= 0 || f1.MaxGapSeq == 0 {
		t.Errorf("flow 192.0.2.10:40000 has no gap figure: %+v", f1)
	}
	if f2 := rep.Flows["192.0.2.11:40001"]; r2.Sent != 20 || f2.Received != 20 {
		t.Errorf("flow 192.0.2.11:40001: sent %+v, received %+v", r2, f2)
	}
	if rep.Received != r1.Sent+r2.Sent || rep.Lost != 0 {
		t.Errorf("totals: received %d lost %d, want %d and 0", rep.Received, rep.Lost, r1.Sent+r2.Sent)
	}
}

func TestLinkFaults(t *testing.T) {
	l := newLab(t)
	ctx := t.Context()

	old := routerLink(t, l, "eth2")
	if err := l.DeleteRouterLink(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if _, err := l.IP(ctx, lab.Router, "link", "show", "eth2"); err == nil {
		t.Fatal("eth2 still exists after DeleteRouterLink")
	}
	if err := l.RecreateRouterLink(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "recreated eth2 to come up", func() bool {
		return slices.Contains(linkFlags(t, l, "eth2"), "LOWER_UP")
	})
	now := routerLink(t, l, "eth2")
	if now.Index == old.Index {
		t.Errorf("recreated eth2 kept ifindex %d", old.Index)
	}
	if !slices.Equal(now.v4(), old.v4()) {
		t.Errorf("recreated eth2 addresses = %v, want %v", now.v4(), old.v4())
	}
	if dev, err := l.RouteGet(ctx, lab.ISP2Gateway, lab.HostAddr, lab.RouterLANLink, 1, 9); err != nil || dev != "eth2" {
		t.Errorf("route to the isp2 gateway = %q, %v", dev, err)
	}

	// isp1's link takes the admin's default with it and brings it back.
	if err := l.DeleteRouterLink(ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	if hasAdminDefault(mainRoutes(t, l), "eth1") {
		t.Error("admin default survived deleting eth1")
	}
	if err := l.RecreateRouterLink(ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	if !hasAdminDefault(mainRoutes(t, l), "eth1") {
		t.Errorf("admin default not restored: %+v", mainRoutes(t, l))
	}

	if err := l.Readdress(ctx, lab.ISP2, netip.MustParsePrefix("203.0.113.3/24")); err != nil {
		t.Fatal(err)
	}
	if got := routerLink(t, l, "eth2").v4(); !slices.Equal(got, []string{"203.0.113.3/24"}) {
		t.Errorf("eth2 addresses after Readdress = %v, want [203.0.113.3/24]", got)
	}
	if err := l.Readdress(ctx, lab.ISP1, netip.MustParsePrefix("198.51.100.3/24")); err != nil {
		t.Fatal(err)
	}
	if !hasAdminDefault(mainRoutes(t, l), "eth1") {
		t.Errorf("admin default lost by Readdress(isp1): %+v", mainRoutes(t, l))
	}
	if a, err := l.RouterAddr(lab.ISP1); err != nil || a.String() != "198.51.100.3/24" {
		t.Errorf("RouterAddr(isp1) = %v, %v", a, err)
	}

	for _, tc := range []struct{ isp, from, to string }{{lab.ISP2, "eth2", "wan2"}, {lab.ISP1, "eth1", "wan1"}} {
		if err := l.RenameRouterLink(ctx, tc.from, tc.to); err != nil {
			t.Fatal(err)
		}
		if name, _ := l.RouterLink(tc.isp); name != tc.to {
			t.Errorf("RouterLink(%s) = %q after rename, want %q", tc.isp, name, tc.to)
		}
		eventually(t, tc.to+" to come up", func() bool {
			return slices.Contains(linkFlags(t, l, tc.to), "LOWER_UP")
		})
	}
	if !hasAdminDefault(mainRoutes(t, l), "wan1") {
		t.Errorf("admin default not moved to wan1: %+v", mainRoutes(t, l))
	}
	// Faults follow the renamed link.
	if err := l.DeleteRouterLink(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if err := l.RecreateRouterLink(ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if got := routerLink(t, l, "eth2").v4(); !slices.Equal(got, []string{"203.0.113.3/24"}) {
		t.Errorf("eth2 recreated after rename and readdress has %v, want [203.0.113.3/24]", got)
	}
}

func TestClose(t *testing.T) {
	testutil.RequirePriv(t)
	l, err := lab.New(t.Context(), randomPrefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	bin := labtool(t)
	// One process the caller waits for in its own goroutine, one nobody waits for.
	waited, err := l.Start(t.Context(), lab.Inet, "", bin, "udpsink", "--listen", "198.18.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waited.Wait() }()
	orphan, err := l.Start(t.Context(), lab.Inet, "", bin, "udpsink", "--listen", "198.18.0.2:9000")
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(start))
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("started process ended with %v, want killed", err)
	}
	if err := orphan.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("second started process ended with %v, want killed", err)
	}
	list := netnsList(t)
	for _, ns := range []string{lab.Router, lab.Host, lab.ISP1, lab.ISP2, lab.Inet} {
		if hasNetns(list, l.NS(ns)) {
			t.Errorf("%s still listed after Close:\n%s", l.NS(ns), list)
		}
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Start(t.Context(), lab.Inet, "", bin, "udpsink"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestStartKilledWithContext(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithCancel(t.Context())
	cmd, err := l.Start(ctx, lab.Inet, "", labtool(t), "udpsink", "--listen", "198.18.0.1:9000")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("process ended with %v after its context was cancelled, want killed", err)
	}
}
