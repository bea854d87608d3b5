package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// runSink receives datagrams until ctx is cancelled, then writes the report.
func runSink(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("udpsink", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	listen := fs.String("listen", "", "`addr:port` to receive on, e.g. 198.18.0.1:9000")
	report := fs.String("report", "", "write the JSON report to `file` (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	conn, err := net.ListenUDP(udpNetwork(addr.Addr()), net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	defer conn.Close()
	// A failover test must not lose datagrams to a full socket buffer,
	// also when this process is starved for a second on a busy machine:
	// as root, past net.core.rmem_max (212992 bytes by default).
	if err := setReadBuffer(conn, 4<<20); err != nil {
		return err
	}
	// Readiness line: tests wait for it before they start senders.
	fmt.Printf("udpsink: listening on %s\n", conn.LocalAddr())

	stopCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-stopCtx.Done()
		// Wakes the blocked read; receive then takes in what the
		// kernel holds.
		_ = conn.SetReadDeadline(time.Unix(1, 0))
	}()
	stats := &sinkStats{}
	err = receive(stopCtx, conn, stats)
	signalled := ctx.Err() != nil
	cancel()
	<-stopped
	if !signalled {
		return err // the socket failed on its own
	}
	if err != nil {
		return err
	}
	return writeReport(*report, stats.report(time.Now()))
}

// setReadBuffer sets conn's receive buffer to n bytes: with SO_RCVBUFFORCE
// where allowed (CAP_NET_ADMIN), else as far as net.core.rmem_max lets it.
func setReadBuffer(conn *net.UDPConn, n int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return err
	}
	if serr == nil {
		return nil
	}
	if err := conn.SetReadBuffer(n); err != nil {
		return fmt.Errorf("receive buffer of %d bytes: %w", n, err)
	}
	return nil
}

// receive reads datagrams into stats until ctx is done, then the ones the
// kernel still holds (a sender stopped just before the sink must find all
// its datagrams counted, however late this process ran), and returns.
func receive(ctx context.Context, conn *net.UDPConn, stats *sinkStats) error {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				return drain(conn, buf, stats)
			}
			return err
		}
		take(stats, from, buf[:n], now)
	}
}

// take counts datagram b from a sender; stray traffic is ignored.
func take(stats *sinkStats, from netip.AddrPort, b []byte, now time.Time) {
	if d, err := decode(b); err == nil {
		stats.add(from.String(), d, now)
	}
}

// drain takes in, without waiting, the datagrams queued on conn.
func drain(conn *net.UDPConn, buf []byte, stats *sinkStats) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	err = rc.Control(func(fd uintptr) {
		for {
			n, from, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) {
					rerr = fmt.Errorf("drain the socket: %w", err)
				}
				return
			}
			var ap netip.AddrPort
			switch sa := from.(type) {
			case *unix.SockaddrInet4:
				ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
			case *unix.SockaddrInet6:
				ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
			default:
				continue
			}
			take(stats, ap, buf[:n], time.Now())
		}
	})
	if err != nil {
		return err
	}
	return rerr
}

// writeReport writes v as JSON to file (atomically) or to standard output.
func writeReport(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if file == "" {
		_, err := os.Stdout.Write(b)
		return err
	}
	// Readers poll for the file: never let them see half of it.
	tmp, err := os.CreateTemp(filepath.Dir(file), ".report-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), file)
}
