package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// checkResult is the outcome of one run of check number check.
type checkResult struct {
	check int
	err   error // nil: passed
	took  time.Duration
}

// runChecks runs every check once per CheckInterval, the first time at
// once, one after the other, each within CheckTimeout, and passes the
// outcomes to run. It is owned by the Prober (Stop waits for it).
func (p *Prober) runChecks() {
	defer p.work.Done()
	client := p.httpClient()
	defer client.CloseIdleConnections()
	tick := time.NewTicker(p.cfg.CheckInterval)
	defer tick.Stop()
	for {
		for i, c := range p.checks {
			start := time.Now()
			var err error
			if c.Method == MethodDNS {
				err = p.checkDNS(c)
			} else {
				err = p.checkHTTP(client, c)
			}
			select {
			case p.results <- checkResult{check: i, err: err, took: time.Since(start)}:
			case <-p.stop:
				return
			}
		}
		select {
		case <-tick.C:
		case <-p.stop:
			return
		}
	}
}

// checkHTTP fetches c's URL and wants the expected status. A redirect is
// not followed: it is the answer, and a captive portal's usual one.
func (p *Prober) checkHTTP(client *http.Client, c Target) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.CheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "uplinkd")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != p.cfg.HTTPExpect {
		if loc := resp.Header.Get("Location"); loc != "" {
			return fmt.Errorf("status %d (redirect to %.100q), want %d", resp.StatusCode, loc, p.cfg.HTTPExpect)
		}
		return fmt.Errorf("status %d, want %d", resp.StatusCode, p.cfg.HTTPExpect)
	}
	return nil
}

// httpClient returns a client whose connections, and the name lookups
// for them, leave from the uplink's address bound to its interface: the
// check sees what traffic through the uplink sees, never the balance. A
// name resolves to an address of the source's family (A or AAAA), through
// the system's resolvers, which must be reachable from that source.
func (p *Prober) httpClient() *http.Client {
	dial := p.boundDial
	ipNet, tcpNet, family := "ip4", "tcp4", "IPv4"
	if p.v6 {
		ipNet, tcpNet, family = "ip6", "tcp6", "IPv6"
	}
	resolver := &net.Resolver{PreferGo: true, Dial: dial}
	return &http.Client{
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				host, port, err := net.SplitHostPort(addr)
				if err != nil {
					return nil, err
				}
				if _, err := netip.ParseAddr(host); err != nil {
					ips, err := resolver.LookupNetIP(ctx, ipNet, host)
					if err != nil {
						return nil, fmt.Errorf("resolve %s through %s: %w", host, p.cfg.Interface, err)
					}
					if len(ips) == 0 {
						return nil, fmt.Errorf("resolve %s through %s: no %s address", host, p.cfg.Interface, family)
					}
					addr = net.JoinHostPort(ips[0].String(), port)
				}
				return dial(ctx, tcpNet, addr)
			},
			DisableKeepAlives:   true,
			TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: p.cfg.CheckTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// boundDial dials from the uplink's address, bound to its interface.
func (p *Prober) boundDial(ctx context.Context, network, addr string) (net.Conn, error) {
	src := netip.AddrPortFrom(p.cfg.Source.Unmap(), 0)
	d := net.Dialer{Control: p.bindControl}
	switch network {
	case "tcp", "tcp4", "tcp6":
		d.LocalAddr = net.TCPAddrFromAddrPort(src)
	case "udp", "udp4", "udp6":
		d.LocalAddr = net.UDPAddrFromAddrPort(src)
	default:
		return nil, fmt.Errorf("dial %s: %w", network, errors.ErrUnsupported)
	}
	return d.DialContext(ctx, network, addr)
}

// bindControl binds a socket to the uplink's interface.
func (p *Prober) bindControl(_, _ string, c syscall.RawConn) error {
	var err error
	if cerr := c.Control(func(fd uintptr) {
		err = unix.BindToDevice(int(fd), p.cfg.Interface)
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("bind to device %s: %w", p.cfg.Interface, err)
	}
	return nil
}
