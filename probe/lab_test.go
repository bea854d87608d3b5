package probe

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/sys/unix"
)

// lab is a router namespace r whose uplink eth1 (198.51.100.2/24) is a veth
// into an ISP namespace i (up0, 198.51.100.1/24) that owns the probe targets
// 198.18.0.1 and 198.18.0.2 on its loopback. As on the real router, r's main
// table has no route to the targets: only the policy rule
// `from 198.51.100.2 lookup 100` leads there.
type lab struct {
	t    *testing.T
	r, i string
}

// newNamespaces makes the router and ISP namespaces of a lab, named
// prefix and a random part, deleted when the test ends.
func newNamespaces(t *testing.T, prefix string) *lab {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	l := &lab{t: t, r: name + "-r", i: name + "-i"}
	for _, ns := range []string{l.r, l.i} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	return l
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testutil.RequirePriv(t)
	l := newNamespaces(t, "pr-")
	l.ip(l.r, "link", "add", "eth1", "type", "veth", "peer", "name", "up0", "netns", l.i)
	l.ip(l.r, "addr", "add", "198.51.100.2/24", "dev", "eth1")
	l.ip(l.i, "addr", "add", "198.51.100.1/24", "dev", "up0")
	l.ip(l.i, "addr", "add", "198.18.0.1/32", "dev", "lo")
	l.ip(l.i, "addr", "add", "198.18.0.2/32", "dev", "lo")
	for _, ns := range []string{l.r, l.i} {
		l.ip(ns, "link", "set", "lo", "up")
	}
	l.ip(l.r, "link", "set", "eth1", "up")
	l.ip(l.i, "link", "set", "up0", "up")
	l.ip(l.r, "route", "add", "198.18.0.0/15", "via", "198.51.100.1", "dev", "eth1", "table", "100")
	l.ip(l.r, "rule", "add", "from", "198.51.100.2", "lookup", "100", "pref", "1000")
	return l
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// ip runs `ip -n ns args...`.
func (l *lab) ip(ns string, args ...string) {
	l.t.Helper()
	run(l.t, "ip", append([]string{"-n", ns}, args...)...)
}

// sysctl sets a sysctl inside namespace ns (never in the host's).
func (l *lab) sysctl(ns, kv string) {
	l.t.Helper()
	run(l.t, "ip", "netns", "exec", ns, "sysctl", "-qw", kv)
}

// inNS runs fn on a thread switched into namespace ns.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	if err := testutil.InNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// startInErr starts a prober whose socket lives in namespace ns and stops it
// when the test ends.
func startInErr(t *testing.T, ns string, cfg Config, out chan<- Result) (*Prober, error) {
	t.Helper()
	var p *Prober
	var err error
	inNS(t, ns, func() { p, err = Start(cfg, out) })
	if p != nil {
		t.Cleanup(p.Stop)
	}
	return p, err
}

func startIn(t *testing.T, ns string, cfg Config, out chan<- Result) *Prober {
	t.Helper()
	p, err := startInErr(t, ns, cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// collector reads a prober's results and checks what every result must
// satisfy: the prober's uplink and generation, and rounds 1, 2, 3, ...
type collector struct {
	t    *testing.T
	cfg  Config
	out  <-chan Result
	last uint64
}

func (c *collector) next() Result {
	c.t.Helper()
	select {
	case r := <-c.out:
		c.check(r)
		return r
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: no result after round %d", c.cfg.Uplink, c.last)
		return Result{}
	}
}

func (c *collector) check(r Result) {
	c.t.Helper()
	if r.Uplink != c.cfg.Uplink || r.Gen != c.cfg.Gen {
		c.t.Errorf("result %+v: want uplink %s gen %d", r, c.cfg.Uplink, c.cfg.Gen)
	}
	if r.Round != c.last+1 {
		c.t.Errorf("%s: round %d after round %d", c.cfg.Uplink, r.Round, c.last)
	}
	c.last = r.Round
}

// waitFor reads results until one has Good == good, which must happen
// within the first within results, and then n-1 more that have it too; it
// returns those n.
func (c *collector) waitFor(good bool, n, within int) []Result {
	c.t.Helper()
	return c.waitUntil(func(r Result) bool { return r.Good == good }, n, within)
}

func (c *collector) waitUntil(ok func(Result) bool, n, within int) []Result {
	c.t.Helper()
	for i := 0; i < within; i++ {
		r := c.next()
		if !ok(r) {
			continue
		}
		run := []Result{r}
		for len(run) < n {
			if r = c.next(); !ok(r) {
				c.t.Fatalf("%s: round %d does not match after %d that did: %+v", c.cfg.Uplink, r.Round, len(run), r)
			}
			run = append(run, r)
		}
		return run
	}
	c.t.Fatalf("%s: no matching round within %d rounds (last %d)", c.cfg.Uplink, within, c.last)
	return nil
}

// change discards the results already delivered, runs fn and returns how
// many results may still reflect the state before it: the rounds that can
// be in flight, waiting for their timeout, while fn ran, plus a margin.
func (c *collector) change(fn func()) int {
	c.t.Helper()
	for drained := false; !drained; {
		select {
		case r := <-c.out:
			c.check(r)
		default:
			drained = true
		}
	}
	start := time.Now()
	fn()
	return int((c.cfg.Timeout+time.Since(start))/c.cfg.Interval) + 3
}

// respond answers echo requests for addr in the lab's ISP namespace from a
// raw socket: for every request, policy returns the delays after which to
// send a copy of the reply (none: no reply). With
// net.ipv4.icmp_echo_ignore_all=1 these are the only replies.
func (l *lab) respond(t *testing.T, addr netip.Addr, policy func(echo) []time.Duration) {
	t.Helper()
	var f *os.File
	var err error
	inNS(t, l.i, func() {
		var fd int
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMP)
		if err != nil {
			return
		}
		if err = unix.Bind(fd, &unix.SockaddrInet4{Addr: addr.As4()}); err != nil {
			unix.Close(fd)
			return
		}
		f = os.NewFile(uintptr(fd), "responder")
	})
	if err != nil {
		t.Fatalf("responder socket: %v", err)
	}
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(done)
		f.Close()
		wg.Wait()
	})
	sendTo := func(dst netip.Addr, msg []byte) {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.Sendto(int(fd), msg, 0, &unix.SockaddrInet4{Addr: dst.As4()})
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, readBuf)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			e, err := parseEcho(buf[:n])
			if err != nil || e.Type != icmpEchoRequest || e.Dst != addr {
				continue
			}
			msg := marshalEcho(icmpEchoReply, e.ID, e.Seq, e.Payload)
			for _, d := range policy(e) {
				if d == 0 {
					sendTo(e.Src, msg)
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					select {
					case <-time.After(d):
						sendTo(e.Src, msg)
					case <-done:
					}
				}()
			}
		}
	}()
}
