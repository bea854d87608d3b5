package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// runSend sends one datagram per interval until the duration or count is
// reached or ctx is cancelled, then prints (and optionally writes) its
// SendReport.
func runSend(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("udpsend", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	to := fs.String("to", "", "destination `addr:port`, e.g. 198.18.0.1:9000 or [2001:db8:ffff::1]:9000")
	from := fs.String("from", "", "source `addr` to bind (default: chosen by the route)")
	sport := fs.Int("sport", 0, "source `port` (0: any); fixed for the whole run, so one flow")
	interval := fs.Duration("interval", time.Millisecond, "time between datagrams")
	duration := fs.Duration("duration", 10*time.Second, "how long to send (0: until SIGTERM/SIGINT or --count)")
	count := fs.Int("count", 0, "stop after `n` datagrams (0: no limit)")
	size := fs.Int("size", 64, "datagram size in `bytes`")
	report := fs.String("report", "", "also write the JSON report to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	dst, err := netip.ParseAddrPort(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	var src netip.Addr
	if *from != "" {
		if src, err = netip.ParseAddr(*from); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
	} else if dst.Addr().Is6() {
		src = netip.IPv6Unspecified()
	} else {
		src = netip.IPv4Unspecified()
	}
	switch {
	case *sport < 0 || *sport > 65535:
		return fmt.Errorf("--sport %d out of range", *sport)
	case *interval <= 0:
		return errors.New("--interval must be positive")
	case *duration < 0 || *count < 0:
		return errors.New("--duration and --count must not be negative")
	case *size < headerLen || *size > 65507:
		return fmt.Errorf("--size must be %d..65507", headerLen)
	}

	// Unconnected, so ICMP errors from the path do not fail later sends.
	conn, err := net.ListenUDP(udpNetwork(dst.Addr()), net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, uint16(*sport))))
	if err != nil {
		return err
	}
	defer conn.Close()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	r := send(ctx, conn, dst, *interval, *count, *size)
	r.Source = conn.LocalAddr().String()
	if *report != "" {
		if err := writeReport(*report, r); err != nil {
			return err
		}
	}
	return writeReport("", r)
}

// send is the sending loop. Every datagram uses the next sequence number,
// including those whose send fails, so the sink counts them as lost.
func send(ctx context.Context, conn *net.UDPConn, dst netip.AddrPort, interval time.Duration, count, size int) lab.SendReport {
	var r lab.SendReport
	buf := make([]byte, size)
	t := time.NewTicker(interval)
	defer t.Stop()
	for seq := uint64(0); count == 0 || r.Sent < count; seq++ {
		datagram{seq: seq, sentNS: time.Now().UnixNano()}.encode(buf)
		r.Sent++
		if _, err := conn.WriteToUDPAddrPort(buf, dst); err != nil {
			if r.Errors == 0 {
				r.FirstError = err.Error()
			}
			r.Errors++
		}
		select {
		case <-ctx.Done():
			return r
		case <-t.C:
		}
	}
	return r
}

// udpNetwork is "udp4" or "udp6", after the family of a.
func udpNetwork(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "udp6"
	}
	return "udp4"
}
