package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/probe"
	"github.com/vishvananda/netlink"
)

// Kernel is everything the loop reads from and writes to the kernel, as
// small interfaces defined here, where they are used. Run dials the real
// one when Options.Kernel is nil; the loop tests pass fakes and run
// without root. Conntrack may be nil, and the parts only the real kernel
// has (sysctls, nftables) are switched by a flag: off, the loop runs the
// same way without them.
type Kernel struct {
	// State reads links, addresses and default routes.
	State StateReader
	// Events subscribes to the kernel's notifications.
	Events Subscriber
	// Routing installs the plans, the only writer of routes, rules and
	// nexthop objects.
	Routing Router
	// Probers starts the health probes of an uplink.
	Probers ProberStarter
	// Conntrack deletes the entries translated to the address of an
	// uplink that left the balance (without pinning); nil: never.
	Conntrack NATFlusher
	// MultipathHash: set the multipath hash policy at start (and on
	// reload), restore the original on a clean stop.
	MultipathHash bool
	// Pinning: open uplinkd's nftables table, its conntrack flusher and
	// src_valid_mark (package pin); false: pinning off.
	Pinning bool

	// close releases what dialKernel opened.
	close func()
}

// StateReader reads the kernel's state the loop observes (events.Dump,
// events.DefaultRoutes).
type StateReader interface {
	// Dump lists the links and addresses.
	Dump(ctx context.Context) (events.Snapshot, error)
	// DefaultRoutes lists the default routes through the link index, in
	// every table.
	DefaultRoutes(ctx context.Context, index int) ([]events.DefaultRoute, error)
}

// Subscriber subscribes to kernel notifications. Subscribe joins the
// groups before it returns: every change made after it returns is
// delivered by Run.
type Subscriber interface {
	Subscribe() (Subscription, error)
}

// Subscription is one subscription (*events.Monitor). Run delivers its
// events until ctx is done (then it returns nil) or the subscription
// breaks (then it returns why); it is called once.
type Subscription interface {
	Run(ctx context.Context, out chan<- events.Event) error
	// SetFilter narrows the events Run delivers; it may be called from
	// any goroutine, at any time.
	SetFilter(events.Filter) error
}

// Router installs routing plans (netops.Reconciler): Reconcile makes the
// kernel match a plan, Cleanup removes everything of the protocol, HoldsFor
// reads what an earlier run left of one family.
type Router interface {
	Reconcile(netops.Desired) (netops.Result, error)
	Cleanup() (netops.Result, error)
	HoldsFor(f netops.Family, balanceTable, rulePriority int) (netops.Held, error)
	// SetProtocol makes the router own the objects of protocol from now
	// on (a reload changed route_protocol).
	SetProtocol(protocol int)
	// Nexthops is the socket for nexthop objects; nil when the kernel
	// has none (the balancer is then a multipath route).
	Nexthops() netops.NexthopKernel
}

// ProberStarter starts an uplink's prober. Its results arrive on out, the
// loop's channel, until Stop returns.
type ProberStarter interface {
	Start(cfg probe.Config, out chan<- probe.Result) (Prober, error)
}

// Prober is a running prober (*probe.Prober).
type Prober interface {
	Stop()
}

// NATFlusher deletes the conntrack entries translated to an address
// (*netops.Conntrack).
type NATFlusher interface {
	FlushNAT(addr netip.Addr) (deleted int, err error)
}

// use makes k the kernel the loop works with.
func (d *Daemon) use(k *Kernel) {
	d.kern = k
	d.rec, d.ct = k.Routing, k.Conntrack
}

// hashOn says whether the loop sets the multipath hash policy.
func (d *Daemon) hashOn() bool { return d.kern != nil && d.kern.MultipathHash }

// dialKernel opens the real kernel's sockets for the calling thread's
// network namespace: a failure of the route socket is fatal, the others
// only cost what they serve (logged).
func dialKernel(log *slog.Logger, protocol, eventBuffer int) (_ *Kernel, err error) {
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				log.Warn("closing a netlink socket", "err", cerr)
			}
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	h, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	closers = append(closers, func() error { h.Close(); return nil })
	kh, err := netops.NewHandle(h, 0)
	if err != nil {
		return nil, err
	}
	closers = append(closers, kh.Close)
	rec := &netops.Reconciler{K: kh, Protocol: protocol}
	// The loop reports every routing event to it (note, RouterCache).
	rec.EnableCache()
	if nh, err := netops.DialNexthops(0); err != nil {
		log.Warn("no rtnetlink socket for nexthop objects", "err", err)
	} else {
		closers = append(closers, nh.Close)
		rec.NH = nh
	}
	k := &Kernel{
		State:         netlinkState{},
		Events:        netlinkEvents{buffer: eventBuffer},
		Routing:       reconciler{rec},
		MultipathHash: true,
		Pinning:       true,
	}
	// One ICMP socket for every prober, closed after shutdown has stopped
	// them.
	var hub *probe.Hub
	if hub, err = probe.NewHub(); err != nil {
		log.Warn("no shared ICMP socket; every prober opens its own", "err", err)
		hub, err = nil, nil
	} else {
		closers = append(closers, hub.Close)
	}
	k.Probers = hubProbers{hub: hub}
	// Opened whatever flush_conntrack says: a reload may turn it on, and
	// flushLeavers reads the setting of the configuration in force.
	if ct, cerr := netops.DialConntrack(0); cerr != nil {
		log.Warn("cannot flush conntrack entries of uplinks that leave the balance", "err", cerr)
	} else {
		closers = append(closers, ct.Close)
		k.Conntrack = ct
	}
	k.close = closeAll
	return k, nil
}

// netlinkState reads the kernel of the calling thread's namespace.
type netlinkState struct{}

func (netlinkState) Dump(ctx context.Context) (events.Snapshot, error) { return events.Dump(ctx) }

func (netlinkState) DefaultRoutes(ctx context.Context, index int) ([]events.DefaultRoute, error) {
	return events.DefaultRoutes(ctx, index)
}

// netlinkEvents subscribes with a receive buffer of buffer bytes (0:
// events' default).
type netlinkEvents struct{ buffer int }

func (e netlinkEvents) Subscribe() (Subscription, error) {
	var m *events.Monitor
	var err error
	if e.buffer > 0 {
		m, err = events.SubscribeBuffer(e.buffer)
	} else {
		m, err = events.Subscribe()
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// reconciler is netops' Reconciler as a Router.
type reconciler struct{ *netops.Reconciler }

func (r reconciler) SetProtocol(protocol int)       { r.Protocol = protocol }
func (r reconciler) Nexthops() netops.NexthopKernel { return r.NH }

// hubProbers starts probers on the shared ICMP socket (nil: each opens
// its own).
type hubProbers struct{ hub *probe.Hub }

func (s hubProbers) Start(cfg probe.Config, out chan<- probe.Result) (Prober, error) {
	cfg.Hub = s.hub
	p, err := probe.Start(cfg, out)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// errNoKernel is returned by Run for an Options.Kernel that lacks a part
// the loop cannot run without.
var errNoKernel = errors.New("daemon: Options.Kernel needs State, Events, Routing and Probers")

func (k *Kernel) complete() error {
	if k.State == nil || k.Events == nil || k.Routing == nil || k.Probers == nil {
		return errNoKernel
	}
	return nil
}
