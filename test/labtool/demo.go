package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/google/nftables"
	"github.com/uplinkd/uplinkd/test/ispemu"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netns"
)

// demoConfig is what `labtool demo` runs uplinkd with: the lab's two ISPs,
// isp2 with three times isp1's share, both probed towards the Internet's
// two targets, every probe setting at its default.
const demoConfig = `[routing]
lan_interfaces = ["eth0"]
[probe]
targets = ["198.18.0.1", "198.18.0.2"]
` + lab.UplinkConfig

const (
	// routeSettle bounds the wait for the "routing updated" line that
	// follows a transition, before the balance table is shown.
	routeSettle = 3 * time.Second
	// stopTimeout bounds uplinkd's exit after SIGTERM.
	stopTimeout = 10 * time.Second
	// logTailLines is how much of the raw log a failure report shows.
	logTailLines = 25
	// ownProto is the route_protocol uplinkd marks its routes and rules with.
	ownProto = "201"
)

// runDemo is `labtool demo`, the `make demo` driver: a lab, uplinkd in its
// router, and uplinks broken and repaired while the daemon's transitions
// and the path of LAN traffic are shown.
func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	bin := fs.String("uplinkd", "", "uplinkd `binary` to run in the lab's router (required)")
	timeout := fs.Duration("timeout", 15*time.Second, "how long each step waits for its transition")
	flows := fs.Int("flows", 1000, "LAN flows (UDP source ports) whose route is looked up at each step")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *flows < 1 || *flows > 65536-lab.SplitFirstPort {
		return fmt.Errorf("--flows %d: want 1..%d", *flows, 65536-lab.SplitFirstPort)
	}
	path, err := checkDemoEnv(*bin)
	if err != nil {
		return err
	}
	d := &demo{
		out:     os.Stdout,
		style:   style{color: colorOutput(os.Stdout)},
		bin:     path,
		timeout: *timeout,
		flows:   *flows,
		states:  make(map[string]string),
	}
	return d.run(ctx)
}

