package test

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/kernelview"
	"github.com/uplinkd/uplinkd/test/lab"
)

// The convergence tests' model of the lab: what the test did to each ISP's
// link, from which the uplinks' required states follow, and the
// configuration's weights. kernelview then says what the kernel must hold.

// convISP is one ISP as the test left it.
type convISP struct {
	name, dev, renamed string // the uplink, its configured interface, the name RenameRouterLink gives it
	gateway            netip.Addr
	table              int
	origAddr           netip.Prefix
	addrs              []netip.Prefix // Readdress picks among these (same subnet as the gateway)

	deleted     bool // DeleteRouterLink, not yet re-created
	away        bool // renamed away from dev
	adminDown   bool // ip link set down on the router
	carrierDown bool // the ISP's end is down
	blackholed  bool // the ISP drops everything to the probe targets
	addr        netip.Prefix
}

func newConvISPs() []*convISP {
	return []*convISP{
		{name: "isp1", dev: "eth1", renamed: "wan1", gateway: lab.ISP1Gateway, table: 100,
			origAddr: lab.ISP1RouterAddr, addr: lab.ISP1RouterAddr,
			addrs: []netip.Prefix{lab.ISP1RouterAddr, netip.MustParsePrefix("198.51.100.3/24"), netip.MustParsePrefix("198.51.100.4/24")}},
		{name: "isp2", dev: "eth2", renamed: "wan2", gateway: lab.ISP2Gateway, table: 200,
			origAddr: lab.ISP2RouterAddr, addr: lab.ISP2RouterAddr,
			addrs: []netip.Prefix{lab.ISP2RouterAddr, netip.MustParsePrefix("203.0.113.3/24"), netip.MustParsePrefix("203.0.113.4/24")}},
	}
}

// present says the router's link exists under its configured name.
func (i *convISP) present() bool { return !i.deleted && !i.away }

// state is the uplink state the lab requires: down without a usable link,
// probing while the ISP drops the probes, else active (degraded is off in
// the configuration and flap damping too).
func (i *convISP) state() string {
	switch {
	case !i.present() || i.adminDown || i.carrierDown:
		return "down"
	case i.blackholed:
		return "probing"
	}
	return "active"
}

// baseWeights are the weights of lab.UplinkConfig.
var baseWeights = map[string]int{"isp1": 1, "isp2": 3}

// convergeConfig is the lab configuration with two probe targets, fast
// verdicts (two rounds), no degraded state, flap damping off, and the
// given weights (probes every 200 ms).
func convergeConfig(weights map[string]int) string {
	// lab.UplinkConfig, with each uplink's weight replaced in turn.
	parts := strings.SplitAfter(lab.UplinkConfig, "weight = ")
	if len(parts) != 3 {
		panic("lab.UplinkConfig has not two weights")
	}
	ups := parts[0] + fmt.Sprint(weights["isp1"]) + parts[1][1:] + fmt.Sprint(weights["isp2"]) + parts[2][1:]
	return `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
interval = "200ms"
down_after = 2
up_after = 2
degraded_loss = 0
degraded_rtt = "0s"
flap_limit = 0
` + ups
}

// convRig is a rig with the model of what the test did to it.
type convRig struct {
	*rig
	isps    []*convISP
	weights map[string]int
	running bool
	// marks are the fwmark each uplink table's rule had when first seen:
	// a pinned connection depends on its mark staying the same, across
	// restarts too.
	marks map[string]string
	steps []string // the current sequence, for the failure message
}

func newConvRig(t *testing.T, limit time.Duration) *convRig {
	t.Helper()
	r := newRigFor(t, convergeConfig(baseWeights), limit)
	return &convRig{rig: r, isps: newConvISPs(), weights: maps(baseWeights), marks: map[string]string{}}
}

