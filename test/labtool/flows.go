package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// runFlows runs lab.FlowClient flows to a flowsink until the duration
// ends or ctx is cancelled, writing its lab.FlowSnapshot to --report every
// --every and at the end.
func runFlows(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flows", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	to := fs.String("to", "", "flowsink `addr:port`, e.g. 198.18.0.1:9100 or [2001:db8:ffff::1]:9100")
	from := fs.String("from", "", "comma-separated source `addrs`, used in turn (required)")
	tcp := fs.Int("tcp", 128, "TCP connections")
	udp := fs.Int("udp", 128, "UDP flows")
	interval := fs.Duration("interval", 20*time.Millisecond, "time between two records of a flow")
	hang := fs.Duration("hang-after", 2*time.Second, "a TCP record unanswered this long without an error is a hang")
	duration := fs.Duration("duration", 0, "how long to run (0: until SIGTERM/SIGINT)")
	every := fs.Duration("every", 0, "also write the report this often (0: only at the end)")
	uplinks := fs.String("uplinks", "", "name source addresses the sink sees: `addr=name,...` (e.g. 198.51.100.2=isp1)")
	report := fs.String("report", "", "write the JSON report to `file` (default: standard output, at the end)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	sink, err := netip.ParseAddrPort(*to)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	var srcs []netip.Addr
	for s := range strings.SplitSeq(*from, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		srcs = append(srcs, a)
	}
	names := map[netip.Addr]string{}
	if *uplinks != "" {
		for kv := range strings.SplitSeq(*uplinks, ",") {
			k, v, ok := strings.Cut(kv, "=")
			a, err := netip.ParseAddr(k)
			if !ok || err != nil || v == "" {
				return fmt.Errorf("--uplinks: bad %q, want addr=name", kv)
			}
			names[a] = v
		}
	}
	switch {
	case *tcp < 0 || *udp < 0 || *tcp+*udp == 0:
		return errors.New("--tcp and --udp must not be negative, and not both 0")
	case *interval <= 0 || *hang <= 0:
		return errors.New("--interval and --hang-after must be positive")
	case *duration < 0 || *every < 0:
		return errors.New("--duration and --every must not be negative")
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	name := func(a netip.Addr) string {
		if n, ok := names[a]; ok {
			return n
		}
		return a.String()
	}
	c, err := lab.StartFlowClient(ctx, lab.FlowClientOptions{
		Sink: sink, Sources: srcs, TCP: *tcp, UDP: *udp, Interval: *interval, HangAfter: *hang, Uplink: name,
	})
	if err != nil {
		return err
	}
	fmt.Printf("flows: %d TCP and %d UDP flows to %s\n", *tcp, *udp, sink)
	write := func() error {
		return writeReport(*report, lab.FlowSnapshot{At: time.Now(), Flows: c.Snapshot()})
	}
	var tick <-chan time.Time
	if *every > 0 && *report != "" {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			c.Close()
			return write()
		case <-tick:
			if err := write(); err != nil {
				c.Close()
				return err
			}
		}
	}
}

// runFlowSink echoes flow records on UDP and TCP until ctx is cancelled,
// then writes which source addresses it saw for each flow.
func runFlowSink(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("flowsink", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	listen := fs.String("listen", "", "`addr:port` to listen on, UDP and TCP, e.g. 198.18.0.1:9100 or [2001:db8:ffff::1]:9100")
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
	udpNet, tcpNet := "udp4", "tcp4"
	if udpNetwork(addr.Addr()) == "udp6" {
		udpNet, tcpNet = "udp6", "tcp6"
	}
	udp, err := net.ListenUDP(udpNet, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return err
	}
	tcp, err := net.Listen(tcpNet, addr.String())
	if err != nil {
		udp.Close()
		return err
	}
	s := lab.ServeFlowSink(udp, tcp)
	// Readiness line: tests wait for it before they start clients.
	fmt.Printf("flowsink: listening on %s (udp and tcp)\n", addr)
	<-ctx.Done()
	err = s.Close()
	return errors.Join(err, writeReport(*report, s.Sources()))
}
