package test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// Issue 9, acceptance "firewall reload", with real connections: a foreign
// `flush ruleset` in the router (google/nftables FlushRuleset, in one
// transaction with the administrator's own rules, here the lab's
// masquerade, as `nft -f` of a ruleset starting with `flush ruleset` does)
// removes uplinkd's table; uplinkd restores it at once and
// counts the restore in `uplinkd status --json`; no established connection
// moves, loses a UDP sequence number or sees a reset, also across a
// weight change after the restore (which moves unpinned connections), and
// new connections split by the new weights.
func TestFirewallReloadKeepsPins(t *testing.T) {
	config := coreConfig("")
	r := newNATRig(t, config, lab.Options{}, 3*time.Minute)
	r.start()
	r.waitBoth()
	f := r.startFlows(lab.FlowOptions{})
	f.waitEchoedAfter(nil, time.Now(), 30*time.Second) // every flow past its first records
	before := f.waitEstablished(30 * time.Second)
	kept := established(before)
	mark := r.mark()
	at := time.Now()
	if err := r.lab.ReloadFirewall(lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	line := r.waitLog(mark, regexp.MustCompile(`nftables table was removed or changed by someone else`), 20*time.Second)
	t.Logf("FIGURE firewall reload: table restored %v after the flush was sent", logTime(t, line).Sub(at).Round(time.Millisecond))
	if !r.hasPinTable() {
		t.Fatal("table not restored")
	}
	if p := r.statusJSON().Pinning; !p.On || p.Restores != 1 {
		t.Fatalf("uplinkd status --json: pinning %+v, want on with 1 restore", p)
	}
	// The pins work again: a weight change (1:3 -> 1:1), which would move
	// unpinned connections, moves none.
	r.writeConfig(strings.Replace(config, "weight = 3", "weight = 1", 1))
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitMembers("eth1/1", "eth2/1")
	after := f.waitEchoedAfter(kept, time.Now(), 30*time.Second) // the established connections' echoes since
	checkKept(t, "firewall reload, then a weight change", kept, at, before, after)
	if len(kept) < 256 {
		t.Errorf("only %d of 256 connections established before the reload: %s", len(kept), before.Summary())
	}
	checkSplit(t, "256 new connections after the reload", f.open(128, 128), map[string]int{lab.ISP1: 1, lab.ISP2: 1}, 10)
}