func maps(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// step records and logs one step of the sequence.
func (c *convRig) step(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	c.steps = append(c.steps, s)
}

// must fails the test on err, naming the step and the sequence so far.
func (c *convRig) must(err error) {
	c.t.Helper()
	if err != nil {
		c.t.Fatalf("%v\nsequence: %s", err, strings.Join(c.steps, "; "))
	}
}

// want is what the configuration and the required states ask of the
// kernel.
func (c *convRig) want(states map[string]string) kernelview.Want {
	w := kernelview.Want{
		RulePriority: 10000, Protocol: 201, BalanceTable: 250, LANInterfaces: []string{"eth0"},
		MarkMask: 0xff000000, GroupID: groupID, AltGroupID: groupID + 640, NFTable: "uplinkd",
	}
	for _, i := range c.isps {
		w.Uplinks = append(w.Uplinks, kernelview.Uplink{
			Name: i.name, Dev: i.dev, Gateway: i.gateway, Table: i.table, Weight: c.weights[i.name], State: states[i.name],
		})
	}
	return w
}

// required returns the state of every uplink that the lab requires.
func (c *convRig) required() map[string]string {
	m := map[string]string{}
	for _, i := range c.isps {
		m[i.name] = i.state()
	}
	return m
}

// statusStates asks the daemon for its uplinks' states (nil while it does
// not answer, as right after a start).
func (c *convRig) statusStates() map[string]string {
	s, err := status.Get(c.ctx, c.socket)
	if err != nil {
		return nil
	}
	m := map[string]string{}
	for _, u := range s.Uplinks {
		m[u.Name] = u.State
	}
	return m
}

// diff compares the kernel with what states require, plus the stability of
// the marks; empty when they match.
func (c *convRig) diff(states map[string]string) ([]string, *kernelview.View) {
	c.t.Helper()
	v, err := kernelview.Read(c.ctx, c.lab.NS(lab.Router))
	c.must(err)
	d := kernelview.Diff(c.want(states), v)
	for _, r := range v.Rules {
		if r.Protocol == "201" && r.Fwmark != "" {
			if m, ok := c.marks[r.Table]; ok && m != r.Fwmark {
				d = append(d, fmt.Sprintf("the mark of table %s changed from %s: %s", r.Table, m, r.String()))
			}
		}
	}
	return d, v
}

// settle waits until the daemon's status shows every uplink in the state
// the lab requires, then until the kernel matches (the status not having
// moved meanwhile), and fails with the sequence and seed otherwise.
func (c *convRig) settle(seed int64) {
	c.t.Helper()
	want := c.required()
	var got map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for got = c.statusStates(); !equalStates(got, want); got = c.statusStates() {
		if time.Now().After(deadline) {
			c.fail(seed, fmt.Sprintf("status shows %v, the lab requires %v", got, want), nil)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var d []string
	deadline = time.Now().Add(15 * time.Second)
	for {
		var v *kernelview.View
		d, v = c.diff(want)
		if after := c.statusStates(); !equalStates(after, want) {
			d = append(d, fmt.Sprintf("status moved to %v", after))
		}
		if len(d) == 0 {
			for _, r := range v.Rules {
				if r.Protocol == "201" && r.Fwmark != "" {
					c.marks[r.Table] = r.Fwmark
				}
			}
			return
		}
		if time.Now().After(deadline) {
			c.fail(seed, "the kernel does not match the configuration", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func equalStates(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// fail reports a mismatch with everything needed to replay it.
func (c *convRig) fail(seed int64, what string, diff []string) {
	c.t.Helper()
	var rules, routes, nhs string
	if out, err := c.lab.IP(c.ctx, lab.Router, "rule"); err == nil {
		rules = out
	}
	if out, err := c.lab.IP(c.ctx, lab.Router, "route", "show", "table", "all", "proto", "201"); err == nil {
		routes = out
	}
	if out, err := c.lab.IP(c.ctx, lab.Router, "nexthop"); err == nil {
		nhs = out
	}
	c.t.Fatalf("MISMATCH (replay with UPLINKD_SEED=%d): %s\n  %s\nsequence (seed %d): %s\nrequired states: %v, weights %v\nrules:\n%s\nroutes:\n%s\nnexthops:\n%s",
		seed, what, strings.Join(diff, "\n  "), seed, strings.Join(c.steps, "; "), c.required(), c.weights, rules, routes, nhs)
}

// startDaemon starts uplinkd if it is not running.
func (c *convRig) startDaemon() {
	c.t.Helper()
	if !c.running {
		c.start()
		c.running = true
	}
}

// kill kills uplinkd with SIGKILL.
func (c *convRig) kill() {
	c.t.Helper()
	if c.running {
		c.stop(syscall.SIGKILL)
		c.running = false
	}
}

// setWeights writes the configuration with weights and, if uplinkd runs,
// reloads it.
func (c *convRig) setWeights(w map[string]int) {
	c.t.Helper()
	c.weights = maps(w)
	c.writeConfig(convergeConfig(c.weights))
	if !c.running {
		return
	}
	out, stderr, code := c.uplinkd("reload", "--socket", c.socket)
	if code != 0 {
		c.t.Fatalf("uplinkd reload: exit %d: %s%s\nsequence: %s", code, out, stderr, strings.Join(c.steps, "; "))
	}
}

// restore brings the lab back to where it started (every link up under its
// name with its first address, nothing blackholed, the base weights,
// uplinkd running) without waiting for uplinkd.
func (c *convRig) restore() {
	c.t.Helper()
	ctx := c.ctx
	c.startDaemon()
	for _, i := range c.isps {
		if i.deleted {
			c.must(c.lab.RecreateRouterLink(ctx, i.name))
			i.deleted, i.adminDown, i.carrierDown = false, false, false
		}
		if i.away {
			c.must(c.lab.RenameRouterLink(ctx, i.renamed, i.dev))
			i.away, i.adminDown = false, false
		}
		if i.adminDown {
			c.must(c.linkUp(i))
		}
		if i.carrierDown {
			c.must(c.lab.CarrierUp(ctx, i.name))
			i.carrierDown = false
		}
		if i.blackholed {
			c.must(c.lab.Blackhole(ctx, i.name, false))
			i.blackholed = false
		}
		if i.addr != i.origAddr {
			c.must(c.lab.Readdress(ctx, i.name, i.origAddr))
			i.addr = i.origAddr
		}
	}
	if !equalWeights(c.weights, baseWeights) {
		c.setWeights(baseWeights)
	}
}

func equalWeights(a, b map[string]int) bool {
	return a["isp1"] == b["isp1"] && a["isp2"] == b["isp2"]
}

// linkUp sets the router's link up again, with the administrator's default
// route for isp1 that going down removed.
func (c *convRig) linkUp(i *convISP) error {
	if _, err := c.lab.IP(c.ctx, lab.Router, "link", "set", "dev", i.dev, "up"); err != nil {
		return err
	}
	i.adminDown = false
	if i.name == "isp1" {
		_, err := c.lab.IP(c.ctx, lab.Router, "route", "replace", "default", "via", lab.ISP1Gateway.String(), "dev", i.dev)
		return err
	}
	return nil
}
