package test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/status"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/sys/unix"
)

// lteConfig is the [[uplink]] of the lab's third ISP.
const lteConfig = `
[[uplink]]
name = "lte"
interface = "eth3"
gateway = "198.19.30.1"
table = 300
`

// policyConfig: a balanced pair with an LTE backup, VoIP pinned to isp2,
// a guest address and the router's uid 1000-1999 on LTE only (failing
// closed), and one rule per selector.
const policyConfig = `
[[policy]]
name = "default"
tiers = [["isp1", "isp2"], ["lte"]]

[[policy]]
name = "voip"
tiers = [["isp2"], ["isp1"]]

[[policy]]
name = "guest"
tiers = [["lte"]]
last_resort = "unreachable"

[[rule]]
to = ["198.18.0.3/32"]
proto = "udp"
dport = "5060"
policy = "voip"

[[rule]]
from = ["192.0.2.11/32"]
policy = "guest"

[[rule]]
iif = "eth0"
proto = "udp"
sport = "7777"
policy = "voip"

[[rule]]
fwmark = "0x10/0xff"
policy = "voip"

[[rule]]
uid = "1000-1999"
policy = "guest"
`

func newPolicyRig(t *testing.T, policies string) *rig {
	t.Helper()
	r := newRigWith(t, healthConfig()+lteConfig+policies, lab.Options{ThirdISP: true}, 4*time.Minute)
	if err := r.lab.EnableNAT(r.ctx, lab.Masquerade); err != nil {
		t.Fatal(err)
	}
	return r
}

// uplinkByAddr names the uplink of a router address (as NAT leaves it).
var uplinkByAddr = map[netip.Addr]string{
	lab.ISP1RouterAddr.Addr(): "isp1",
	lab.ISP2RouterAddr.Addr(): "isp2",
	lab.ISP3RouterAddr.Addr(): "lte",
}

// probe is one test connection: a UDP flow from a namespace, and the
// `uplinkd explain` arguments that describe it.
type probe struct {
	name    string
	ns      string
	src     netip.AddrPort // invalid address: the router's choice
	dst     netip.AddrPort
	mark    int
	uid     int // > 0: sent by a process of that uid (router only)
	explain []string
}

