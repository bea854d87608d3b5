package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Issue 9 (4): main's specific routes come first, for all traffic, so the
// router's replies from its WAN addresses to the LAN go out the LAN, while
// other traffic from a WAN address still leaves through its uplink.
func TestRuleOrderHairpin(t *testing.T) {
	r := newRig(t, coreConfig(""))
	r.start()
	r.waitBoth()
	for _, tc := range []struct {
		from, to, dev string
	}{
		{lab.ISP1RouterAddr.Addr().String(), lab.HostAddr.String(), "dev eth0"},
		{lab.ISP2RouterAddr.Addr().String(), lab.HostAddr.String(), "dev eth0"},
		{lab.ISP1RouterAddr.Addr().String(), "198.18.0.1", "dev eth1"},
		{lab.ISP2RouterAddr.Addr().String(), "198.18.0.1", "dev eth2"},
	} {
		got := r.ip(lab.Router, "route", "get", tc.to, "from", tc.from)
		if !strings.Contains(got, tc.dev) {
			t.Errorf("ip route get %s from %s: %s, want %s", tc.to, tc.from, got, tc.dev)
		}
	}
	// The probes are bound to their device: both uplinks stay active.
	s := r.status()
	for _, name := range []string{"isp1", "isp2"} {
		if u := uplinkOf(t, s, name); u.State != "active" {
			t.Errorf("%s is %s: %s", name, u.State, u.Reason)
		}
	}
}

// deletions watches the router's routes, rules and nexthop objects and
// records every deletion, and every new or replaced route of the balance
// table (a rewrite of the balance is a change on the wire too).
type deletions struct {
	c    *netlink.Conn
	mu   sync.Mutex
	seen []string
	done chan struct{}
}

func watchDeletions(t *testing.T, r *rig) *deletions {
	t.Helper()
	ns, err := netns.GetFromName(r.lab.NS(lab.Router))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(ns)})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_NEXTHOP} {
		if err := c.JoinGroup(g); err != nil {
			t.Fatal(err)
		}
	}
	d := &deletions{c: c, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			msgs, err := c.Receive()
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				var what string
				switch m.Header.Type {
				case unix.RTM_DELROUTE:
					what = "route deleted"
				case unix.RTM_DELRULE:
					what = "rule deleted"
				case unix.RTM_DELNEXTHOP:
					// The startup check creates and deletes two
					// throwaway objects (nexthop_id_base + 254, 255).
					if id := nexthopIDOf(m.Data); id != groupID+254 && id != groupID+255 {
						what = fmt.Sprintf("nexthop %d deleted", id)
					}
				case unix.RTM_NEWROUTE:
					if len(m.Data) >= unix.SizeofRtMsg && balanceTableOf(m.Data) == 250 {
						what = "balance route written"
					}
				}
				if what != "" {
					d.mu.Lock()
					d.seen = append(d.seen, what)
					d.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(d.stop)
	return d
}

// nexthopIDOf returns the NHA_ID of a nexthop message.
func nexthopIDOf(b []byte) int {
	if len(b) < unix.SizeofNhmsg {
		return 0
	}
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofNhmsg:])
	if err != nil {
		return 0
	}
	for ad.Next() {
		if ad.Type() == unix.NHA_ID {
			return int(ad.Uint32())
		}
	}
	return 0
}

// balanceTableOf returns the table of an RTM_NEWROUTE message.
func balanceTableOf(b []byte) int {
	table := int(b[4])
	ad, err := netlink.NewAttributeDecoder(b[unix.SizeofRtMsg:])
	if err != nil {
		return table
	}
	for ad.Next() {
		if ad.Type() == unix.RTA_TABLE {
			table = int(ad.Uint32())
		}
	}
	return table
}

func (d *deletions) stop() {
	d.c.Close()
	<-d.done
}

func (d *deletions) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

