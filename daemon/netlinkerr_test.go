package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeKernel holds routes and rules and records every write.
type fakeKernel struct {
	routes  []netlink.Route
	rules   []netlink.Rule
	writes  []string
	failDel error // returned by RouteDel
}

func (k *fakeKernel) RouteListFiltered(_ int, f *netlink.Route, _ uint64) ([]netlink.Route, error) {
	var out []netlink.Route
	for _, r := range k.routes {
		if r.Protocol == f.Protocol {
			out = append(out, r)
		}
	}
	return out, nil
}
func (k *fakeKernel) RouteReplace(r *netlink.Route) error {
	k.writes = append(k.writes, fmt.Sprintf("replace route table %d %v", r.Table, r.Dst))
	return nil
}
func (k *fakeKernel) RouteDel(r *netlink.Route) error {
	if k.failDel != nil {
		return k.failDel
	}
	k.writes = append(k.writes, fmt.Sprintf("delete route table %d %v", r.Table, r.Dst))
	return nil
}
func (k *fakeKernel) RuleList(int) ([]netlink.Rule, error) { return k.rules, nil }
func (k *fakeKernel) RuleAdd(r *netlink.Rule) error {
	k.writes = append(k.writes, fmt.Sprintf("add rule %d", r.Priority))
	return nil
}
func (k *fakeKernel) RuleDel(r *netlink.Rule) error {
	k.writes = append(k.writes, fmt.Sprintf("delete rule %d", r.Priority))
	return nil
}

// A failed read of links and addresses, transient or not, must neither
// remove nor change installed routing: nothing is planned from stale
// observations, the failure is counted and shown, and the read is retried.
func TestDumpErrorKeepsRouting(t *testing.T) {
	for _, tt := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"interrupted dump", events.ErrDumpInterrupted, true},
		{"EBUSY", fmt.Errorf("dump links: %w", unix.EBUSY), true},
		{"ENOBUFS", fmt.Errorf("dump links: %w", unix.ENOBUFS), true},
		{"other", errors.New("dump links: decode: message shorter than its fixed header"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := testDaemon(t)
			proto := d.cfg.Routing.RouteProtocol
			// What an earlier run installed: isp1's default route.
			k := &fakeKernel{routes: []netlink.Route{{
				Family: netlink.FAMILY_V4, Table: 100, Protocol: netlink.RouteProtocol(proto),
				Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Gw: net.ParseIP("198.51.100.1").To4(), LinkIndex: 3,
			}}}
			fail := true
			d.use(&Kernel{
				Routing: reconciler{&netops.Reconciler{K: k, Protocol: proto}},
				State: dumpFunc(func(context.Context) (events.Snapshot, error) {
					if fail {
						return events.Snapshot{}, tt.err
					}
					return events.Snapshot{
						Links: []events.Link{{Index: 3, Name: "eth1", AdminUp: true, Carrier: true}},
						Addrs: []events.Addr{{Index: 3, Prefix: netip.MustParsePrefix("198.51.100.2/24")}},
					}, nil
				}),
			})
			bal := netops.Multipath
			d.balancer.Store(&bal)
			d.needDump, d.needReconcile = true, true
			for i := range 3 { // the first read and two retries
				d.settle(context.Background())
				if !d.backoff {
					t.Fatalf("read %d failed, but the next one does not wait for the retry timer", i+1)
				}
				d.settle(context.Background()) // woken by something else: no read
				d.backoff = false              // the retry timer fired
			}
			if len(k.writes) > 0 {
				t.Fatalf("a failed read changed the routing: %q", k.writes)
			}
			n := d.netlink
			wantTransient := uint64(0)
			if tt.transient {
				wantTransient = 3
			}
			if n.Errors != 3 || n.Transient != wantTransient || n.LastError == "" || d.reconcile.Runs != 0 {
				t.Fatalf("netlink status %+v, %d reconciles", n, d.reconcile.Runs)
			}
			if s := d.snapshot(); s.Netlink.LastError == "" {
				t.Fatal("status does not say the daemon is failing")
			}
			if d.ready {
				t.Fatal("ready before the kernel was read")
			}

			fail = false
			d.backoff = false
			d.settle(context.Background())
			if d.reconcile.Runs != 1 || len(k.writes) == 0 || d.netlink.LastError != "" || !d.ready {
				t.Fatalf("after a good read: %d reconciles, writes %q, last error %q", d.reconcile.Runs, k.writes, d.netlink.LastError)
			}
		})
	}
}

// A subscription that cannot be made is counted, shown and made again
// with backoff; it never ends the loop (which would remove the routing on
// the way out). Only the context does.
func TestSubscribeErrorRetried(t *testing.T) {
	d := testDaemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tries := 0
	d.use(&Kernel{Events: subscribeFunc(func() (Subscription, error) {
		tries++
		if tries == 4 {
			cancel()
		}
		return nil, fmt.Errorf("join group link: %w", unix.EINTR)
	})})
	done := make(chan struct{})
	go func() {
		d.watch(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not return after its context was cancelled")
	}
	if n := d.netlink; tries != 4 || n.Resubscribes != 3 || n.Errors != 3 || n.Transient != 3 || !strings.Contains(n.LastError, "EINTR") && !strings.Contains(n.LastError, "interrupted") {
		t.Fatalf("%d subscriptions tried, netlink status %+v", tries, n)
	}
}

// dumpFunc is a StateReader that dumps with the function and knows no
// default routes.
type dumpFunc func(context.Context) (events.Snapshot, error)

func (f dumpFunc) Dump(ctx context.Context) (events.Snapshot, error) { return f(ctx) }
func (dumpFunc) DefaultRoutes(context.Context, int) ([]events.DefaultRoute, error) {
	return nil, nil
}

// subscribeFunc is a Subscriber that subscribes with the function.
type subscribeFunc func() (Subscription, error)

func (f subscribeFunc) Subscribe() (Subscription, error) { return f() }
