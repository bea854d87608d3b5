package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// sendTCP starts a TCP probe of target t: a connection from the uplink's
// address, bound to its interface, to t's port. A SYN-ACK proves the path,
// and so does a reset (the port is closed): either came back through the
// uplink, since a socket bound to a device only hears packets that arrive
// on it. Anything else within the timeout (no answer, an ICMP error, a
// local routing error) is a lost probe. The connection is reset at once,
// so no TIME_WAIT state accumulates.
//
// The probe runs in its own goroutine, owned by the Prober (Stop waits for
// it), and reports an answer like an echo reply. The socket is made in the
// process's network namespace.
func (p *Prober) sendTCP(req probeReq, t Target) send {
	at := time.Now()
	p.work.Add(1)
	go func() {
		defer p.work.Done()
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
		defer cancel()
		conn, err := p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(t.Addr.String(), fmt.Sprint(t.Port)))
		done := time.Now()
		if conn != nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
		}
		if err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			return
		}
		p.take(reply{id: req.id, target: req.target, at: done}, true)
	}()
	return send{At: at}
}
