package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// FlowClientOptions configure a FlowClient.
type FlowClientOptions struct {
	Sink    netip.AddrPort // where the FlowSink listens (UDP and TCP)
	Sources []netip.Addr   // local addresses; flows take them in turn
	TCP     int            // TCP connections
	UDP     int            // UDP flows (one socket each)
	// Interval between two records of one flow.
	Interval time.Duration
	// HangAfter: a TCP connection that has records unanswered for this
	// long, without an error, counts as hung.
	HangAfter time.Duration
	// Dial opens a connection from laddr to the sink (it may switch
	// namespaces); nil dials in the caller's namespace.
	Dial func(ctx context.Context, network string, laddr netip.Addr, raddr netip.AddrPort) (net.Conn, error)
	// Uplink names the uplink of a source address that the sink saw; nil
	// names it by the address.
	Uplink func(netip.Addr) string
}

// FlowClient runs long-lived TCP connections and UDP flows to a FlowSink,
// one record per flow and interval, and follows each flow's echoes: which
// uplink it takes over time, the longest silence, lost UDP sequence
// numbers, TCP resets, and TCP connections that hang while sending. A TCP
// connection that fails is reconnected (its sequence numbers go on).
type FlowClient struct {
	opts   FlowClientOptions
	ctx    context.Context // the flows' lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	flows  []*flow
	closed bool
}

// StartFlowClient opens opts.TCP and opts.UDP flows (an error if any fails
// to connect) and starts them; Add opens more. The flows run until ctx is
// done or Close.
func StartFlowClient(ctx context.Context, opts FlowClientOptions) (*FlowClient, error) {
	if len(opts.Sources) == 0 {
		return nil, errors.New("flow client: no source address")
	}
	if opts.Interval <= 0 {
		return nil, errors.New("flow client: interval must be positive")
	}
	if opts.HangAfter <= 0 {
		opts.HangAfter = 2 * time.Second
	}
	if opts.Dial == nil {
		opts.Dial = dialFrom
	}
	if opts.Uplink == nil {
		opts.Uplink = netip.Addr.String
	}
	c := &FlowClient{opts: opts}
	c.ctx, c.cancel = context.WithCancel(ctx)
	if _, err := c.Add(ctx, opts.TCP, opts.UDP); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Add opens tcp more TCP connections and udp more UDP flows, taking the
// source addresses in turn, and starts them; it returns their flow
// numbers. If any fails to connect, none is started. Use it to open new
// connections at a chosen moment, e.g. right after an uplink returns, and
// see which uplinks they take.
func (c *FlowClient) Add(ctx context.Context, tcp, udp int) ([]uint32, error) {
	c.mu.Lock()
	next := len(c.flows)
	c.mu.Unlock()
	var added []*flow
	fail := func(err error) ([]uint32, error) {
		for _, f := range added {
			f.conn.Close()
		}
		return nil, err
	}
	for i := range tcp + udp {
		proto := "tcp"
		if i >= tcp {
			proto = "udp"
		}
		// Numbers are final only under the lock below; sources alternate
		// by number.
		f := &flow{proto: proto, src: c.opts.Sources[(next+i)%len(c.opts.Sources)]}
		conn, err := c.opts.Dial(ctx, network(proto, c.opts.Sink.Addr()), f.src, c.opts.Sink)
		if err != nil {
			return fail(fmt.Errorf("flow client: %s flow from %s: %w", proto, f.src, err))
		}
		f.conn = conn
		f.local = conn.LocalAddr().String()
		added = append(added, f)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fail(errors.New("flow client closed"))
	}
	ids := make([]uint32, 0, len(added))
	for _, f := range added {
		f.id = uint32(len(c.flows))
		c.flows = append(c.flows, f)
		ids = append(ids, f.id)
		if f.proto == "tcp" {
			c.wg.Go(func() { c.runTCP(c.ctx, f) })
		} else {
			c.wg.Go(func() { c.runUDP(c.ctx, f) })
		}
	}
	return ids, nil
}

// Close stops every flow and waits for them.
func (c *FlowClient) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// network is "tcp4", "udp6"...: proto in the family of a.
func network(proto string, a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return proto + "6"
	}
	return proto + "4"
}

// dialFrom dials raddr from laddr (port chosen by the kernel).
func dialFrom(ctx context.Context, network string, laddr netip.Addr, raddr netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	switch network {
	case "tcp4", "tcp6":
		d.LocalAddr = &net.TCPAddr{IP: laddr.AsSlice()}
	case "udp4", "udp6":
		d.LocalAddr = &net.UDPAddr{IP: laddr.AsSlice()}
	}
	return d.DialContext(ctx, network, raddr.String())
}

