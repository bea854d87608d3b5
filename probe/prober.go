package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what one Prober probes and how.
type Config struct {
	Uplink    string
	Interface string // echoes leave through it, replies must come in on it
	// Index is Interface's index; 0: looked up by name at Start.
	Index int
	// Source is the echoes' source and the replies' destination, an
	// address of this host: IPv4, or IPv6 (global scope, no zone; the
	// prober then sends ICMPv6 echoes and every target must be IPv6).
	Source netip.Addr
	// Hub is the ICMP socket the prober shares with others (see Hub);
	// nil: the prober opens a hub of its own and closes it on Stop.
	Hub               *Hub
	Targets           []Target
	Interval, Timeout time.Duration
	// Reliability is how many targets must answer for a good round:
	// 1 to len(Targets); 0 means 1.
	Reliability int
	// Window is how many probes per target the statistics cover; at
	// least 1.
	Window int
	// CheckInterval, CheckTimeout and HTTPExpect are for the HTTP and
	// HTTPS checks among Targets.
	CheckInterval, CheckTimeout time.Duration
	HTTPExpect                  int
	// FreshAfter restarts the statistics at the first good round after
	// this many consecutive failed rounds (the daemon uses down_after), or
	// after a silence, so an uplink back from an outage is judged on the
	// probes sent since it came back. 0 never restarts them.
	FreshAfter int
	Gen        uint64 // echoed in results so the daemon can drop stale results
}

// Result is the outcome of one probe round. Round numbers start at 1 and
// increase by one per round started. A round is delivered as soon as it is
// decided, so Replies counts the replies taken in by then: usually
// Reliability for a good round. Err is only set on a failed round: at once
// when fewer than Reliability echoes could be sent, or at the timeout when
// some echoes could not be sent and too few of the others were answered.
//
// Targets and Stats are the statistics over the last Window probes at the
// time of delivery; they lag the round itself by up to Timeout, since a
// probe counts once it is answered or timed out.
type Result struct {
	Uplink  string
	Gen     uint64
	Round   uint64
	Good    bool          // at least Reliability targets answered within Timeout
	Replies int           // number of targets that answered
	RTT     time.Duration // fastest reply of the round (0 if none)
	Err     error         // send error, if any (round counts as failed)
	// Silent is set on a round decided bad because the uplink went
	// silent: no reply at all for Silence, to Unanswered echoes including
	// a confirmation burst. The uplink should leave the balance at once
	// rather than after several failed rounds.
	Silent     bool
	Silence    time.Duration
	Unanswered int
	// Sent counts the probe packets the prober has sent since it
	// started, confirmation bursts included.
	Sent uint64
	// Stats rates the uplink: for loss, RTT and jitter each, the
	// Reliability-th best value among its targets.
	Stats   Stats
	Targets []TargetStats // in the order of Config.Targets, duplicates removed
}

// A Prober runs probe rounds for one uplink until Stop.
type Prober struct {
	cfg     Config
	out     chan<- Result
	hub     *Hub
	ownHub  bool               // opened by Start, closed by Stop
	ifindex int                // of cfg.Interface
	v6      bool               // cfg.Source is IPv6: so are the targets
	sock    *icmpSocket        // the hub's socket of the prober's family
	id      uint16             // ICMP identifier, unique among the probers of this process
	token   uint64             // payload token, tells our replies from foreign ones
	targets []Target           // probed in every round
	checks  []Target           // run every CheckInterval (check.go)
	results chan checkResult   // from runChecks to run
	index   map[netip.Addr]int // ICMP target address -> index into targets
	dialer  net.Dialer         // TCP probes: bound to the interface and source
	work    sync.WaitGroup     // TCP probes and the check runner
	ctx     context.Context    // canceled by Stop: ends TCP probes
	cancel  context.CancelFunc

	// mu guards the engine and what follows: run drives it, and so does
	// whoever reads a reply (see take).
	mu         sync.Mutex
	e          *engine
	timer      *time.Timer // fires when the engine next has work (armed)
	armed      time.Time   // what timer is set for; zero at first: fire at once
	delivering bool        // run waits to hand the head result over: nobody else does
	stopped    bool        // set by Stop: nothing is delivered any more
	kick       chan struct{}
	replies    chan reply // what take could not handle at once, for run

	drainBuf []byte // drainSocket's, used by run only
	drainOOB []byte
	// What send reuses, used by run only: the echo, the pktinfo control
	// message (interface and source) and the destinations.
	pkt  []byte
	oob  []byte
	dsts []unix.Sockaddr // per target

	stop    chan struct{}
	runDone chan struct{}
	once    sync.Once
}

