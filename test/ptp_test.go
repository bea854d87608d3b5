package test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// pppConfig: isp1 as usual and a point-to-point uplink on ppp0, towards
// ISP3, which exists only while its session runs.
const pppConfig = `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
# Every fault below is a flap: no damping.
flap_limit = 0

[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
weight = 1
table = 100

[[uplink]]
name = "ppp"
interface = "ppp0"
gateway = "none"
weight = 2
table = 300
`

// TestPointToPoint: a tun-based point-to-point link created after uplinkd
// started joins through `default dev ppp0` routes, balances by weight,
// fails over on an upstream blackhole and on carrier loss, and is
// followed when its interface is deleted and created again.
func TestPointToPoint(t *testing.T) {
	r := newRigWith(t, pppConfig, lab.Options{ThirdISP: true}, 3*time.Minute)
	r.writeConfig(pppConfig)
	r.start()
	r.waitOnly("eth1")
	if u := uplinkOf(t, r.status(), "ppp"); u.State != "down" || u.Reason != "interface ppp0 does not exist" {
		t.Fatalf("ppp before its session: %s %q", u.State, u.Reason)
	}
	labtool := filepath.Join(binDir, "labtool")

	// The session comes up after the first reconcile: its link event
	// brings the uplink in.
	mark := r.mark()
	session, err := r.lab.StartPointToPoint(r.ctx, labtool, r.dir)
	if err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, "ppp", "probing", 5*time.Second)
	if !strings.Contains(line, "address 198.18.50.2/32, point-to-point") {
		t.Errorf("ppp joined with %s", line)
	}
	r.waitTransition(mark, "ppp", "active", 10*time.Second)
	r.waitMembers("eth1/1", "ppp0/2")
	if tb := r.table("300"); !strings.Contains(tb, "default dev ppp0 proto 201 scope link src 198.18.50.2") {
		t.Fatalf("table 300:\n%s", tb)
	}
	if rules := r.ip(lab.Router, "rule"); !strings.Contains(rules, "from 198.18.50.2 lookup 300") {
		t.Fatalf("no source rule for ppp0's local address:\n%s", rules)
	}
	const n = 1500
	split, err := r.lab.Split(r.ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	share := float64(split["ppp0"]) / n
	t.Logf("split over %d flows: %v (ppp0 %.1f%%)", n, split, 100*share)
	if share < 0.60 || share > 0.73 || split["eth1"]+split["ppp0"] != n {
		t.Fatalf("split %v: want ppp0 two thirds ± 6%%", split)
	}

	// Upstream blackhole: its probes fail.
	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP3, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "ppp", "probing", 10*time.Second)
	r.waitOnly("eth1")
	if err := r.lab.Blackhole(r.ctx, lab.ISP3, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "ppp", "active", 10*time.Second)
	r.waitMembers("eth1/1", "ppp0/2")

	// Carrier loss, on the event.
	mark = r.mark()
	if err := session.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	if line := r.waitTransition(mark, "ppp", "down", 5*time.Second); !strings.Contains(line, "no carrier on ppp0") {
		t.Fatalf("carrier loss: %s", line)
	}
	r.waitOnly("eth1")
	if err := session.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "ppp", "active", 10*time.Second)
	r.waitMembers("eth1/1", "ppp0/2")

	// The session ends (its interface goes) and starts again.
	mark = r.mark()
	if err := session.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = session.Wait()
	// The kernel takes the interface down, then deletes it: uplinkd
	// follows both events, so the transition may give either reason, and
	// the state then says it is gone.
	if line := r.waitTransition(mark, "ppp", "down", 5*time.Second); !strings.Contains(line, "interface ppp0 does not exist") &&
		!strings.Contains(line, "ppp0 is administratively down") {
		t.Fatalf("session end: %s", line)
	}
	r.waitFor("ppp's reason: its interface is gone", 5*time.Second, func() bool {
		return uplinkOf(t, r.status(), "ppp").Reason == "interface ppp0 does not exist"
	})
	r.waitOnly("eth1")
	if session, err = r.lab.StartPointToPoint(r.ctx, labtool, r.dir); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "ppp", "active", 10*time.Second)
	r.waitMembers("eth1/1", "ppp0/2")

	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left behind:\n%s", left)
	}
	if err := session.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := session.Wait(); err != nil {
		t.Fatalf("tunpair: %v", err)
	}
}