// Issue 9 (3): kill -9 then start changes nothing in the kernel: the new
// run adopts the balance route, the rules and the nexthop objects, and
// keeps them through each uplink's first probe verdict.
func TestKillRestartHitless(t *testing.T) {
	r := newRig(t, coreConfig(""))
	r.start()
	r.waitBoth()
	r.waitSettled()
	converged := r.ours()
	r.stop(syscall.SIGKILL)
	w := watchDeletions(t, r)
	mark := r.mark()
	r.start()
	r.waitTransition(mark, "isp1", "active", 10*time.Second)
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitSettled()
	w.stop()
	if got := w.list(); len(got) > 0 {
		t.Fatalf("restart after kill -9 changed the kernel: %v", got)
	}
	if got := r.ours(); atGroupIDs(got) != atGroupIDs(converged) {
		t.Fatalf("after restart:\n%s\nwant:\n%s", got, converged)
	}
	if b, _ := os.ReadFile(r.logPath); strings.Contains(string(b[mark:]), `msg="routing updated"`) {
		t.Fatalf("the restart wrote routing:\n%s", b[mark:])
	}
}

// hashPolicy reads the router's multipath hash policy.
func (r *rig) hashPolicy() string {
	r.t.Helper()
	out, err := r.lab.Exec(r.ctx, lab.Router, "cat", "/proc/sys/net/ipv4/fib_multipath_hash_policy")
	if err != nil {
		r.t.Fatalf("read hash policy: %v: %s", err, out)
	}
	return strings.TrimSpace(out)
}

// SIGUSR2 exits leaving every route, rule and nexthop object (and the hash
// policy) in place; the next start adopts them without a change; SIGTERM
// then removes everything and restores the original hash policy.
func TestSIGUSR2KeepsRouting(t *testing.T) {
	r := newRig(t, coreConfig(""))
	orig := r.hashPolicy()
	r.start()
	r.waitBoth()
	r.waitSettled()
	converged := r.ours()
	if code := r.stop(syscall.SIGUSR2); code != 75 {
		t.Fatalf("SIGUSR2: exit code %d, want 75", code)
	}
	if got := r.ours(); atGroupIDs(got) != atGroupIDs(converged) {
		t.Fatalf("after SIGUSR2:\n%s\nwant:\n%s", got, converged)
	}
	if p := r.hashPolicy(); p != "1" {
		t.Fatalf("hash policy after SIGUSR2: %s, want uplinkd's 1", p)
	}
	w := watchDeletions(t, r)
	mark := r.mark()
	r.start()
	r.waitTransition(mark, "isp2", "active", 10*time.Second)
	r.waitTransition(mark, "isp1", "active", 10*time.Second)
	r.waitSettled()
	w.stop()
	if got := w.list(); len(got) > 0 {
		t.Fatalf("start after SIGUSR2 changed the kernel: %v", got)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left after SIGTERM:\n%s", left)
	}
	if p := r.hashPolicy(); p != orig {
		t.Fatalf("hash policy after SIGTERM: %s, want the original %s", p, orig)
	}
}

// The original multipath hash policy survives a crash: kill -9, start,
// SIGTERM restores the value found before the first start, not the one
// the crashed run left. No uplink has IPv6, so IPv6's policy is never
// touched and the state file holds IPv4's original alone (the format
// before IPv6; test/ipv6_test.go checks a dual-stack run restores both).
func TestHashPolicyAfterCrash(t *testing.T) {
	r := newRig(t, coreConfig(""))
	for _, kv := range []string{"net.ipv4.fib_multipath_hash_policy=2", "net.ipv6.fib_multipath_hash_policy=1"} {
		if out, err := r.lab.Exec(r.ctx, lab.Router, "sysctl", "-w", kv); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	r.start()
	if p := r.hashPolicy(); p != "1" {
		t.Fatalf("hash policy while running: %s, want 1", p)
	}
	if p := r.hashPolicyOf("ipv6"); p != "1" {
		t.Fatalf("IPv6 hash policy while running without IPv6 uplinks: %s, want 1 untouched", p)
	}
	r.stop(syscall.SIGKILL)
	state := filepath.Join(r.dir, "multipath-hash")
	// "policy fields" of IPv4 only.
	if b, err := os.ReadFile(state); err != nil || !regexp.MustCompile(`^2 0$`).MatchString(strings.TrimSpace(string(b))) {
		t.Fatalf("state file after kill -9: %q, %v", b, err)
	}
	r.start()
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if p := r.hashPolicy(); p != "2" {
		t.Fatalf("hash policy after crash and stop: %s, want the original 2", p)
	}
	if p := r.hashPolicyOf("ipv6"); p != "1" {
		t.Fatalf("IPv6 hash policy after crash and stop: %s, want the original 1", p)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("state file left after a clean stop: %v", err)
	}
}