// reply is a matched echo reply, passed from the reader to the round loop.
type reply struct {
	id     uint64 // round number, or burstBit|n for a confirmation echo
	target int
	at     time.Time
}

// The probers of a hub share its socket, and raw ICMP sockets see every
// echo reply addressed to the host, so each prober needs its own
// identifier: the hub hands replies on by it. The random base keeps two uplinkd processes (a restart that
// overlaps the old one) from starting on the same identifiers.
var (
	idBase    = uint16(rand.Uint32())
	idCounter atomic.Uint32
)

func nextID() uint16 { return idBase + uint16(idCounter.Add(1)) }

// epoch anchors the probe schedules of this process (engineConfig.Epoch):
// probers with the same interval and number of targets send on the same
// instants, whenever they started, so that the runtime serves them with
// one wake-up and their socket is drained once (Hub.drain).
var epoch = time.Now()

// readBuf is large enough for an IPv4 header with options and any echo reply
// of ours; longer foreign packets are truncated and then fail the checksum.
const readBuf = 1500

// Start validates cfg and starts probing through cfg.Hub, or a hub of its
// own opened in the calling thread's network namespace; the first round
// starts at once. Results are sent to out in round
// order; a slow reader delays new rounds rather than losing results, and
// never keeps Stop from returning.
func Start(cfg Config, out chan<- Result) (*Prober, error) {
	targets, checks, err := validate(cfg, out)
	if err != nil {
		return nil, fmt.Errorf("probe %s on %s: %w", cfg.Uplink, cfg.Interface, err)
	}
	p := &Prober{
		cfg:      cfg,
		out:      out,
		id:       nextID(),
		token:    rand.Uint64(),
		targets:  targets,
		checks:   checks,
		results:  make(chan checkResult, len(checks)),
		index:    make(map[netip.Addr]int, len(targets)),
		replies:  make(chan reply, 256),
		kick:     make(chan struct{}, 1),
		drainBuf: make([]byte, readBuf),
		drainOOB: make([]byte, hubOOB),
		pkt:      make([]byte, icmpHeaderLen+payloadLen),
		dsts:     make([]unix.Sockaddr, len(targets)),
		v6:       cfg.Source.Unmap().Is6(),
		stop:     make(chan struct{}),
		runDone:  make(chan struct{}),
	}
	for i, t := range targets {
		if t.Method == MethodICMP {
			p.index[t.Addr] = i
		}
		if p.v6 {
			p.dsts[i] = &unix.SockaddrInet6{Addr: t.Addr.As16()}
		} else {
			p.dsts[i] = &unix.SockaddrInet4{Addr: t.Addr.As4()}
		}
	}
	p.e = newEngine(engineConfig{
		Interval:    cfg.Interval,
		Timeout:     cfg.Timeout,
		Reliability: cfg.Reliability,
		Window:      cfg.Window,
		FreshAfter:  cfg.FreshAfter,
		Targets:     targets,
		Checks:      checks,
		// Rounds in flight plus a margin of decided ones waiting for a
		// slow reader.
		MaxPending: int(cfg.Timeout/cfg.Interval) + 2 + 64,
		Epoch:      epoch,
	}, Result{Uplink: cfg.Uplink, Gen: cfg.Gen})
	p.timer = time.NewTimer(0)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.dialer = net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.Source.Unmap(), 0)),
		Control:   p.bindControl,
	}
	if err := p.open(); err != nil {
		p.timer.Stop()
		p.cancel()
		return nil, fmt.Errorf("probe %s on %s: %w", cfg.Uplink, cfg.Interface, err)
	}
	go p.run()
	if len(checks) > 0 {
		p.work.Add(1)
		go p.runChecks()
	}
	return p, nil
}

