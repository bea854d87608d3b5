package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/ispemu"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// binDir holds uplinkd and labtool, built once by TestMain when privileged.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "uplinkd-test-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			// The race detector, except for figures: they measure the
			// binary as it is shipped.
			build := []string{"build", "-race"}
			if os.Getenv("UPLINKD_FIGURES") == "1" {
				build = build[:1]
			}
			for _, pkg := range []string{"../cmd/uplinkd", "./labtool"} {
				out, err := exec.Command("go", append(build, "-o", dir, pkg)...).CombinedOutput()
				if err != nil {
					fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
					return 1
				}
			}
			binDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

// balancers are the kinds of balance route; the core tests run with each
// (hash-threshold is auto's choice with pinning).
var balancers = []string{"hash-threshold", "resilient", "multipath"}

// forBalancers runs test once per balancer, as a subtest named after it.
func forBalancers(t *testing.T, test func(t *testing.T, balancer string)) {
	for _, b := range balancers {
		t.Run(b, func(t *testing.T) { test(t, b) })
	}
}

// coreConfig is the lab's configuration of the reference file (two probe
// targets, every other setting at its default) with the given balancer
// ("": the default, auto).
func coreConfig(balancer string) string {
	if balancer == "" {
		return healthConfig()
	}
	return strings.Replace(healthConfig(), "[routing]\n", "[routing]\nbalancer = \""+balancer+"\"\n", 1)
}

// healthConfig is the recommended setup: two probe targets and every other
// probe setting at its default, plus extra lines for [probe].
func healthConfig(extra ...string) string {
	return `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
` + strings.Join(extra, "\n") + "\n" + lab.UplinkConfig
}

var unbalancedTime = regexp.MustCompile(` unbalanced_time [\d.]+`)

// rig is a lab plus one uplinkd process in its router namespace.
type rig struct {
	t        *testing.T
	balancer string // from the configuration: "hash-threshold", "resilient", "multipath" or "" (auto)
	ctx      context.Context
	lab      *lab.Lab
	emu      ispemu.Client // once startEmu ran
	dir      string
	cfgPath  string
	logPath  string
	socket   string // the status socket
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error // cmd.Wait's result, valid once exited is closed
}

func newRig(t *testing.T, config string) *rig {
	t.Helper()
	return newRigWith(t, config, lab.Options{}, 3*time.Minute)
}

// newRigFor is newRig for a test that may take up to limit.
func newRigFor(t *testing.T, config string, limit time.Duration) *rig {
	t.Helper()
	return newRigWith(t, config, lab.Options{}, limit)
}

var balancerRE = regexp.MustCompile(`(?m)^balancer = "([\w-]+)"`)

func newRigWith(t *testing.T, config string, opts lab.Options, limit time.Duration) *rig {
	t.Helper()
	testutil.RequirePriv(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	l, err := lab.NewWithOptions(ctx, "u"+hex.EncodeToString(b), opts)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	r := &rig{t: t, ctx: ctx, lab: l, dir: t.TempDir()}
	if m := balancerRE.FindStringSubmatch(config); m != nil {
		r.balancer = m[1]
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(r.logPath); err == nil {
				t.Logf("uplinkd log:\n%s", b)
			}
		}
	})
	r.cfgPath = filepath.Join(r.dir, "uplinkd.toml")
	r.logPath = filepath.Join(r.dir, "uplinkd.log")
	r.socket = filepath.Join(r.dir, "uplinkd.sock")
	r.writeConfig(config)
	return r
}