// egress sends datagrams of p until one reaches the Internet and returns
// the uplink it left by (the address NAT gave it).
func (r *rig) egress(p probe) string {
	r.t.Helper()
	var ln *net.UDPConn
	var err error
	if nerr := testutil.InNS(r.lab.NS(lab.Inet), func() { ln, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(p.dst)) }); nerr != nil || err != nil {
		r.t.Fatalf("%s: listen: %v %v", p.name, nerr, err)
	}
	defer ln.Close()
	// A datagram of an earlier probe to the same destination may still
	// be on its way: each probe's datagrams carry its own token.
	token := fmt.Sprintf("%s-%d-%d", p.name, p.src.Port(), time.Now().UnixNano())
	got := make(chan netip.Addr, 1)
	go func() {
		defer close(got)
		buf := make([]byte, 256)
		_ = ln.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, from, err := ln.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == token {
				got <- from.Addr()
				return
			}
		}
	}()
	stop := make(chan struct{})
	defer close(stop)
	if p.uid > 0 {
		cmd := fmt.Sprintf("for i in $(seq 100); do printf %%s '%s' > /dev/udp/%s/%d; sleep 0.05; done", token, p.dst.Addr(), p.dst.Port())
		c, err := r.lab.Start(r.ctx, p.ns, "", "setpriv", "--reuid", strconv.Itoa(p.uid), "--regid", strconv.Itoa(p.uid),
			"--clear-groups", "bash", "-c", cmd)
		if err != nil {
			r.t.Fatal(err)
		}
		defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	} else {
		// Not connected: a connected socket gives its datagrams a random
		// flow hash that the veth carries into the router, which would
		// then pick a multipath member by it instead of by the ports.
		var conn *net.UDPConn
		if nerr := testutil.InNS(r.lab.NS(p.ns), func() {
			lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) {
					if p.mark != 0 {
						serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, p.mark)
					}
				}); err != nil {
					return err
				}
				return serr
			}}
			var pc net.PacketConn
			pc, err = lc.ListenPacket(r.ctx, "udp4", net.UDPAddrFromAddrPort(p.src).String())
			if err == nil {
				conn = pc.(*net.UDPConn)
			}
		}); nerr != nil || err != nil {
			r.t.Fatalf("%s: socket: %v %v", p.name, nerr, err)
		}
		defer conn.Close()
		go func() {
			for {
				_, _ = conn.WriteToUDPAddrPort([]byte(token), p.dst)
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	a, ok := <-got
	if !ok {
		r.t.Fatalf("%s: nothing arrived at %s", p.name, p.dst)
	}
	return uplinkByAddr[a]
}

var explainVia = regexp.MustCompile(`(?m)^(uplink \S+|last resort \w+)`)

// explain runs `uplinkd explain` in the router and returns its verdict
// line ("uplink isp2", "last resort main") and its whole output.
func (r *rig) explain(args ...string) (string, string) {
	r.t.Helper()
	argv := append([]string{filepath.Join(binDir, "uplinkd"), "explain", "--config", r.cfgPath}, args...)
	out, err := r.lab.Exec(r.ctx, lab.Router, argv...)
	if err != nil {
		r.t.Fatalf("uplinkd explain %v: %v\n%s", args, err, out)
	}
	return explainVia.FindString(out), out
}

func (r *rig) policy(s *status.Snapshot, name string) status.Policy {
	r.t.Helper()
	for _, p := range s.Policies {
		if p.Name == name {
			return p
		}
	}
	r.t.Fatalf("no policy %s in status: %+v", name, s.Policies)
	return status.Policy{}
}

// waitTier waits until status shows policy using tier (0: last resort).
func (r *rig) waitTier(policy string, tier int) {
	r.t.Helper()
	r.waitFor(fmt.Sprintf("policy %s on tier %d", policy, tier), 15*time.Second, func() bool {
		return r.policy(r.status(), policy).Tier == tier
	})
}

// Issue 10: policies in the lab with three ISPs and NAT. Every rule's
// selector sends real packets through its policy, `uplinkd explain`
// agrees with them, the default policy's pair splits by weight and leaves
// the backup alone, and tiers and last resorts follow failures.
func TestPolicies(t *testing.T) {
	r := newPolicyRig(t, policyConfig)
	r.start()
	for _, u := range []string{"isp1", "isp2", "lte"} {
		r.waitState(u, "active", 15*time.Second)
	}
	r.waitTier("default", 1)

	host := func(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
	probes := []struct {
		probe
		want string
	}{
		{probe{"to+proto+dport", lab.Host, host(lab.HostAddr, 40000), host(lab.Target3, 5060), 0, 0,
			[]string{"--from", "192.0.2.10", "--iif", "eth0", "--proto", "udp", "--sport", "40000", "--dport", "5060", "198.18.0.3"}}, "isp2"},
		{probe{"from", lab.Host, host(lab.HostAddr2, 40001), host(lab.Target1, 7000), 0, 0,
			[]string{"--from", "192.0.2.11", "--iif", "eth0", "--proto", "udp", "--sport", "40001", "--dport", "7000", "198.18.0.1"}}, "lte"},
		{probe{"iif+sport", lab.Host, host(lab.HostAddr, 7777), host(lab.Target1, 7001), 0, 0,
			[]string{"--from", "192.0.2.10", "--iif", "eth0", "--proto", "udp", "--sport", "7777", "--dport", "7001", "198.18.0.1"}}, "isp2"},
		{probe{"fwmark", lab.Router, netip.AddrPort{}, host(lab.Target1, 7002), 0x10, 0,
			[]string{"--mark", "0x10", "--proto", "udp", "--dport", "7002", "198.18.0.1"}}, "isp2"},
		{probe{"uid", lab.Router, netip.AddrPort{}, host(lab.Target1, 7003), 0, 1500,
			[]string{"--uid", "1500", "--proto", "udp", "--dport", "7003", "198.18.0.1"}}, "lte"},
	}
	for _, p := range probes {
		via, out := r.explain(p.explain...)
		got := r.egress(p.probe)
		if got != p.want || via != "uplink "+got {
			t.Errorf("%s: packets left by %q, want %q; explain says %q:\n%s", p.name, got, p.want, via, out)
		}
		// Now the flow is tracked: explain shows its pin.
		if p.src.Addr().IsValid() {
			if _, out := r.explain(p.explain...); !strings.Contains(out, "pinned to uplink "+got) {
				t.Errorf("%s: explain does not show the tracked connection's pin to %s:\n%s", p.name, got, out)
			}
		}
	}
	// Unmatched LAN flows: explain agrees with the real egress, which is
	// never the backup.
	for sport := 41000; sport < 41008; sport++ {
		p := probe{"unmatched", lab.Host, host(lab.HostAddr, sport), host(lab.Target1, 7004), 0, 0,
			[]string{"--from", "192.0.2.10", "--iif", "eth0", "--proto", "udp", "--sport", strconv.Itoa(sport), "--dport", "7004", "198.18.0.1"}}
		via, out := r.explain(p.explain...)
		got := r.egress(p)
		if got == "lte" || via != "uplink "+got || !strings.Contains(out, "policy default") {
			t.Errorf("unmatched sport %d: packets left by %q; explain says %q:\n%s", sport, got, via, out)
		}
	}
	split, err := r.lab.Split(r.ctx, 4000)
	if err != nil {
		t.Fatal(err)
	}
	if split["eth3"] != 0 || split["eth1"]+split["eth2"] != 4000 {
		t.Fatalf("default policy split %v: the backup must carry nothing", split)
	}
	if share := float64(split["eth2"]) / 4000; share < 0.72 || share > 0.78 {
		t.Errorf("isp2's share %.3f of the pair (weights 1:3), want 0.75 ± 0.03", share)
	}

	// isp2 fails: voip falls back to isp1, the pair to isp1 alone.
	mark := r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "probing", 10*time.Second)
	r.waitTier("voip", 2)
	r.waitLog(mark, regexp.MustCompile(`msg="policy changed tier" policy=voip from=1 to=2`), 5*time.Second)
	if got := r.egress(probes[0].probe); got != "isp1" {
		t.Errorf("voip with isp2 down left by %s, want isp1", got)
	}
	if via, out := r.explain(probes[0].explain...); via != "uplink isp1" || !strings.Contains(out, "tier 2 of 2") {
		t.Errorf("explain voip with isp2 down: %q\n%s", via, out)
	}
	// The backup stays unused while one of the pair is left.
	r.waitFor("the pair down to isp1", 5*time.Second, func() bool {
		split, err := r.lab.Split(r.ctx, 200)
		return err == nil && split["eth1"] == 200
	})

	// isp1 fails too: the default policy takes its backup tier; voip has
	// no tier left and uses main's default route (via isp1, the
	// administrator's).
	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP1, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp1", "probing", 10*time.Second)
	r.waitTier("default", 2)
	r.waitTier("voip", 0)
	if split, err := r.lab.Split(r.ctx, 200); err != nil || split["eth3"] != 200 {
		t.Fatalf("default policy on its backup tier: split %v, %v", split, err)
	}
	if via, out := r.explain(probes[0].explain...); via != "last resort main" || !strings.Contains(out, "dev eth1") {
		t.Errorf("explain voip with no tier: %q\n%s", via, out)
	}

	// lte fails: the guest's traffic gets an ICMP unreachable at once.
	mark = r.mark()
	if err := r.lab.Blackhole(r.ctx, lab.ISP3, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "lte", "probing", 10*time.Second)
	r.waitTier("guest", 0)
	if via, out := r.explain(probes[1].explain...); via != "last resort unreachable" {
		t.Errorf("explain guest with lte down: %q\n%s", via, out)
	}
	took, err := r.unreachable(host(lab.HostAddr2, 40002), host(lab.Target1, 7005))
	if err != nil {
		t.Fatalf("guest datagram with every guest uplink down: %v, want an ICMP unreachable", err)
	}
	t.Logf("figure: ICMP unreachable to the guest host %v after its datagram", took.Round(time.Microsecond))
	s := r.statusJSON()
	for name, want := range map[string]string{"default": "main", "voip": "main", "guest": "unreachable"} {
		if p := r.policy(s, name); p.Tier != 0 || !p.InEffect || p.LastResort != want {
			t.Errorf("status of policy %s with every uplink down: %+v", name, p)
		}
	}
	r.statusTable(`(?m)^guest\s+252\s+lte\s+last resort unreachable`)

	// A clean stop leaves nothing of the policies behind.
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left behind:\n%s", left)
	}
}

// unreachable sends a datagram from the LAN host and waits for the
// router's ICMP host unreachable.
func (r *rig) unreachable(src, dst netip.AddrPort) (time.Duration, error) {
	var conn net.Conn
	var err error
	if nerr := testutil.InNS(r.lab.NS(lab.Host), func() {
		// Linux reports a host unreachable (not a "hard" error) to a UDP
		// socket only with IP_RECVERR.
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(src), Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1) }); err != nil {
				return err
			}
			return serr
		}}
		conn, err = d.Dial("udp4", dst.String())
	}); nerr != nil || err != nil {
		return 0, errors.Join(nerr, err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("x")); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 16))
	if !errors.Is(err, unix.EHOSTUNREACH) && !errors.Is(err, unix.ENETUNREACH) {
		return 0, fmt.Errorf("read: %v", err)
	}
	return time.Since(start), nil
}

func netipAP(a netip.Addr, port int) netip.AddrPort { return netip.AddrPortFrom(a, uint16(port)) }
