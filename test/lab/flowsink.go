package lab

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
)

// FlowSink echoes the records of flow clients over UDP and TCP, telling
// each the source address it saw, and remembers for each flow (and
// protocol) which source addresses it saw and how often: with masquerade
// or SNAT on every uplink, the uplink the flow took.
type FlowSink struct {
	mu      sync.Mutex
	sources map[sinkKey]map[netip.Addr]int
	conns   map[net.Conn]bool // open TCP connections, closed by Close
	closed  bool
	wg      sync.WaitGroup
	udp     *net.UDPConn
	tcp     net.Listener
}

type sinkKey struct {
	proto string
	flow  uint32
}

// ServeFlowSink starts echoing on udp and tcp (either may be nil) until
// Close.
func ServeFlowSink(udp *net.UDPConn, tcp net.Listener) *FlowSink {
	s := &FlowSink{sources: map[sinkKey]map[netip.Addr]int{}, conns: map[net.Conn]bool{}, udp: udp, tcp: tcp}
	if udp != nil {
		_ = udp.SetReadBuffer(4 << 20)
		s.wg.Go(s.serveUDP)
	}
	if tcp != nil {
		s.wg.Go(s.serveTCP)
	}
	return s
}

// Sources returns, per protocol ("tcp", "udp") and flow number, how many
// records came from each source address.
func (s *FlowSink) Sources() map[string]map[uint32]map[netip.Addr]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]map[uint32]map[netip.Addr]int{}
	for k, m := range s.sources {
		if out[k.proto] == nil {
			out[k.proto] = map[uint32]map[netip.Addr]int{}
		}
		c := make(map[netip.Addr]int, len(m))
		for a, n := range m {
			c[a] = n
		}
		out[k.proto][k.flow] = c
	}
	return out
}

// Close stops the sink: it closes the sockets it was given and every TCP
// connection, and waits for its goroutines.
func (s *FlowSink) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	var errs []error
	if s.udp != nil {
		errs = append(errs, s.udp.Close())
	}
	if s.tcp != nil {
		errs = append(errs, s.tcp.Close())
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *FlowSink) record(proto string, flow uint32, src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sinkKey{proto, flow}
	if s.sources[k] == nil {
		s.sources[k] = map[netip.Addr]int{}
	}
	s.sources[k][src]++
}

func (s *FlowSink) serveUDP() {
	b := make([]byte, 2048)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(b)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		r, err := decodeFlowRecord(b[:n])
		if err != nil {
			continue
		}
		r.src = from.Addr().Unmap()
		s.record("udp", r.flow, r.src)
		r.encode(b)
		_, _ = s.udp.WriteToUDPAddrPort(b[:flowRecordLen], from)
	}
}

func (s *FlowSink) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Go(func() { s.echoTCP(c) })
	}
}

func (s *FlowSink) echoTCP(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	src := netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
	b := make([]byte, flowRecordLen)
	for {
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		r, err := decodeFlowRecord(b)
		if err != nil {
			return
		}
		r.src = src
		s.record("tcp", r.flow, src)
		r.encode(b)
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}