// Stop stops probing, waits for the prober's goroutines and closes its
// socket. No result is sent after it returns. It is safe to call more than
// once.
func (p *Prober) Stop() {
	p.once.Do(func() {
		close(p.stop)
		<-p.runDone // no send races with the close
		p.mu.Lock()
		p.stopped = true // nor one by take
		p.mu.Unlock()
		p.cancel()
		p.work.Wait()
		p.hub.remove(p)
		if p.ownHub {
			_ = p.hub.Close()
		}
	})
}

func validate(cfg Config, out chan<- Result) (targets, checks []Target, err error) {
	targets, checks, err = validateTargets(cfg, out)
	if err != nil {
		return nil, nil, err
	}
	if len(checks) > 0 && (cfg.CheckInterval <= 0 || cfg.CheckTimeout <= 0 || cfg.HTTPExpect < 100 || cfg.HTTPExpect > 599) {
		return nil, nil, fmt.Errorf("checks every %v within %v expecting %d: want positive durations and an HTTP status",
			cfg.CheckInterval, cfg.CheckTimeout, cfg.HTTPExpect)
	}
	return targets, checks, nil
}

func validateTargets(cfg Config, out chan<- Result) ([]Target, []Target, error) {
	src := cfg.Source.Unmap()
	switch {
	case out == nil:
		return nil, nil, errors.New("nil result channel")
	case cfg.Interface == "":
		return nil, nil, errors.New("no interface")
	case !src.IsValid():
		return nil, nil, errors.New("no source address")
	case src.Zone() != "" || src.IsLinkLocalUnicast() || src.IsMulticast() || src.IsUnspecified() || src.IsLoopback():
		return nil, nil, fmt.Errorf("source %v: want a global unicast IPv4 or IPv6 address", cfg.Source)
	case cfg.Interval <= 0:
		return nil, nil, fmt.Errorf("interval %v is not positive", cfg.Interval)
	case cfg.Timeout <= 0:
		return nil, nil, fmt.Errorf("timeout %v is not positive", cfg.Timeout)
	case len(cfg.Targets) == 0:
		return nil, nil, errors.New("no targets")
	case cfg.Window < 1:
		return nil, nil, fmt.Errorf("window %d is not positive", cfg.Window)
	case cfg.FreshAfter < 0:
		return nil, nil, fmt.Errorf("fresh-after %d is negative", cfg.FreshAfter)
	}
	family := "IPv4"
	if src.Is6() {
		family = "IPv6"
	}
	// sameFamily says whether a, a target or resolver, can be reached
	// from the source: same family, and no link-local address, which
	// would need a zone.
	sameFamily := func(a netip.Addr) bool {
		return a.Is6() == src.Is6() && a.Zone() == "" && !a.IsLinkLocalUnicast() && !a.IsUnspecified() && !a.IsMulticast()
	}
	var targets, checks []Target
	seen := make(map[Target]bool)
	for _, t := range cfg.Targets {
		if t.Method == MethodDNS {
			t.Addr = t.Addr.Unmap()
			if !sameFamily(t.Addr) || t.Port == 0 {
				return nil, nil, fmt.Errorf("DNS check %v port %d: want an %s resolver (the source %v is) and a port", t.Addr, t.Port, family, src)
			}
			if !seen[t] {
				seen[t] = true
				checks = append(checks, t)
			}
			continue
		}
		if t.check() {
			u, err := url.Parse(t.URL)
			if err != nil || u.Scheme != t.Method || u.Host == "" {
				return nil, nil, fmt.Errorf("check %q: want an %s URL with a host", t.URL, t.Method)
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && !sameFamily(a.Unmap()) {
				return nil, nil, fmt.Errorf("check %q: want an %s host (the source %v is)", t.URL, family, src)
			}
			t.Addr, t.Port, t.Name = netip.Addr{}, 0, ""
			if !seen[t] {
				seen[t] = true
				checks = append(checks, t)
			}
			continue
		}
		t.Addr, t.URL = t.Addr.Unmap(), ""
		if !sameFamily(t.Addr) {
			return nil, nil, fmt.Errorf("target %v is not a global %s address (the source %v is)", t.Addr, family, src)
		}
		switch {
		case t.Method == MethodICMP:
			t.Port = 0
		case t.Method == MethodTCP && t.Port == 0:
			return nil, nil, fmt.Errorf("TCP target %v has no port", t.Addr)
		case t.Method != MethodTCP:
			return nil, nil, fmt.Errorf("target %v: unknown method %q", t.Addr, t.Method)
		}
		if !seen[t] {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return nil, nil, errors.New("no ICMP or TCP targets: checks alone cannot make rounds")
	}
	if cfg.Reliability < 0 || cfg.Reliability > len(targets) {
		return nil, nil, fmt.Errorf("reliability %d: want 1 to %d, the number of targets", cfg.Reliability, len(targets))
	}
	return targets, checks, nil
}

// open joins the prober to its hub, or opens one, after checking that the
// interface and the source address exist.
func (p *Prober) open() error {
	if err := checkSource(p.cfg.Source); err != nil {
		return err
	}
	p.hub = p.cfg.Hub
	if p.hub == nil {
		h, err := newHub(!p.v6, p.v6)
		if err != nil {
			return err
		}
		p.hub, p.ownHub = h, true
	}
	fail := func(err error) error {
		if p.ownHub {
			_ = p.hub.Close()
		}
		return err
	}
	sock, err := p.hub.socket(p.v6)
	if err != nil {
		return fail(err)
	}
	p.sock = sock
	p.ifindex = p.cfg.Index
	if p.ifindex == 0 {
		i, err := p.hub.ifindex(p.cfg.Interface)
		if err != nil {
			return fail(err)
		}
		p.ifindex = i
	}
	if p.v6 {
		p.oob = pktinfo6(p.ifindex, p.cfg.Source)
	} else {
		p.oob = pktinfo(p.ifindex, p.cfg.Source.Unmap())
	}
	if err := p.hub.add(p); err != nil {
		return fail(err)
	}
	return nil
}

// checkSource fails unless source is an address of this host (in the
// calling thread's network namespace) that can be used: the kernel would
// refuse every echo from it. An IPv6 address still tentative (duplicate
// address detection running or failed) fails too.
func checkSource(source netip.Addr) error {
	source = source.Unmap()
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: source.As16()})
	if source.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: source.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("check source %v: %w", source, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind to %v: %w", source, err)
	}
	return nil
}

// send sends one echo, or starts one TCP probe, and reports the outcome.
func (p *Prober) send(req probeReq) send {
	t := p.targets[req.target]
	if t.Method == MethodTCP {
		return p.sendTCP(req, t)
	}
	if p.v6 {
		// The kernel computes the ICMPv6 checksum, pseudo-header and all.
		putEcho(p.pkt, icmp6EchoRequest, p.id, uint16(req.id), p.token, req.id)
		binary.BigEndian.PutUint16(p.pkt[2:], 0)
	} else {
		putEcho(p.pkt, icmpEchoRequest, p.id, uint16(req.id), p.token, req.id)
	}
	at := time.Now()
	err := p.sock.send(p.pkt, p.oob, p.dsts[req.target])
	if err != nil {
		return send{Err: fmt.Errorf("send echo to %v via %s: %w", t, p.cfg.Interface, err)}
	}
	return send{At: at}
}