// flow is one connection's state; mu guards everything below it.
type flow struct {
	id    uint32
	proto string
	src   netip.Addr
	conn  net.Conn // the current one; replaced by reconnects (runTCP only)

	mu         sync.Mutex
	local      string
	nextSeq    uint64
	sent       int
	echoed     int
	seen       []uint64 // bit per sequence number echoed
	highest    uint64
	anyEcho    bool
	uplink     string
	changes    []UplinkChange
	lastEcho   time.Time
	waitSince  time.Time // send time of the oldest record not yet echoed on this connection (TCP)
	maxGap     time.Duration
	maxGapEnd  time.Time
	resets     int
	reconnects int
	errors     int
	lastErr    string
	hungAt     time.Time
}

// UplinkChange is a flow's uplink from Seq on (its first echo, then every
// change).
type UplinkChange struct {
	At     time.Time `json:"at"`
	Uplink string    `json:"uplink"`
	Seq    uint64    `json:"seq"`
}

// next returns the record to send now.
func (f *flow) next(now time.Time) flowRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := flowRecord{flow: f.id, seq: f.nextSeq, sentNS: now.UnixNano()}
	f.nextSeq++
	f.sent++
	if f.waitSince.IsZero() {
		f.waitSince = now
	}
	return r
}

// echo accounts for an echoed record.
func (f *flow) echo(r flowRecord, uplink string, now time.Time, pending bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := int(r.seq / 64)
	if w >= len(f.seen) {
		f.seen = append(f.seen, make([]uint64, w+1-len(f.seen))...)
	}
	if f.seen[w]&(1<<(r.seq%64)) != 0 {
		return // duplicate
	}
	f.seen[w] |= 1 << (r.seq % 64)
	f.echoed++
	if !f.anyEcho || r.seq > f.highest {
		f.highest = r.seq
	}
	if f.anyEcho {
		if gap := now.Sub(f.lastEcho); gap > f.maxGap {
			f.maxGap, f.maxGapEnd = gap, now
		}
	}
	f.anyEcho = true
	f.lastEcho = now
	if uplink != f.uplink {
		f.uplink = uplink
		f.changes = append(f.changes, UplinkChange{At: now, Uplink: uplink, Seq: r.seq})
	}
	// TCP answers in order: the oldest unanswered record is the next one.
	if pending {
		f.waitSince = time.Unix(0, r.sentNS).Add(1) // approximately: sent after this one
	} else {
		f.waitSince = time.Time{}
	}
}

func (f *flow) fail(err error, reset bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if reset {
		f.resets++
	} else {
		f.errors++
	}
	f.lastErr = err.Error()
}

// markHung marks the connection hung at now, unless it was already.
func (f *flow) markHung(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hungAt.IsZero() {
		f.hungAt = now
	}
}

// checkHung marks the connection hung when a record has waited too long.
func (f *flow) checkHung(now time.Time, after time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hungAt.IsZero() && !f.waitSince.IsZero() && now.Sub(f.waitSince) > after {
		f.hungAt = now
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF)
}

func (c *FlowClient) runUDP(ctx context.Context, f *flow) {
	conn := f.conn
	var readers sync.WaitGroup
	defer readers.Wait()
	defer conn.Close()
	readers.Go(func() {
		b := make([]byte, 2048)
		for {
			n, err := conn.Read(b)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				f.fail(err, false) // e.g. ICMP unreachable
				continue
			}
			r, err := decodeFlowRecord(b[:n])
			if err != nil || r.flow != f.id {
				continue
			}
			f.echo(r, c.opts.Uplink(r.src), time.Now(), false)
		}
	})
	b := make([]byte, flowRecordLen)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		f.next(time.Now()).encode(b)
		if _, err := conn.Write(b); err != nil {
			f.fail(err, false)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *FlowClient) runTCP(ctx context.Context, f *flow) {
	conn := f.conn
	for {
		err := c.tcpSession(ctx, f, conn)
		if ctx.Err() != nil {
			return
		}
		f.fail(err, isReset(err))
		// Reconnect, as an application would.
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.opts.Interval):
			}
			nc, err := c.opts.Dial(ctx, network("tcp", c.opts.Sink.Addr()), f.src, c.opts.Sink)
			f.mu.Lock()
			f.reconnects++
			if err == nil {
				f.local = nc.LocalAddr().String()
				f.waitSince = time.Time{}
			}
			f.mu.Unlock()
			if err == nil {
				conn = nc
				break
			}
			f.fail(err, false)
		}
	}
}

