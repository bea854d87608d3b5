package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/uplinkd/uplinkd/bench/internal/nsrun"
)

// Arrival is one datagram the sink received.
type Arrival struct {
	At   int64 // UnixNano at reception
	Sent int64 // UnixNano at sending
	Seq  uint32
	Flow uint16
	Kind Kind
	If   uint8 // index into Capture.Ifaces: the interface it came in on
}

// Sink receives the test traffic in one namespace and records every
// datagram with its incoming interface.
type Sink struct {
	conn   *net.UDPConn
	ifaces []string      // names, by Arrival.If
	index  map[int]uint8 // ifindex -> Arrival.If
	done   chan struct{} // closed when the receive loop returned

	mu       sync.Mutex
	arrivals []Arrival
	err      error
}

// ListenSink starts a sink on addr in namespace ns. Close stops it.
func ListenSink(ns string, addr netip.AddrPort) (*Sink, error) {
	s := &Sink{index: make(map[int]uint8), done: make(chan struct{})}
	err := nsrun.Do(ns, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			s.index[i.Index] = uint8(len(s.ifaces))
			s.ifaces = append(s.ifaces, i.Name)
		}
		s.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("traffic: sink in %s: %w", ns, err)
	}
	rc, err := s.conn.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
			if err == nil {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		s.conn.Close()
		return nil, fmt.Errorf("traffic: sink socket options: %w", err)
	}
	go s.loop()
	return s, nil
}

func (s *Sink) loop() {
	defer close(s.done)
	buf := make([]byte, 1500)
	oob := make([]byte, 256)
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUDP(buf, oob)
		at := time.Now().UnixNano()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
			}
			return
		}
		h, err := parse(buf[:n])
		if err != nil {
			continue
		}
		a := Arrival{At: at, Sent: h.sent, Seq: h.seq, Flow: h.flow, Kind: h.kind, If: 255}
		if ifindex, ok := pktinfoIfindex(oob[:oobn]); ok {
			if i, ok := s.index[ifindex]; ok {
				a.If = i
			}
		}
		s.mu.Lock()
		s.arrivals = append(s.arrivals, a)
		s.mu.Unlock()
	}
}

func pktinfoIfindex(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo {
			info := (*unix.Inet4Pktinfo)(unsafePointer(m.Data))
			return int(info.Ifindex), true
		}
	}
	return 0, false
}

// Take returns what the sink recorded since the last Take and forgets it.
func (s *Sink) Take() (Capture, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Capture{Ifaces: s.ifaces, Arrivals: s.arrivals}
	s.arrivals = nil
	return c, s.err
}

// Close stops the sink and waits for its goroutine.
func (s *Sink) Close() error {
	err := s.conn.Close()
	<-s.done
	return err
}

// WaitNewConn waits until a new-connection probe sent at or after since
// has arrived through iface.
func (s *Sink) WaitNewConn(ctx context.Context, iface string, since time.Time) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	from, idx := since.UnixNano(), 0
	for {
		s.mu.Lock()
		for ; idx < len(s.arrivals); idx++ {
			a := s.arrivals[idx]
			if a.Kind == NewConn && a.Sent >= from && int(a.If) < len(s.ifaces) && s.ifaces[a.If] == iface {
				s.mu.Unlock()
				return nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