// writeConfig writes the configuration file, with the status socket and
// the state directory in the test's directory (never the host's /run).
func (r *rig) writeConfig(config string) {
	r.t.Helper()
	state := fmt.Sprintf("[routing]\nstate_dir = %q\n", r.dir)
	if strings.Contains(config, "[routing]\n") {
		config = strings.Replace(config, "[routing]\n", state, 1)
	} else {
		config = state + config
	}
	config += fmt.Sprintf("\n[status]\nsocket = %q\n", r.socket)
	if err := os.WriteFile(r.cfgPath, []byte(config), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// start runs uplinkd and waits until its first reconcile is done.
func (r *rig) start() {
	r.t.Helper()
	r.startWith()
}

// startEnv is start with extra environment variables ("KEY=VALUE").
func (r *rig) startEnv(env ...string) {
	r.t.Helper()
	r.startWith(append([]string{"env"}, env...)...)
}

// startWith is start through a wrapper: the command prefix, which runs
// the rest of its arguments.
func (r *rig) startWith(prefix ...string) {
	r.t.Helper()
	mark := r.mark()
	r.launch(append(prefix, filepath.Join(binDir, "uplinkd"))...)
	r.waitLog(mark, regexp.MustCompile(`msg=ready`), 30*time.Second)
}

// launch runs the command (an uplinkd binary, maybe behind a wrapper) with
// `run --config` and returns at once.
func (r *rig) launch(command ...string) {
	r.t.Helper()
	args := append(command, "run", "--config", r.cfgPath)
	cmd, err := r.lab.Start(r.ctx, lab.Router, r.logPath, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) {
		r.err = c.Wait()
		close(done)
	}(cmd, r.exited)
}

// startEmu starts the ISP emulator in the lab's Internet namespace, with
// extra flags of `labtool ispemu`.
func (r *rig) startEmu(extra ...string) {
	r.t.Helper()
	emu, err := r.lab.StartISPEmu(r.ctx, filepath.Join(binDir, "labtool"), r.dir, extra...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.emu = emu
}

// setISP sets how the emulator treats isp's upstream ("loss=40%", "slow").
func (r *rig) setISP(isp, mode string) {
	r.t.Helper()
	m, err := ispemu.ParseMode(strings.Fields(mode))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.emu.Set(r.ctx, isp, m); err != nil {
		r.t.Fatal(err)
	}
}

// transition is one logged state change.
type transition struct{ uplink, from, to, reason string }

var transitionRE = regexp.MustCompile(`msg=transition uplink=(\S+) from=(\S+) to=(\S+) reason=("(?:[^"\\]|\\.)*"|\S+)`)

// transitions returns the transitions logged after mark, of uplink or,
// with uplink "", of all.
func (r *rig) transitions(mark int, uplink string) []transition {
	b, _ := os.ReadFile(r.logPath)
	var out []transition
	for _, m := range transitionRE.FindAllStringSubmatch(string(b[min(mark, len(b)):]), -1) {
		reason, err := strconv.Unquote(m[4])
		if err != nil {
			reason = m[4]
		}
		if uplink == "" || m[1] == uplink {
			out = append(out, transition{m[1], m[2], m[3], reason})
		}
	}
	return out
}

// stop signals uplinkd and returns its exit code.
func (r *rig) stop(sig syscall.Signal) int {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("uplinkd did not exit within 30s of %v", sig)
	}
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	r.t.Fatalf("wait: %v", r.err)
	return -1
}

// mark is the current end of the daemon's log; waits look after it.
func (r *rig) mark() int {
	b, _ := os.ReadFile(r.logPath)
	return len(b)
}

// waitLog waits for a log line after mark matching re and returns it.
func (r *rig) waitLog(mark int, re *regexp.Regexp, timeout time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(r.logPath)
		if len(b) > mark {
			for _, line := range strings.Split(string(b[mark:]), "\n") {
				if re.MatchString(line) {
					return line
				}
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no log line matching %q within %v", re, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTransition waits for uplink's transition to state after mark.
func (r *rig) waitTransition(mark int, uplink, to string, timeout time.Duration) string {
	r.t.Helper()
	return r.waitLog(mark, regexp.MustCompile(`msg=transition uplink=`+uplink+` from=\S+ to=`+to+`\b`), timeout)
}

// ip runs `ip -n NS args...` and fails the test on error.
func (r *rig) ip(ns string, args ...string) string {
	r.t.Helper()
	out, err := r.lab.IP(r.ctx, ns, args...)
	if err != nil {
		r.t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return out
}

// table lists a routing table of the router; a table that does not exist
// (nothing in it yet) is empty.
func (r *rig) table(id string) string {
	r.t.Helper()
	return r.showTable(id)
}

// showTable lists a routing table of the router with ip's extra flags
// before the command ("-6", "-j"); a table that does not exist (nothing in
// it yet) is empty.
func (r *rig) showTable(id string, flags ...string) string {
	r.t.Helper()
	args := append(slices.Clone(flags), "route", "show", "table", id)
	out, err := r.lab.IP(r.ctx, lab.Router, args...)
	if err != nil {
		if strings.Contains(out+err.Error(), "FIB table does not exist") {
			return ""
		}
		r.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// balance is the router's balance table.
func (r *rig) balance() string { return r.table("250") }

// waitFor polls the kernel state (tests only) until check passes.
func (r *rig) waitFor(what string, timeout time.Duration, check func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %v waiting for %s\nbalance table: %s\nrules:\n%s", timeout, what,
				r.balance(), r.ip(lab.Router, "rule"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// family is one address family of the router's balance: ip's family flag
// and uplinkd's balance group with the default nexthop_id_base.
type family struct {
	name  string   // "IPv4", "IPv6"
	flags []string // ip's flags for the family
	group int
}

var (
	ipv4 = family{name: "IPv4", group: groupID}
	ipv6 = family{name: "IPv6", flags: []string{"-6"}, group: groupID6}
)

// members lists the uplinks of the IPv4 balance route as "dev/weight",
// sorted, and the nexthop id the route uses (0 for a classic route).
func (r *rig) members() ([]string, int) {
	r.t.Helper()
	return r.membersOf(ipv4)
}

// membersOf lists the uplinks of family's balance route as "dev/weight",
// sorted, and the nexthop id the route uses (0 for a classic route). For a
// route through a nexthop group the group and its members are read, not
// the gateways the kernel shows for old tools. For IPv6 only the unicast
// default route counts (unreachable or absent: no members) and a single
// nexthop object is a member of weight 1.
func (r *rig) membersOf(f family) ([]string, int) {
	r.t.Helper()
	type hop struct {
		Dev    string `json:"dev"`
		Weight int    `json:"weight"`
	}
	type route struct {
		Dst      string `json:"dst"`
		Type     string `json:"type"`
		NHID     int    `json:"nhid"`
		Nexthops []hop  `json:"nexthops"`
		hop
	}
	var routes []route
	if b := strings.TrimSpace(r.showTable("250", append(slices.Clone(f.flags), "-j")...)); b != "" {
		if err := json.Unmarshal([]byte(b), &routes); err != nil {
			r.t.Fatalf("%s balance table %q: %v", f.name, b, err)
		}
	}
	if f.name == ipv6.name {
		routes = slices.DeleteFunc(routes, func(rt route) bool {
			return rt.Dst != "default" || (rt.Type != "" && rt.Type != "unicast")
		})
	}
	if len(routes) == 0 {
		return nil, 0
	}
	rt := routes[0]
	var hops []hop
	switch {
	case rt.NHID != 0:
		var groups []struct {
			Group []struct {
				ID     int `json:"id"`
				Weight int `json:"weight"`
			} `json:"group"`
			Dev string `json:"dev"`
		}
		if !r.tryNexthopJSON(rt.NHID, &groups) {
			// Gone since the route was read: a hash-threshold group
			// moves to its other ID when its members change.
			return nil, rt.NHID
		}
		if f.name == ipv6.name && len(groups[0].Group) == 0 { // a single nexthop object
			hops = []hop{{Dev: groups[0].Dev, Weight: 1}}
		}
		for _, m := range groups[0].Group {
			var nh []hop
			if !r.tryNexthopJSON(m.ID, &nh) {
				return nil, rt.NHID // a member gone since (its link went down)
			}
			hops = append(hops, hop{Dev: nh[0].Dev, Weight: m.Weight})
		}
	case len(rt.Nexthops) > 0:
		hops = rt.Nexthops
	default:
		hops = []hop{rt.hop}
	}
	var out []string
	for _, h := range hops {
		out = append(out, fmt.Sprintf("%s/%d", h.Dev, max(h.Weight, 1)))
	}
	slices.Sort(out)
	// Every uplink is two members of the resilient group.
	return slices.Compact(out), rt.NHID
}

// nexthopJSON decodes `ip -j nexthop show id ID` into v.
func (r *rig) nexthopJSON(id int, v any) {
	r.t.Helper()
	if !r.tryNexthopJSON(id, v) {
		r.t.Fatalf("nexthop %d does not exist", id)
	}
}

// atGroupIDs returns the lines of ours (r.ours()), sorted, with the
// groups (the balance group's, the policies') at their alternate IDs
// written at their own: where a hash-threshold group is after a change
// does not matter (nor, then, where `ip nexthop` lists it), only what it
// holds.
func atGroupIDs(ours string) string {
	ours = idRE.ReplaceAllStringFunc(ours, func(s string) string {
		n, err := strconv.Atoi(s)
		if err != nil {
			return s
		}
		for _, base := range []int{groupID, groupID6} {
			if n >= base+altGroupOffset && n < base+altGroupOffset+256 {
				return strconv.Itoa(n - altGroupOffset)
			}
		}
		return s
	})
	lines := strings.Split(ours, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

var idRE = regexp.MustCompile(`\b20100[0-9]{5}\b`)

// tryNexthopJSON is nexthopJSON for an object that may be gone by now:
// false if it is.
func (r *rig) tryNexthopJSON(id int, v any) bool {
	r.t.Helper()
	out, err := r.lab.IP(r.ctx, lab.Router, "-j", "nexthop", "show", "id", strconv.Itoa(id))
	if err != nil && strings.Contains(out+err.Error(), "No such file or directory") {
		return false
	}
	if err != nil {
		r.t.Fatalf("ip nexthop show id %d: %v: %s", id, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		r.t.Fatalf("nexthop %d: %q: %v", id, out, err)
	}
	return true
}

// groupID is uplinkd's balance group with the default nexthop_id_base.
// A hash-threshold group may be at groupID+altGroupOffset instead: it is
// made anew at its other ID whenever its members change.
const (
	groupID        = 2010000000
	altGroupOffset = 640
)

// nexthopOf returns the ID of uplinkd's (first) nexthop object on dev: IDs
// follow the uplink's name, not its position.
func (r *rig) nexthopOf(dev string) int {
	r.t.Helper()
	var nhs []struct {
		ID  int    `json:"id"`
		Dev string `json:"dev"`
	}
	out := r.ip(lab.Router, "-j", "nexthop", "show", "proto", "201")
	if err := json.Unmarshal([]byte(out), &nhs); err != nil {
		r.t.Fatalf("nexthops %q: %v", out, err)
	}
	id := 0
	for _, n := range nhs {
		if n.Dev == dev && (id == 0 || n.ID < id) {
			id = n.ID
		}
	}
	if id == 0 {
		r.t.Fatalf("no nexthop object of uplinkd on %s: %s", dev, out)
	}
	return id
}

// waitMembers waits until the IPv4 balance route has exactly the given
// members ("dev/weight"), through the resilient group when the rig runs
// that balancer.
func (r *rig) waitMembers(members ...string) {
	r.t.Helper()
	r.waitMembersOf(ipv4, members...)
}

// waitMembersOf waits until family's balance route has exactly the given
// members ("dev/weight"; none: no balance route), through the balance
// group when the rig runs a balancer that uses one.
func (r *rig) waitMembersOf(f family, members ...string) {
	r.t.Helper()
	slices.Sort(members)
	r.waitFor(fmt.Sprintf("%s balance over %v", f.name, members), 30*time.Second, func() bool {
		got, nhid := r.membersOf(f)
		if !slices.Equal(got, members) {
			return false
		}
		switch {
		case len(members) == 0:
			return true
		case r.balancer == "resilient":
			return nhid == f.group
		case r.balancer == "hash-threshold":
			return nhid == f.group || nhid == f.group+altGroupOffset
		case r.balancer == "multipath":
			return nhid == 0
		}
		return true
	})
}

func (r *rig) waitBoth() {
	r.t.Helper()
	r.waitMembers("eth1/1", "eth2/3")
}

// waitOnly waits until dev ("eth1") is the only uplink in the IPv4
// balance.
func (r *rig) waitOnly(dev string) {
	r.t.Helper()
	r.waitMembers(onlyMember(dev))
}

// onlyMember is dev's balance member ("eth1/1") when it is the only uplink.
func onlyMember(dev string) string {
	w := map[string]int{"eth1": 1, "eth2": 3}[dev]
	return fmt.Sprintf("%s/%d", dev, w)
}

// ours lists every route, rule and nexthop object carrying uplinkd's
// protocol, of both families (IPv6 rules prefixed "-6 "), one per line, sorted (rules of equal priority keep insertion
// order in the kernel). The resilient group's unbalanced time, a clock, is
// left out.
func (r *rig) ours() string {
	var lines []string
	nhs := r.ip(lab.Router, "nexthop", "show", "proto", "201")
	for _, l := range strings.Split(nhs, "\n") {
		l = unbalancedTime.ReplaceAllString(l, "")
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	lines = append(lines, r.routesOf(ipv4)...)
	lines = append(lines, r.rulesOf(ipv4)...)
	// IPv6 rules (issue 12); the routes and nexthops above are both
	// families' (`ip route show table all` lists IPv6 too).
	lines = append(lines, r.rules6()...)
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// routesOf lists uplinkd's routes of all tables as `ip -o` lines, prefixed
// with family's ip flags ("-6 ") unless IPv4's (`ip route show table all`
// without a flag lists IPv6 too).
func (r *rig) routesOf(f family) []string {
	r.t.Helper()
	args := append(slices.Clone(f.flags), "-o", "route", "show", "table", "all", "proto", "201")
	var lines []string
	for _, l := range strings.Split(r.ip(lab.Router, args...), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, f.prefix()+l)
		}
	}
	return lines
}

// rulesOf lists uplinkd's rules of family, each line prefixed with
// family's ip flags ("-6 "; IPv6 rules read like IPv4's otherwise).
func (r *rig) rulesOf(f family) []string {
	r.t.Helper()
	args := append(slices.Clone(f.flags), "rule")
	var lines []string
	for _, l := range strings.Split(r.ip(lab.Router, args...), "\n") {
		if strings.Contains(l, "proto 201") {
			lines = append(lines, f.prefix()+l)
		}
	}
	return lines
}

// prefix is family's ip flags as a line prefix ("-6 "; "" for IPv4).
func (f family) prefix() string {
	if len(f.flags) == 0 {
		return ""
	}
	return strings.Join(f.flags, " ") + " "
}