// checkDemoEnv fails early, with advice, when the demo cannot work, and
// returns the absolute path of the uplinkd binary.
func checkDemoEnv(bin string) (string, error) {
	if bin == "" {
		return "", errors.New("--uplinkd is required: the uplinkd binary to run (make demo builds bin/uplinkd)")
	}
	fi, err := os.Stat(bin)
	if err != nil {
		return "", fmt.Errorf("--uplinkd %s: %w (build it with make build)", bin, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("--uplinkd %s: not an executable file", bin)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("--uplinkd %s: %w", bin, err)
	}
	if os.Geteuid() != 0 {
		return "", errors.New("the demo needs root: it creates network namespaces and runs uplinkd in one (try sudo make demo)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "", fmt.Errorf("the demo needs iproute2's ip command: %w", err)
	}
	return abs, nil
}

// demo is one run of `labtool demo`. Only its own goroutine prints; the
// log follower queues lines for it.
type demo struct {
	out     io.Writer
	style   style
	bin     string
	timeout time.Duration
	flows   int

	prefix    string
	dir       string // temporary: config and log
	logPath   string
	lab       *lab.Lab
	daemon    *daemonProc
	log       *logFollower
	stepStart time.Time         // log times are printed relative to it
	states    map[string]string // uplink → state, from transition lines
	results   []stepResult
	emu       ispemu.Client // the ISP emulator in the Internet namespace
}

// stepResult is one line of the closing summary.
type stepResult struct {
	what     string        // "ISP2 cable pulled → isp2 down"
	detected time.Duration // from the action to the transition line
	routes   string        // since_event of the routing update it caused
}

const totalSteps = 8

func (d *demo) run(ctx context.Context) error {
	err := d.steps(ctx)
	interrupted := err != nil && ctx.Err() != nil
	if interrupted {
		d.printf("\n%s\n", d.style.yellow("Interrupted; cleaning up."))
		err = fmt.Errorf("interrupted (%w)", err)
	}
	// The log of a failure is worth keeping; that of a Ctrl-C is not.
	if terr := d.teardown(err != nil && !interrupted); terr != nil {
		return errors.Join(err, terr)
	}
	if err != nil {
		return err
	}
	d.summary()
	return nil
}

func (d *demo) steps(ctx context.Context) error {
	var err error
	if d.dir, err = os.MkdirTemp("", "uplinkd-demo-"); err != nil {
		return err
	}
	cfgPath := filepath.Join(d.dir, "uplinkd.toml")
	d.logPath = filepath.Join(d.dir, "uplinkd.log")
	// The status socket lives with the log, not in the host's /run.
	cfg := strings.Replace(demoConfig, "[routing]\n", fmt.Sprintf("[routing]\nstate_dir = %q\n", d.dir), 1) +
		fmt.Sprintf("[status]\nsocket = %q\n", filepath.Join(d.dir, "uplinkd.sock"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	// Created here so that the follower can open it before uplinkd writes.
	if err := os.WriteFile(d.logPath, nil, 0o644); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, d.bin, "check", "--config", cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("uplinkd check rejects the demo configuration: %w\n%s", err, out)
	}

	if d.prefix, err = freePrefix(ctx); err != nil {
		return err
	}
	d.printf("%s\n", d.style.bold("uplinkd demo"))
	d.printf("Building lab %s: a router (%s), a LAN host, two ISPs and an \"Internet\" in network namespaces %s-*.\n",
		d.prefix, d.prefix+"-"+lab.Router, d.prefix)
	t0 := time.Now()
	if d.lab, err = lab.New(ctx, d.prefix); err != nil {
		return err
	}
	d.printf("Lab ready in %s. uplinkd config and log: %s\n", fmtDur(time.Since(t0)), d.dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if d.emu, err = d.lab.StartISPEmu(ctx, self, d.dir); err != nil {
		return err
	}
	d.printf("ISP emulator answering the Internet's pings: both ISPs healthy for now.\n")

	start := func(context.Context) error {
		d.log = followLog(d.logPath)
		p, err := startDaemon(d.lab, d.logPath, d.bin, "run", "--config", cfgPath)
		d.daemon = p
		return err
	}
	steps := []step{
		{
			title:  "Starting uplinkd in the router: isp1 on eth1 (weight 1), isp2 on eth2 (weight 3)",
			short:  "uplinkd started → isp1, isp2 active",
			wait:   "isp1 and isp2 active",
			result: "isp1 and isp2 active",
			action: start,
			done:   func(logLine) bool { return d.states[lab.ISP1] == "active" && d.states[lab.ISP2] == "active" },
		},
		{
			title:  "Pulling ISP2's cable (the ISP's end goes down: eth2 loses its carrier)",
			short:  "ISP2 cable pulled → isp2 down",
			wait:   "isp2 → down",
			action: func(ctx context.Context) error { return d.lab.CarrierDown(ctx, lab.ISP2) },
			done:   becomes(lab.ISP2, "down"),
		},
		{
			title:  "Plugging ISP2's cable back (isp2 must pass its probes before it rejoins)",
			short:  "ISP2 cable back → isp2 active",
			wait:   "isp2 → active",
			action: func(ctx context.Context) error { return d.lab.CarrierUp(ctx, lab.ISP2) },
			done:   becomes(lab.ISP2, "active"),
		},
		{
			title:  "Blackholing ISP1 upstream (its gateway still answers ARP; only probes can tell)",
			short:  "ISP1 upstream blackholed → isp1 leaves active",
			wait:   "isp1 leaving active",
			action: func(ctx context.Context) error { return d.lab.Blackhole(ctx, lab.ISP1, true) },
			done:   leaves(lab.ISP1, "active"),
		},
		{
			title:  "Repairing ISP1 upstream",
			short:  "ISP1 upstream repaired → isp1 active",
			wait:   "isp1 → active",
			action: func(ctx context.Context) error { return d.lab.Blackhole(ctx, lab.ISP1, false) },
			done:   becomes(lab.ISP1, "active"),
		},
		{
			title: "ISP2 upstream starts losing 40% of packets (ISP emulator); isp2 must become degraded\n" +
				"      once its statistics window (50 probes per target, 25 s) shows it, and leave the balance while isp1 is active",
			short:   "ISP2 40% loss → isp2 degraded",
			wait:    "isp2 → degraded",
			timeout: degradeTimeout,
			action:  func(ctx context.Context) error { return d.emu.Set(ctx, lab.ISP2, ispemu.Mode{Loss: 0.4}) },
			done:    becomes(lab.ISP2, "degraded"),
		},
		{
			title:   "ISP2 upstream healed; isp2 is active again once its loss is below recover_loss",
			short:   "ISP2 healed → isp2 active",
			wait:    "isp2 → active",
			timeout: degradeTimeout,
			action:  func(ctx context.Context) error { return d.emu.Set(ctx, lab.ISP2, ispemu.Mode{}) },
			done:    becomes(lab.ISP2, "active"),
		},
	}
	for i, s := range steps {
		if err := d.step(ctx, i+1, s); err != nil {
			return err
		}
	}
	if err := d.showStatus(ctx); err != nil {
		return err
	}
	return d.stop(ctx, len(steps)+1)
}

// showStatus prints what `uplinkd status` says now.
func (d *demo) showStatus(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, d.bin, "status", "--socket", filepath.Join(d.dir, "uplinkd.sock")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("uplinkd status: %w\n%s", err, out)
	}
	d.printf("\n%s\n", d.style.bold("uplinkd status"))
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		d.printf("      %s\n", l)
	}
	return nil
}

// step is one fault (or repair) and the transition it must cause.
type step struct {
	title   string        // header
	short   string        // for the summary
	wait    string        // what done waits for, for messages
	result  string        // what was detected; "" shows the transition
	timeout time.Duration // for done; 0: the demo's --timeout
	action  func(context.Context) error
	done    func(transition logLine) bool // called after states is updated
}

// degradeTimeout bounds the degraded steps: quality is judged over the
// statistics window (50 probes per target: 25 seconds at the default
// 2 echoes per second per target), not per round.
const degradeTimeout = 45 * time.Second

func (d *demo) step(ctx context.Context, n int, s step) error {
	d.drain() // lines that arrived while the last step's tables were shown
	d.header(n, s.title)
	d.stepStart = time.Now()
	if err := s.action(ctx); err != nil {
		return fmt.Errorf("step %d: %w", n, err)
	}
	timeout := d.timeout
	if s.timeout > 0 {
		timeout = max(timeout, s.timeout)
	}
	tr, err := d.await(ctx, timeout, s.done)
	if errors.Is(err, errTimeout) {
		d.failure(fmt.Sprintf("TIMEOUT: no %s within %s of the action.", s.wait, fmtDur(timeout)))
	}
	if err != nil {
		return fmt.Errorf("step %d, waiting for %s: %w", n, s.wait, err)
	}
	detected := d.since(tr)
	routes, err := d.await(ctx, routeSettle, func(l logLine) bool { return l.msg == "routing updated" })
	res := stepResult{what: s.short, detected: detected, routes: "-"}
	switch {
	case err == nil:
		res.routes = routes.get("since_event")
	case errors.Is(err, errTimeout):
		// With a resilient nexthop group the kernel itself drops a
		// member whose link loses carrier: nothing is left to change.
		d.printf("%s\n", d.style.yellow(fmt.Sprintf("      (no routing update logged within %s: the kernel's routes were already right)", fmtDur(routeSettle))))
	default:
		return fmt.Errorf("step %d: %w", n, err)
	}
	d.results = append(d.results, res)
	got := s.result
	if got == "" {
		got = tr.get("uplink") + " " + tr.get("from") + " → " + tr.get("to")
	}
	d.printf("      %s %s\n", d.style.bold("Detected after "+fmtDur(detected)+":"), got)
	return d.showTraffic(ctx)
}

// stop is the last step: SIGTERM, and nothing of uplinkd's may remain.
func (d *demo) stop(ctx context.Context, n int) error {
	d.drain()
	routes, rules, nexthops, err := d.owned(ctx)
	if err != nil {
		return err
	}
	d.header(n, "Stopping uplinkd with SIGTERM (it must remove every route, rule, nexthop and nftables table it installed)")
	d.printf("      Installed now with proto %s: %d routes, %d rules, %d nexthop objects.\n", ownProto, len(routes), len(rules), len(nexthops))
	d.stepStart = time.Now()
	if err := d.daemon.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal uplinkd: %w", err)
	}
	select {
	case <-d.daemon.exited:
	case <-time.After(stopTimeout):
		d.failure(fmt.Sprintf("uplinkd did not exit within %s of SIGTERM", fmtDur(stopTimeout)))
		return fmt.Errorf("uplinkd did not exit within %s of SIGTERM", stopTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	exitedAfter := time.Since(d.stepStart)
	d.log.Stop()
	d.drain()
	if d.daemon.err != nil {
		d.failure("uplinkd failed on SIGTERM: " + d.daemon.err.Error())
		return fmt.Errorf("uplinkd exit: %w", d.daemon.err)
	}
	d.printf("      uplinkd exited with status 0 after %s.\n", fmtDur(exitedAfter))
	routes, rules, nexthops, err = d.owned(ctx)
	if err != nil {
		return err
	}
	d.printf("      ip route show table all proto %s: %s\n", ownProto, noneOr(routes))
	d.printf("      ip rule show | grep 'proto %s':   %s\n", ownProto, noneOr(rules))
	d.printf("      ip nexthop show proto %s:         %s\n", ownProto, noneOr(nexthops))
	table, err := d.pinTable()
	if err != nil {
		return err
	}
	d.printf("      nftables table inet uplinkd:      %s\n", map[bool]string{true: "present", false: "none"}[table])
	if len(routes)+len(rules)+len(nexthops) > 0 || table {
		return fmt.Errorf("uplinkd left %d routes, %d rules, %d nexthops and %d nftables tables behind",
			len(routes), len(rules), len(nexthops), btoi(table))
	}
	d.printf("      %s\n", d.style.green("uplinkd removed everything it installed."))
	d.results = append(d.results, stepResult{what: "SIGTERM → uplinkd exited, cleaned up", detected: exitedAfter, routes: "-"})
	return nil
}

// owned lists the router's routes, rules and nexthop objects with
// uplinkd's protocol.
func (d *demo) owned(ctx context.Context) (routes, rules, nexthops []string, err error) {
	out, err := d.lab.IP(ctx, lab.Router, "route", "show", "table", "all", "proto", ownProto)
	if err != nil {
		return nil, nil, nil, err
	}
	// A multipath route continues on indented "nexthop" lines.
	for _, l := range nonEmptyLines(out) {
		if !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t") {
			routes = append(routes, l)
		}
	}
	out, err = d.lab.IP(ctx, lab.Router, "rule", "show")
	if err != nil {
		return nil, nil, nil, err
	}
	for _, l := range nonEmptyLines(out) {
		if strings.Contains(l+" ", " proto "+ownProto+" ") {
			rules = append(rules, l)
		}
	}
	out, err = d.lab.IP(ctx, lab.Router, "nexthop", "show", "proto", ownProto)
	if err != nil {
		return nil, nil, nil, err
	}
	return routes, rules, nonEmptyLines(out), nil
}

// pinTable says whether the router has uplinkd's nftables table.
func (d *demo) pinTable() (bool, error) {
	ns, err := netns.GetFromName(d.lab.NS(lab.Router))
	if err != nil {
		return false, err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == "uplinkd" {
			return true, nil
		}
	}
	return false, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func noneOr(lines []string) string {
	if len(lines) == 0 {
		return "none"
	}
	return "\n        " + strings.Join(lines, "\n        ")
}

// showTraffic prints the balance table and where LAN flows go.
func (d *demo) showTraffic(ctx context.Context) error {
	table, err := d.lab.IP(ctx, lab.Router, "route", "show", "table", "250")
	if err != nil {
		return err
	}
	split, err := d.lab.Split(ctx, d.flows)
	if err != nil {
		return err
	}
	d.printf("      LAN traffic now:\n")
	lines := nonEmptyLines(strings.ReplaceAll(table, "\t", "    "))
	if len(lines) == 0 {
		lines = []string{"(empty)"}
	}
	d.printf("        table 250   %s\n", lines[0])
	for _, l := range lines[1:] {
		d.printf("                    %s\n", l)
	}
	// A route through a nexthop group: show the group, its members are
	// the uplinks new connections are spread over.
	if m := nhidRE.FindStringSubmatch(lines[0]); m != nil {
		group, err := d.lab.IP(ctx, lab.Router, "nexthop", "show", "id", m[1])
		if err != nil {
			return err
		}
		members, err := d.lab.IP(ctx, lab.Router, "nexthop", "show", "proto", "201")
		if err != nil {
			return err
		}
		d.printf("        nexthops    %s\n", strings.TrimSpace(group))
		for _, l := range nonEmptyLines(members) {
			if !strings.Contains(l, " group ") {
				d.printf("                    %s\n", strings.TrimSpace(l))
			}
		}
	}
	d.printf("        %-11s %s\n", strconv.Itoa(d.flows)+" new flows", formatSplit(split, d.flows, "eth1", "eth2"))
	return nil
}

var nhidRE = regexp.MustCompile(`\bnhid (\d+)`)

// formatSplit renders per-device flow counts as "eth1 24% / eth2 76%",
// always naming the devices in want, then any other device, sorted.
func formatSplit(split map[string]int, n int, want ...string) string {
	devs := slices.Clone(want)
	for dev := range split {
		if !slices.Contains(devs, dev) {
			devs = append(devs, dev)
		}
	}
	slices.Sort(devs[len(want):])
	counts := make([]int, len(devs))
	for i, dev := range devs {
		counts[i] = split[dev]
	}
	pct := percents(counts, n)
	parts := make([]string, len(devs))
	for i, dev := range devs {
		parts[i] = fmt.Sprintf("%s %d%%", dev, pct[i])
	}
	return strings.Join(parts, " / ")
}

// percents rounds counts out of n to whole percentages that add up to 100
// when the counts add up to n (largest remainders get the rounding).
func percents(counts []int, n int) []int {
	pct := make([]int, len(counts))
	rem := make([]float64, len(counts))
	sum, total := 0, 0
	for i, c := range counts {
		exact := 100 * float64(c) / float64(n)
		pct[i] = int(math.Floor(exact))
		rem[i] = exact - float64(pct[i])
		sum += pct[i]
		total += c
	}
	if total != n {
		return pct
	}
	order := make([]int, len(counts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(rem[b], rem[a]) })
	for _, i := range order[:min(100-sum, len(order))] {
		pct[i]++
	}
	return pct
}

var errTimeout = errors.New("timed out")

// await prints the daemon's log lines as they come until one satisfies
// done (transitions are tested after states is updated), and returns it.
// If uplinkd exits meanwhile, it prints the log's tail.
func (d *demo) await(ctx context.Context, timeout time.Duration, done func(logLine) bool) (logLine, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		for {
			l, ok := d.log.Next()
			if !ok {
				break
			}
			d.print(l)
			if done(l) {
				return l, nil
			}
		}
		select {
		case <-d.log.Notify():
		case <-d.daemon.exited:
			d.log.Stop()
			d.drain()
			d.failure(fmt.Sprintf("uplinkd exited unexpectedly (%v)", d.daemon.err))
			return logLine{}, errors.New("uplinkd exited")
		case <-timer.C:
			return logLine{}, fmt.Errorf("%w after %s", errTimeout, timeout)
		case <-ctx.Done():
			return logLine{}, ctx.Err()
		}
	}
}

// drain prints the lines queued so far.
func (d *demo) drain() {
	if d.log == nil {
		return
	}
	for {
		l, ok := d.log.Next()
		if !ok {
			return
		}
		d.print(l)
	}
}

// since is the time from the step's start to line l. Log times have a
// millisecond resolution, so the start is truncated to match.
func (d *demo) since(l logLine) time.Duration {
	return l.when().Sub(d.stepStart.Truncate(time.Millisecond))
}

// print shows one daemon log line under the current step.
func (d *demo) print(l logLine) {
	if l.msg == "transition" {
		d.states[l.get("uplink")] = l.get("to")
	}
	d.printf("      %s  %s\n", d.style.dim(fmt.Sprintf("%+8.3fs", d.since(l).Seconds())), d.describe(l))
}

// describe renders a log line compactly, without time and level for
// ordinary lines.
func (d *demo) describe(l logLine) string {
	if !l.parsed {
		return d.style.red("uplinkd: " + l.raw)
	}
	switch {
	case l.level == "WARN":
		return d.style.yellow("WARN  " + l.msg + " " + l.attrsExcept("time", "level", "msg"))
	case l.level == "ERROR":
		return d.style.red("ERROR " + l.msg + " " + l.attrsExcept("time", "level", "msg"))
	case l.msg == "transition":
		from, to := l.get("from"), l.get("to")
		pad := strings.Repeat(" ", max(0, 18-len(from+" > "+to)))
		return fmt.Sprintf("%-5s %s → %s%s  %s", l.get("uplink"), from, d.style.state(to), pad, l.get("reason"))
	case l.msg == "routing updated":
		return fmt.Sprintf("%-24s  %s, %s after the event", "routing updated", plural(l.get("changes"), "change"), l.get("since_event"))
	case l.msg == "ready":
		return "ready (first reconcile done)"
	case l.msg == "starting":
		return fmt.Sprintf("uplinkd %s starting with %s uplinks", l.get("version"), l.get("uplinks"))
	case strings.HasPrefix(l.msg, "stopped"):
		return fmt.Sprintf("%-24s  %s routes, rules and nexthops removed", "stopped", l.get("routes_rules_nexthops"))
	}
	return strings.TrimSpace(l.msg + " " + l.attrsExcept("time", "level", "msg"))
}

// failure reports a failed step: why, and the end of the raw log.
func (d *demo) failure(why string) {
	d.printf("\n      %s\n", d.style.red(why))
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		d.printf("      (cannot read the uplinkd log: %v)\n", err)
		return
	}
	lines := nonEmptyLines(string(b))
	if len(lines) > logTailLines {
		lines = lines[len(lines)-logTailLines:]
	}
	d.printf("      Last %d lines of %s:\n", len(lines), d.logPath)
	for _, l := range lines {
		d.printf("        %s\n", l)
	}
}

// teardown stops uplinkd (SIGTERM, so that it cleans up as in production),
// closes the lab and checks that none of its namespaces remain. It works
// after any failure, including an interrupted lab.New.
func (d *demo) teardown(failed bool) error {
	var errs []error
	if d.daemon != nil {
		select {
		case <-d.daemon.exited:
		default:
			d.printf("      Stopping uplinkd (SIGTERM).\n")
			_ = d.daemon.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.daemon.exited:
			case <-time.After(stopTimeout / 2):
				d.printf("      uplinkd did not exit; the lab will kill it.\n")
			}
		}
	}
	if d.log != nil {
		d.log.Stop()
		d.drain()
		if err := d.log.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.lab != nil {
		if err := d.lab.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close lab: %w", err))
		}
		if d.daemon != nil {
			<-d.daemon.exited // Close killed it if it was still running
		}
		left, err := leftNamespaces(d.prefix)
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(left) > 0:
			errs = append(errs, fmt.Errorf("namespaces left behind: %s", strings.Join(left, ", ")))
		default:
			d.printf("\nLab %s removed: no namespace named %s-* is left.\n", d.prefix, d.prefix)
		}
	}
	if d.dir != "" {
		if failed || len(errs) > 0 {
			d.printf("uplinkd config and log kept in %s\n", d.dir)
		} else if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *demo) summary() {
	width := len("Summary")
	for _, r := range d.results {
		width = max(width, 5+utf8.RuneCountInString(r.what))
	}
	pad := func(t string) string { return t + strings.Repeat(" ", width-utf8.RuneCountInString(t)) }
	d.printf("\n%s  %9s   %s\n", d.style.bold(pad("Summary")), "detected", "routes updated")
	for i, r := range d.results {
		d.printf("%s  %9s   %s\n", pad(fmt.Sprintf("  %d  %s", i+1, r.what)), fmtDur(r.detected), r.routes)
	}
	d.printf("  detected: from the action to uplinkd's transition line (the exit, for SIGTERM);\n")
	d.printf("  routes updated: from the kernel event or probe result to the new routes, as uplinkd logs it.\n")
}