// tcpSession sends on conn until it fails or ctx is done, and closes it.
func (c *FlowClient) tcpSession(ctx context.Context, f *flow, conn net.Conn) error {
	readErr := make(chan error, 1)
	var reader sync.WaitGroup
	defer reader.Wait()
	defer conn.Close()
	// One token per record sent and not yet echoed on this connection.
	inflight := make(chan struct{}, 1<<16)
	reader.Go(func() {
		b := make([]byte, flowRecordLen)
		for {
			if _, err := io.ReadFull(conn, b); err != nil {
				readErr <- err
				return
			}
			r, err := decodeFlowRecord(b)
			if err != nil || r.flow != f.id {
				readErr <- fmt.Errorf("bad echo: %v", err)
				return
			}
			select {
			case <-inflight:
			default:
			}
			f.echo(r, c.opts.Uplink(r.src), time.Now(), len(inflight) > 0)
		}
	})
	b := make([]byte, flowRecordLen)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		now := time.Now()
		f.checkHung(now, c.opts.HangAfter)
		f.next(now).encode(b)
		select {
		case inflight <- struct{}{}:
		default:
		}
		// A write that blocks this long is a hang too.
		_ = conn.SetWriteDeadline(now.Add(c.opts.HangAfter))
		if _, err := conn.Write(b); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				f.markHung(time.Now())
				if ctx.Err() != nil {
					return nil // Close while the connection hangs
				}
				continue
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			return err
		case <-t.C:
		}
	}
}

// FlowStat is one flow as the client sees it.
type FlowStat struct {
	Flow   uint32 `json:"flow"`
	Proto  string `json:"proto"`
	Source string `json:"source"` // LAN source address
	Local  string `json:"local"`  // current local address and port
	// Uplink is the uplink of the latest echo; "" before the first.
	Uplink  string         `json:"uplink"`
	Changes []UplinkChange `json:"changes"`
	Sent    int            `json:"sent"`
	Echoed  int            `json:"echoed"`
	// Lost counts sequence numbers below the highest echoed one that
	// never came back (UDP; TCP retransmits); LostSeqs lists the first 32.
	Lost     int      `json:"lost"`
	LostSeqs []uint64 `json:"lost_seqs,omitempty"`
	// MaxGap is the longest time between two echoes, ending at MaxGapEnd;
	// SinceLastEcho is the silence at the snapshot.
	MaxGap        time.Duration `json:"max_gap_ns"`
	MaxGapEnd     time.Time     `json:"max_gap_end"`
	SinceLastEcho time.Duration `json:"since_last_echo_ns"`
	Resets        int           `json:"resets"` // TCP: connection reset (or closed) by the peer
	Reconnects    int           `json:"reconnects"`
	Errors        int           `json:"errors"`
	LastError     string        `json:"last_error,omitempty"`
	// HungAt is when a TCP connection first had a record unanswered (or
	// a write blocked) for HangAfter without an error; zero if never.
	HungAt time.Time `json:"hung_at"`
	// Sources is what the sink saw: records per uplink (source address).
	Sources map[string]int `json:"sources,omitempty"`
}

// Hung reports whether the TCP connection ever hung while sending.
func (s FlowStat) Hung() bool { return !s.HungAt.IsZero() }

// Snapshot returns every flow's figures now.
func (c *FlowClient) Snapshot() []FlowStat {
	now := time.Now()
	c.mu.Lock()
	flows := slices.Clone(c.flows)
	c.mu.Unlock()
	out := make([]FlowStat, 0, len(flows))
	for _, f := range flows {
		if f.proto == "tcp" {
			f.checkHung(now, c.opts.HangAfter)
		}
		f.mu.Lock()
		s := FlowStat{
			Flow: f.id, Proto: f.proto, Source: f.src.String(), Local: f.local,
			Uplink: f.uplink, Changes: slices.Clone(f.changes),
			Sent: f.sent, Echoed: f.echoed,
			MaxGap: f.maxGap, MaxGapEnd: f.maxGapEnd,
			Resets: f.resets, Reconnects: f.reconnects, Errors: f.errors, LastError: f.lastErr,
			HungAt: f.hungAt,
		}
		if f.anyEcho {
			s.SinceLastEcho = now.Sub(f.lastEcho)
			for w := 0; w <= int(f.highest/64); w++ {
				word := f.seen[w]
				if w == int(f.highest/64) {
					word |= ^uint64(0) << (f.highest%64 + 1) // above the highest: not lost
				}
				s.Lost += bits.OnesCount64(^word)
				for b := 0; b < 64 && len(s.LostSeqs) < 32; b++ {
					if word&(1<<b) == 0 {
						s.LostSeqs = append(s.LostSeqs, uint64(w*64+b))
					}
				}
			}
		}
		f.mu.Unlock()
		out = append(out, s)
	}
	return out
}
