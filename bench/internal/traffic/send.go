package traffic

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/bench/internal/nsrun"
)

// Endpoint is the source of one flow: a namespace and a local address.
type Endpoint struct {
	NS   string
	From netip.AddrPort
}

// Sender sends one datagram per interval on each LAN flow and on the
// control flow, from one goroutine so the control flow shares the LAN
// flows' scheduling noise.
type Sender struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conns  []*net.UDPConn // LAN flows in order, then the control flow
	errs   []int          // failed sends per conn, guarded by wg (read after Stop)
}

// StartSender opens the flows towards to and starts sending every
// interval until Stop.
func StartSender(lan []Endpoint, control Endpoint, to netip.AddrPort, interval time.Duration) (*Sender, error) {
	s := &Sender{}
	for _, ep := range append(append([]Endpoint(nil), lan...), control) {
		var c *net.UDPConn
		err := nsrun.Do(ep.NS, func() error {
			var err error
			c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(ep.From), net.UDPAddrFromAddrPort(to))
			return err
		})
		if err != nil {
			s.closeConns()
			return nil, fmt.Errorf("traffic: flow from %s in %s: %w", ep.From, ep.NS, err)
		}
		s.conns = append(s.conns, c)
	}
	s.errs = make([]int, len(s.conns))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.loop(ctx, len(lan), interval)
	return s, nil
}

func (s *Sender) loop(ctx context.Context, nLAN int, interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	buf := make([]byte, pktSize)
	var seq uint32
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, c := range s.conns {
			h := header{kind: LAN, flow: uint16(i), seq: seq, sent: time.Now().UnixNano()}
			if i == nLAN {
				h.kind, h.flow = Control, 0
			}
			if _, err := c.Write(h.marshal(buf)); err != nil {
				s.errs[i]++
			}
		}
		seq++
	}
}

// Stop stops sending, waits for the goroutine and closes the flows. It
// returns the number of failed sends.
func (s *Sender) Stop() int {
	s.cancel()
	s.wg.Wait()
	s.closeConns()
	n := 0
	for _, e := range s.errs {
		n += e
	}
	return n
}

func (s *Sender) closeConns() {
	for _, c := range s.conns {
		c.Close()
	}
}

// NewConns sends one datagram every interval, each from a fresh source
// port of from (cycling through firstPort..firstPort+ports-1), as new
// connections would.
type NewConns struct {
	cancel context.CancelFunc
	done   chan error
}

// StartNewConns starts sending from namespace ns until Stop.
func StartNewConns(ns string, from netip.Addr, firstPort, ports int, to netip.AddrPort, interval time.Duration) *NewConns {
	ctx, cancel := context.WithCancel(context.Background())
	n := &NewConns{cancel: cancel, done: make(chan error, 1)}
	go func() {
		n.done <- nsrun.Do(ns, func() error {
			t := time.NewTicker(interval)
			defer t.Stop()
			buf := make([]byte, pktSize)
			for i := 0; ; i++ {
				src := netip.AddrPortFrom(from, uint16(firstPort+i%ports))
				c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(to))
				if err == nil {
					h := header{kind: NewConn, seq: uint32(i), sent: time.Now().UnixNano()}
					_, _ = c.Write(h.marshal(buf))
					c.Close()
				}
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		})
	}()
	return n
}

// Stop stops the probes and waits for the goroutine.
func (n *NewConns) Stop() error {
	n.cancel()
	return <-n.done
}