func (d *demo) header(n int, title string) {
	d.printf("\n%s %s\n", d.style.bold(fmt.Sprintf("[%d/%d]", n, totalSteps)), d.style.bold(title))
}

func (d *demo) printf(format string, args ...any) {
	fmt.Fprintf(d.out, format, args...)
}

// becomes matches uplink's transition to state.
func becomes(uplink, state string) func(logLine) bool {
	return func(l logLine) bool {
		return l.msg == "transition" && l.get("uplink") == uplink && l.get("to") == state
	}
}

// leaves matches uplink's transition out of state.
func leaves(uplink, state string) func(logLine) bool {
	return func(l logLine) bool {
		return l.msg == "transition" && l.get("uplink") == uplink && l.get("from") == state
	}
}

// freePrefix picks "demo" and three hex digits that no namespace uses.
func freePrefix(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return "", fmt.Errorf("ip netns list: %w", err)
	}
	for range 32 {
		p := fmt.Sprintf("demo%03x", rand.IntN(0x1000))
		if len(namespacesWithPrefix(string(out), p)) == 0 {
			return p, nil
		}
	}
	return "", errors.New("no free demo prefix: remove stale demo*-* namespaces (ip netns list)")
}

func leftNamespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	return namespacesWithPrefix(string(out), prefix), nil
}

