package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sort"
	"time"

	"github.com/vishvananda/netns"
)

// FlowPort is the port StartFlows' sink listens on (UDP and TCP).
const FlowPort = 9100

// FlowOptions are the flows StartFlows runs; zero values take the
// defaults.
type FlowOptions struct {
	TCP, UDP int           // connections per protocol; default 128 each
	Interval time.Duration // between two records of a flow; default 20ms
	// HangAfter: a TCP connection with a record unanswered this long,
	// without an error, hung (default 2s).
	HangAfter time.Duration
	// LAN sources, used in turn; default HostAddr and HostAddr2, or with
	// an IPv6 Target the host's address of each ISP's prefix.
	Sources []netip.Addr
	Target  netip.Addr // where the sink listens; default Target1 (IPv6: Target6_1...)
}

// Flows is a running set of LAN flows (see StartFlows).
type Flows struct {
	client *FlowClient
	sink   *FlowSink
}

// StartFlows runs concurrent long-lived TCP connections and UDP flows from
// the LAN host (both its addresses) to an echoing sink in the Internet
// namespace (Target1:FlowPort), inside the test process: the sockets are
// created in the lab's namespaces. Every flow sends a record per interval
// and the sink echoes it with the source address it saw, which with
// EnableNAT names the uplink the flow took (the ISP whose router address it
// is; without NAT every flow shows the LAN address). Snapshot tells, per
// flow, its uplink over time, the longest gap between echoes, lost UDP
// sequence numbers, TCP resets and hangs. Flows run until ctx is done or
// Close.
//
// The same client and sink run as `labtool flows` and `labtool flowsink`.
func (l *Lab) StartFlows(ctx context.Context, opts FlowOptions) (*Flows, error) {
	if opts.TCP == 0 && opts.UDP == 0 {
		opts.TCP, opts.UDP = 128, 128
	}
	if opts.Interval == 0 {
		opts.Interval = 20 * time.Millisecond
	}
	if !opts.Target.IsValid() {
		opts.Target = Target1
	}
	if len(opts.Sources) == 0 {
		opts.Sources = []netip.Addr{HostAddr, HostAddr2}
		if opts.Target.Is6() {
			opts.Sources = nil
			for _, i := range l.isps {
				opts.Sources = append(opts.Sources, plans6[i.name].host)
			}
		}
	}
	sinkAddr := netip.AddrPortFrom(opts.Target, FlowPort)
	var udp *net.UDPConn
	var tcp net.Listener
	err := l.inNS(Inet, func() error {
		var err error
		if udp, err = net.ListenUDP(network("udp", opts.Target), net.UDPAddrFromAddrPort(sinkAddr)); err != nil {
			return err
		}
		if tcp, err = net.Listen(network("tcp", opts.Target), sinkAddr.String()); err != nil {
			udp.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: flow sink: %w", err)
	}
	sink := ServeFlowSink(udp, tcp)
	client, err := StartFlowClient(ctx, FlowClientOptions{
		Sink: sinkAddr, Sources: opts.Sources, TCP: opts.TCP, UDP: opts.UDP,
		Interval: opts.Interval, HangAfter: opts.HangAfter,
		Dial: func(ctx context.Context, network string, laddr netip.Addr, raddr netip.AddrPort) (net.Conn, error) {
			var c net.Conn
			err := l.inNS(Host, func() (err error) {
				c, err = dialFrom(ctx, network, laddr, raddr)
				return err
			})
			return c, err
		},
		Uplink: l.uplinkOf,
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("lab: %w", err), sink.Close())
	}
	return &Flows{client: client, sink: sink}, nil
}

// uplinkOf names the ISP whose router address (IPv4, or IPv6 on its
// access link) is a, or returns a.
func (l *Lab) uplinkOf(a netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, u := range l.uplinks {
		if u.addr.Addr() == a {
			return name
		}
		if p := l.plan6(name); l.opts.IPv6 && p.routerAddr.IsValid() && p.routerAddr.Addr() == a {
			return name
		}
	}
	return a.String()
}

// InNS runs fn on a thread in the lab namespace ns (short name), for
// tests that open sockets there: sockets keep the namespace they were
// created in.
func (l *Lab) InNS(ns string, fn func() error) error { return l.inNS(ns, fn) }

// inNS runs fn on a thread in the lab namespace ns (short name): sockets
// keep the namespace they were created in.
func (l *Lab) inNS(ns string, fn func() error) error {
	full, err := l.resolve(ns)
	if err != nil {
		return err
	}
	h, err := netns.GetFromName(full)
	if err != nil {
		return fmt.Errorf("lab: namespace %s: %w", full, err)
	}
	defer h.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- err // the thread stays locked and is discarded
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// FlowSnapshot is every flow at one instant.
type FlowSnapshot struct {
	At    time.Time  `json:"at"`
	Flows []FlowStat `json:"flows"`
}

// Snapshot returns the flows' figures now, with what the sink saw of each.
func (f *Flows) Snapshot() FlowSnapshot {
	return snapshot(f.client, f.sink, f.client.opts.Uplink)
}

func snapshot(c *FlowClient, s *FlowSink, name func(netip.Addr) string) FlowSnapshot {
	snap := FlowSnapshot{At: time.Now(), Flows: c.Snapshot()}
	if s == nil {
		return snap
	}
	seen := s.Sources()
	for i := range snap.Flows {
		fs := &snap.Flows[i]
		for a, n := range seen[fs.Proto][fs.Flow] {
			if fs.Sources == nil {
				fs.Sources = map[string]int{}
			}
			fs.Sources[name(a)] += n
		}
	}
	return snap
}

// Add opens tcp more TCP connections and udp more UDP flows from the LAN
// host and returns their flow numbers (see FlowClient.Add).
func (f *Flows) Add(ctx context.Context, tcp, udp int) ([]uint32, error) {
	return f.client.Add(ctx, tcp, udp)
}

// Only returns the snapshot restricted to the flows numbered ids.
func (s FlowSnapshot) Only(ids []uint32) FlowSnapshot {
	want := make(map[uint32]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := FlowSnapshot{At: s.At}
	for _, f := range s.Flows {
		if want[f.Flow] {
			out.Flows = append(out.Flows, f)
		}
	}
	return out
}

// Close stops the flows and the sink and waits for their goroutines.
func (f *Flows) Close() error {
	f.client.Close()
	return f.sink.Close()
}

// Uplinks counts the flows of proto ("tcp", "udp", or "" for both) by
// their current uplink.
func (s FlowSnapshot) Uplinks(proto string) map[string]int {
	out := map[string]int{}
	for _, f := range s.Flows {
		if proto == "" || f.Proto == proto {
			out[f.Uplink]++
		}
	}
	return out
}

// MovedAfter returns the flows whose uplink changed after t (a flow's
// first echo is not a change).
func (s FlowSnapshot) MovedAfter(t time.Time) []FlowStat {
	var out []FlowStat
	for _, f := range s.Flows {
		for i, c := range f.Changes {
			if i > 0 && c.At.After(t) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// Summary is a snapshot's totals.
type FlowSummary struct {
	Flows, Echoing  int           // flows; flows with an echo in the last second
	Lost            int           // UDP sequence numbers lost, all flows
	Resets, Hung    int           // TCP connections reset at least once; hung at least once
	Moved           int           // flows that changed uplink at least once
	MaxGap          time.Duration // longest gap of any flow
	MaxGapFlow      uint32
	ByUplink        map[string]int
	ByUplinkSources map[string]int // flows per source address per uplink: "192.0.2.10 isp1"
}

// Summary adds up the snapshot.
func (s FlowSnapshot) Summary() FlowSummary {
	sum := FlowSummary{ByUplink: map[string]int{}, ByUplinkSources: map[string]int{}}
	for _, f := range s.Flows {
		sum.Flows++
		if f.Echoed > 0 && f.SinceLastEcho < time.Second {
			sum.Echoing++
		}
		sum.Lost += f.Lost
		if f.Resets > 0 {
			sum.Resets++
		}
		if f.Hung() {
			sum.Hung++
		}
		if len(f.Changes) > 1 {
			sum.Moved++
		}
		if f.MaxGap > sum.MaxGap {
			sum.MaxGap, sum.MaxGapFlow = f.MaxGap, f.Flow
		}
		sum.ByUplink[f.Uplink]++
		sum.ByUplinkSources[f.Source+" "+f.Uplink]++
	}
	return sum
}

// String is a one-line description, for test logs.
func (s FlowSummary) String() string {
	keys := make([]string, 0, len(s.ByUplink))
	for k := range s.ByUplink {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	up := ""
	for _, k := range keys {
		up += fmt.Sprintf(" %s=%d", k, s.ByUplink[k])
	}
	return fmt.Sprintf("%d flows (%d echoing), uplinks:%s; moved %d, lost %d, resets %d, hung %d, max gap %v (flow %d)",
		s.Flows, s.Echoing, up, s.Moved, s.Lost, s.Resets, s.Hung, s.MaxGap.Round(time.Millisecond), s.MaxGapFlow)
}
