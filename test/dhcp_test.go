package test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// The leases of the DHCP tests: the first one is the lab's usual isp1
// address; the second, on renewal, moves the router to another prefix and
// gateway on the same link.
var (
	firstLease  = lab.DHCPLease{Addr: lab.ISP1RouterAddr, Gateway: lab.ISP1Gateway}
	secondLease = lab.DHCPLease{Addr: netip.MustParsePrefix("198.18.100.2/24"), Gateway: netip.MustParseAddr("198.18.100.1")}
)

// dhcpConfig: isp1 learns its gateway, isp2 keeps its static one.
func dhcpConfig() string {
	return strings.Replace(healthConfig(), `gateway = "198.51.100.1"`, `gateway = "auto"`, 1)
}

// TestDHCP runs a real DHCP server (dnsmasq) in isp1 and a real DHCP client
// on the router's eth1, with uplinkd learning isp1's gateway from the
// client's default route.
func TestDHCP(t *testing.T) {
	for _, client := range []string{lab.UDHCPC, lab.DHCPCD} {
		t.Run(client, func(t *testing.T) { testDHCP(t, client) })
	}
}

func testDHCP(t *testing.T, client string) {
	testutil.RequireTool(t, "dnsmasq")
	testutil.RequireTool(t, client)
	r := newRig(t, dhcpConfig())
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{client + ".log", "isp1-dnsmasq.log"} {
				b, _ := os.ReadFile(filepath.Join(r.dir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	// eth1 starts unconfigured, as on a router before its DHCP lease;
	// the address going takes the admin's default route with it.
	r.ip(lab.Router, "addr", "flush", "dev", "eth1")
	r.ip(lab.Router, "route", "flush", "table", "main", "default")
	srv, err := r.lab.StartDHCPServer(r.ctx, lab.ISP1, r.dir, firstLease)
	if err != nil {
		t.Fatal(err)
	}
	r.writeConfig(dhcpConfig())
	r.start()
	mark := r.mark()
	r.waitFor("isp1 down without address", 5*time.Second, func() bool {
		u := uplinkOf(t, r.status(), "isp1")
		return u.State == "down" && u.Reason == "eth1 has no IPv4 address"
	})

	// The lease: isp1 joins, through the gateway it learned.
	cl, err := r.lab.StartDHCPClient(r.ctx, client, "eth1", r.dir, "0.3")
	if err != nil {
		t.Fatal(err)
	}
	line := r.waitTransition(mark, "isp1", "probing", 30*time.Second)
	if !strings.Contains(line, "gateway 198.51.100.1") {
		t.Errorf("isp1 joined with reason %s, want the learned gateway", line)
	}
	r.waitTransition(mark, "isp1", "active", 10*time.Second)
	r.waitBoth()
	if tb := r.table("100"); !strings.Contains(tb, "default via 198.51.100.1 dev eth1 proto 201 src 198.51.100.2") {
		t.Fatalf("table 100 after the lease:\n%s", tb)
	}
	clientRoute := regexp.MustCompile(`default via 198\.51\.100\.1 dev eth1 .*metric 1000`)
	if main := r.table("main"); !clientRoute.MatchString(main) {
		t.Fatalf("the client's route is not in main as it made it:\n%s", main)
	}

	if client == lab.UDHCPC {
		// A renewal by a client that deletes its default route and adds
		// it back 300ms later: isp1 stays in the balance.
		mark = r.mark()
		if err := cl.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		r.waitLog(mark, regexp.MustCompile(`msg="default route gone; keeping its gateway for gateway_hold" uplink=isp1`), 10*time.Second)
		r.waitFor("the client's route back", 10*time.Second, func() bool { return clientRoute.MatchString(r.table("main")) })
		// Past the hold: had the gateway not been kept, isp1 would be down.
		time.Sleep(3500 * time.Millisecond)
		if trs := r.transitions(mark, "isp1"); len(trs) > 0 {
			t.Fatalf("the renewal moved isp1: %+v", trs)
		}
	}

	// A renewal with a new address and gateway: the server now leases
	// only the second one, so the client's renewal is refused and it
	// asks again.
	r.ip(lab.ISP1, "addr", "add", netip.PrefixFrom(secondLease.Gateway, 24).String(), "dev", "down0")
	r.ip(lab.Inet, "route", "add", secondLease.Addr.Masked().String(), "via", "198.19.1.1")
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	if _, err = r.lab.StartDHCPServer(r.ctx, lab.ISP1, r.dir, secondLease); err != nil {
		t.Fatal(err)
	}
	w := watchRoutes(t, r)
	mark = r.mark()
	// udhcpc renews on SIGUSR1; dhcpcd ignores the NAK of a renewal and
	// waits for the lease to expire, so it is told to rebind (SIGHUP),
	// as after a link change.
	sig := syscall.SIGUSR1
	if client == lab.DHCPCD {
		sig = syscall.SIGHUP
	}
	if err := cl.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	gw := secondLease.Gateway
	clientAt := w.wait(t, "the client's new default route", 30*time.Second, func(e events.RouteEvent) bool {
		return !e.Deleted && e.Table == 254 && e.Route.Gateway == gw
	})
	oursAt := w.wait(t, "uplinkd's route through the new gateway", 10*time.Second, func(e events.RouteEvent) bool {
		return !e.Deleted && e.Table == 100 && e.Protocol == 201 && e.Route.Gateway == gw
	})
	moved := oursAt.Sub(clientAt)
	t.Logf("figure: %s: table 100 through the new gateway %v after the client's route (race detector on)", client, moved.Round(time.Microsecond))
	if moved < 0 || moved > time.Second {
		t.Errorf("uplinkd followed the client's route after %v", moved)
	}
	r.waitFor("no leftover of the first lease", 5*time.Second, func() bool {
		return !strings.Contains(r.table("100"), "198.51.100.") && !strings.Contains(r.ip(lab.Router, "rule"), "198.51.100.2")
	})
	if tb := r.table("100"); !strings.Contains(tb, "default via 198.18.100.1 dev eth1 proto 201 src 198.18.100.2") {
		t.Fatalf("table 100 after the new lease:\n%s", tb)
	}
	if !strings.Contains(r.ip(lab.Router, "rule"), "from 198.18.100.2 lookup 100") {
		t.Fatalf("no source rule for the new address:\n%s", r.ip(lab.Router, "rule"))
	}
	r.waitTransition(mark, "isp1", "active", 15*time.Second)
	r.waitBoth()

	// The client stops and the address goes: isp1 leaves.
	mark = r.mark()
	if err := cl.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cl.Wait()
	r.ip(lab.Router, "addr", "flush", "dev", "eth1")
	r.waitTransition(mark, "isp1", "down", 5*time.Second)
	r.waitOnly("eth2")
	r.waitFor("table 100 empty", 5*time.Second, func() bool { return !strings.Contains(r.table("100"), "default") })
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// routeWatch records route events in the router's namespace with the time
// the test received them.
type routeWatch struct {
	mu  sync.Mutex
	evs []stampedRoute
	new chan struct{}
}

type stampedRoute struct {
	at time.Time
	ev events.RouteEvent
}

func watchRoutes(t *testing.T, r *rig) *routeWatch {
	t.Helper()
	var mon *events.Monitor
	if err := testutil.InNS(r.lab.NS(lab.Router), func() {
		var err error
		if mon, err = events.Subscribe(); err != nil {
			t.Errorf("subscribe: %v", err)
		}
	}); err != nil || mon == nil {
		t.Fatalf("subscribe in the router: %v", err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	ch := make(chan events.Event, 1024)
	w := &routeWatch{new: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { _ = mon.Run(ctx, ch) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-ch:
				if re, ok := ev.(events.RouteEvent); ok && re.Default {
					w.mu.Lock()
					w.evs = append(w.evs, stampedRoute{time.Now(), re})
					w.mu.Unlock()
					select {
					case w.new <- struct{}{}:
					default:
					}
				}
			}
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return w
}

// wait returns when the first event matching match arrived.
func (w *routeWatch) wait(t *testing.T, what string, timeout time.Duration, match func(events.RouteEvent) bool) time.Time {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		for _, s := range w.evs {
			if match(s.ev) {
				w.mu.Unlock()
				return s.at
			}
		}
		w.mu.Unlock()
		select {
		case <-w.new:
		case <-deadline:
			t.Fatalf("no route event for %s within %v", what, timeout)
		}
	}
}
