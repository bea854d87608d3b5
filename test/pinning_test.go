package test

import (
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netns"
)

// nft runs fn with an nftables connection in the router's namespace.
func (r *rig) nft(fn func(c *nftables.Conn) error) {
	r.t.Helper()
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		r.t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := fn(c); err != nil {
		r.t.Fatal(err)
	}
}

// hasPinTable says whether the router has uplinkd's nftables table.
func (r *rig) hasPinTable() bool {
	r.t.Helper()
	found := false
	r.nft(func(c *nftables.Conn) error {
		tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		for _, t := range tables {
			found = found || t.Name == "uplinkd"
		}
		return err
	})
	return found
}

// srcValidMark reads net.ipv4.conf.<dev>.src_valid_mark in the router.
func (r *rig) srcValidMark(dev string) string {
	r.t.Helper()
	out, err := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/ipv4/conf/"+dev+"/src_valid_mark")
	if err != nil {
		r.t.Fatalf("src_valid_mark of %s: %v: %s", dev, err, out)
	}
	return strings.TrimSpace(out)
}

// fwmarkRules lists uplinkd's fwmark rules by table ("lookup 100").
func (r *rig) fwmarkRules() []string {
	var out []string
	for _, l := range strings.Split(r.ip(lab.Router, "rule"), "\n") {
		if strings.Contains(l, "fwmark") && strings.Contains(l, "proto 201") {
			out = append(out, regexp.MustCompile(`lookup \d+`).FindString(l))
		}
	}
	return out
}

// Issue 9, pinning as the daemon runs it: the table is installed with the
// routing, restored at once after a firewall reload (`nft flush ruleset`),
// adopted after kill -9 and SIGUSR2 (an uplink that went down meanwhile
// is unpinned and flushed at start), and removed by SIGTERM, which also
// restores src_valid_mark. An uplink that goes down loses its fwmark rule
// and its connections are deleted by mark.
func TestPinningLifecycle(t *testing.T) {
	r := newRig(t, coreConfig(""))
	svm := r.srcValidMark("eth1")
	r.start()
	r.waitBoth()
	if !r.hasPinTable() {
		t.Fatal("no nftables table inet uplinkd while running")
	}
	if got := r.srcValidMark("eth1"); got != "1" {
		t.Fatalf("src_valid_mark of eth1: %s", got)
	}
	r.waitFor("fwmark rules of both uplinks", 5*time.Second, func() bool { return len(r.fwmarkRules()) == 2 })

	// A firewall reload flushes every table: restored at once, counted.
	mark := r.mark()
	r.nft(func(c *nftables.Conn) error {
		c.FlushRuleset()
		return c.Flush()
	})
	r.waitLog(mark, regexp.MustCompile(`nftables table was removed or changed by someone else`), 5*time.Second)
	if !r.hasPinTable() {
		t.Fatal("table not restored")
	}
	if s := r.statusJSON(); !s.Pinning.On || s.Pinning.Restores != 1 {
		t.Fatalf("status pinning: %+v", s.Pinning)
	}

	// isp2 goes down: its fwmark rule goes, its entries are deleted by mark.
	mark = r.mark()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 family=ipv4 mark=0x[0-9a-f]+ deleted=\d+`), 5*time.Second)
	if got := r.fwmarkRules(); len(got) != 1 || got[0] != "lookup 100" {
		t.Fatalf("fwmark rules with isp2 down: %v", got)
	}
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitBoth()
	r.waitFor("fwmark rules of both uplinks", 5*time.Second, func() bool { return len(r.fwmarkRules()) == 2 })

	// kill -9 and SIGUSR2 leave the table; the next start adopts it.
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGUSR2} {
		r.stop(sig)
		if !r.hasPinTable() {
			t.Fatalf("table gone after %v", sig)
		}
		mark = r.mark()
		r.start()
		r.waitLog(mark, regexp.MustCompile(`nftables table adopted as the kernel has it`), 5*time.Second)
		r.waitBoth()
	}

	// isp2 loses its carrier while no uplinkd runs: the next start drops
	// its pin and flushes its connections.
	r.stop(syscall.SIGKILL)
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	mark = r.mark()
	r.start()
	r.waitLog(mark, regexp.MustCompile(`msg="conntrack entries flushed" uplink=isp2 `), 5*time.Second)
	if got := r.fwmarkRules(); len(got) != 1 || got[0] != "lookup 100" {
		t.Fatalf("fwmark rules with isp2 down at start: %v", got)
	}

	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit %d", code)
	}
	if r.hasPinTable() {
		t.Fatal("table left after SIGTERM")
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left after SIGTERM:\n%s", left)
	}
	if got := r.srcValidMark("eth1"); got != svm {
		t.Fatalf("src_valid_mark of eth1 after SIGTERM: %s, want the original %s", got, svm)
	}
}

// waitFlows waits until every flow has an echo, and returns the snapshot.
func (r *rig) waitFlows(f *lab.Flows, n int) lab.FlowSnapshot {
	r.t.Helper()
	var s lab.FlowSnapshot
	r.waitFor(fmt.Sprintf("echoes of all %d flows", n), 15*time.Second, func() bool {
		s = f.Snapshot()
		up := 0
		for _, fl := range s.Flows {
			if fl.Uplink != "" {
				up++
			}
		}
		return up == n
	})
	return s
}

// Pinning through the daemon, with real connections under masquerade:
// when isp1 loses its carrier its connections restart on isp2 and isp2's
// stay; when isp1 returns, and across a kill -9 restart, no established
// connection moves, while new ones use both uplinks again.
func TestPinnedConnectionsStay(t *testing.T) {
	r := newRig(t, coreConfig(""))
	if err := r.lab.EnableNAT(r.ctx, lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	r.start()
	r.waitBoth()
	flows, err := r.lab.StartFlows(r.ctx, lab.FlowOptions{TCP: 32, UDP: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer flows.Close()
	before := r.waitFlows(flows, 64).Uplinks("")
	if before[lab.ISP1] == 0 || before[lab.ISP2] == 0 {
		t.Fatalf("flows by uplink: %v, want both", before)
	}

	down := time.Now()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	r.waitFor("every flow on isp2", 15*time.Second, func() bool {
		return flows.Snapshot().Uplinks("udp")[lab.ISP2] == 32
	})
	for _, f := range flows.Snapshot().MovedAfter(down) {
		if f.Changes[0].Uplink != lab.ISP1 {
			t.Errorf("flow %d (%s) of %s moved when isp1 failed: %+v", f.Flow, f.Proto, f.Changes[0].Uplink, f.Changes)
		}
	}

	if err := r.lab.CarrierUp(r.ctx, lab.ISP1); err != nil {
		t.Fatal(err)
	}
	r.waitBoth()
	back := time.Now()
	mark := r.mark()
	r.stop(syscall.SIGKILL)
	r.start()
	r.waitTransition(mark, "isp1", "active", 10*time.Second)
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	ids, err := flows.Add(r.ctx, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // echoes of the established flows after the restart
	s := flows.Snapshot()
	if moved := s.MovedAfter(back); len(moved) > 0 {
		t.Errorf("%d established flows moved after isp1 returned or across the restart, first %+v", len(moved), moved[0])
	}
	fresh := r.waitFlows(flows, 128).Only(ids).Uplinks("")
	t.Logf("new flows after the return and the restart: %v", fresh)
	if fresh[lab.ISP1] == 0 || fresh[lab.ISP2] == 0 {
		t.Errorf("new flows by uplink: %v, want both", fresh)
	}
}