// namespacesWithPrefix returns the lab namespaces of prefix in `ip netns
// list` output ("demo3fa-r (id: 0)" lines).
func namespacesWithPrefix(list, prefix string) []string {
	var found []string
	for _, l := range nonEmptyLines(list) {
		if name := strings.Fields(l)[0]; strings.HasPrefix(name, prefix+"-") {
			found = append(found, name)
		}
	}
	return found
}

func nonEmptyLines(s string) []string {
	var lines []string
	for l := range strings.Lines(s) {
		if l = strings.TrimRight(l, " \r\n"); strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// plural renders "1 change" and "3 changes".
func plural(n, noun string) string {
	if n == "1" {
		return n + " " + noun
	}
	return n + " " + noun + "s"
}

// fmtDur prints milliseconds below a second and seconds above.
func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// daemonProc is uplinkd running in the router; a goroutine waits for it.
type daemonProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, valid once exited is closed
}

// startDaemon runs uplinkd in the router namespace. Its context is not the
// demo's: on Ctrl-C the demo sends SIGTERM itself so that uplinkd cleans up
// as it would in production; lab.Close kills it in any case.
func startDaemon(l *lab.Lab, logPath string, args ...string) (*daemonProc, error) {
	cmd, err := l.Start(context.Background(), lab.Router, logPath, args...)
	if err != nil {
		return nil, err
	}
	p := &daemonProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// logLine is one line of uplinkd's log (log/slog text format).
type logLine struct {
	raw     string
	parsed  bool // key=value pairs with level and msg
	time    time.Time
	arrived time.Time // when the follower read it: for lines without time
	level   string
	msg     string
	attrs   []attr
}

type attr struct{ key, value string }

func (l logLine) get(key string) string {
	for _, a := range l.attrs {
		if a.key == key {
			return a.value
		}
	}
	return ""
}

func (l logLine) when() time.Time {
	if !l.time.IsZero() {
		return l.time
	}
	return l.arrived
}

func (l logLine) attrsExcept(skip ...string) string {
	var b strings.Builder
	for _, a := range l.attrs {
		if slices.Contains(skip, a.key) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		v := a.value
		if v == "" || strings.ContainsAny(v, " \"=") {
			v = strconv.Quote(v)
		}
		b.WriteString(a.key + "=" + v)
	}
	return b.String()
}

// parseLogLine parses slog's text format: key=value pairs separated by
// spaces, values quoted (Go syntax) when they hold a space, '"' or '='.
// Lines that are not in that format (a panic, a usage message) come back
// with parsed false and only raw set.
func parseLogLine(s string) logLine {
	l := logLine{raw: s}
	rest := s
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || strings.ContainsAny(rest[:eq], " \"") {
			return logLine{raw: s}
		}
		key := rest[:eq]
		rest = rest[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return logLine{raw: s}
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			val, rest = rest[:end], rest[end:]
		}
		l.attrs = append(l.attrs, attr{key, val})
	}
	l.level, l.msg = l.get("level"), l.get("msg")
	if l.level == "" || l.msg == "" {
		return logLine{raw: s}
	}
	l.parsed = true
	if t, err := time.Parse(time.RFC3339Nano, l.get("time")); err == nil {
		l.time = t
	}
	return l
}

// logFollower tails a log file from its own goroutine and queues the
// parsed lines; the demo's goroutine takes them with Next. The queue never
// blocks the follower, so Stop always returns.
type logFollower struct {
	path   string
	notify chan struct{} // capacity 1: lines were queued
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	queue []logLine
	err   error
}

// followPoll is how often the follower looks for new lines.
const followPoll = 5 * time.Millisecond

func followLog(path string) *logFollower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &logFollower{path: path, notify: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go f.run(ctx)
	return f
}

func (f *logFollower) run(ctx context.Context) {
	defer close(f.done)
	file, err := os.Open(f.path)
	if err != nil {
		f.fail(err)
		return
	}
	defer file.Close()
	r := bufio.NewReader(file)
	var partial strings.Builder
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		stopping := ctx.Err() != nil
		for {
			s, err := r.ReadString('\n')
			partial.WriteString(s)
			if err == io.EOF {
				break
			}
			if err != nil {
				f.fail(err)
				return
			}
			f.push(strings.TrimRight(partial.String(), "\r\n"))
			partial.Reset()
		}
		if stopping {
			// The writer is gone: an unterminated last line is complete.
			if partial.Len() > 0 {
				f.push(partial.String())
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (f *logFollower) push(s string) {
	l := parseLogLine(s)
	l.arrived = time.Now()
	f.mu.Lock()
	f.queue = append(f.queue, l)
	f.mu.Unlock()
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

func (f *logFollower) fail(err error) {
	f.mu.Lock()
	f.err = fmt.Errorf("follow %s: %w", f.path, err)
	f.mu.Unlock()
}

// Next returns the oldest queued line.
func (f *logFollower) Next() (logLine, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return logLine{}, false
	}
	l := f.queue[0]
	f.queue = f.queue[1:]
	return l, true
}

// Notify receives after lines were queued.
func (f *logFollower) Notify() <-chan struct{} { return f.notify }

// Stop reads the file to its end one last time and stops the goroutine.
// It is idempotent.
func (f *logFollower) Stop() {
	f.cancel()
	<-f.done
}

// Err reports why following stopped early, if it did.
func (f *logFollower) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// style adds ANSI colours when they are enabled.
type style struct{ color bool }

func (s style) wrap(code, text string) string {
	if !s.color {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) bold(t string) string   { return s.wrap("1", t) }
func (s style) dim(t string) string    { return s.wrap("2", t) }
func (s style) red(t string) string    { return s.wrap("31", t) }
func (s style) green(t string) string  { return s.wrap("32", t) }
func (s style) yellow(t string) string { return s.wrap("33", t) }

// state colours an uplink state by whether it carries traffic.
func (s style) state(st string) string {
	switch st {
	case "active":
		return s.green(st)
	case "down":
		return s.red(st)
	default:
		return s.yellow(st)
	}
}

// colorOutput reports whether f is a terminal that wants colours.
func colorOutput(f *os.File) bool {
	if os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
