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
	// A failover test must not lose datagrams to a full socket buffer.
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		conn.Close()
		return err
	}
	// Readiness line: tests wait for it before they start senders.
	fmt.Printf("udpsink: listening on %s\n", conn.LocalAddr())

	stopCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-stopCtx.Done()
		conn.Close()
	}()
	stats, err := receive(conn)
	signalled := ctx.Err() != nil
	cancel()
	<-stopped
	if !signalled {
		return err // the socket failed on its own
	}
	return writeReport(*report, stats.report(time.Now()))
}

// receive reads datagrams until conn is closed.
func receive(conn *net.UDPConn) (*sinkStats, error) {
	stats := &sinkStats{}
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return stats, nil
			}
			return stats, err
		}
		d, err := decode(buf[:n])
		if err != nil {
			continue // stray traffic
		}
		stats.add(from.String(), d, now)
	}
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
