package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/uplinkd/uplinkd/test/ispemu"
)

// runISPEmu is `labtool ispemu`: the ISP emulator, run in the lab's
// Internet namespace (see package ispemu).
func runISPEmu(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ispemu", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	control := fs.String("control", "", "unix socket `path` that accepts mode changes (required)")
	var modes []string
	fs.Func("mode", "initial `IFACE=MODE` (\"isp2=loss=40%\", \"isp1=slow\"); repeatable", func(s string) error {
		modes = append(modes, s)
		return nil
	})
	var listen, serveHTTP, serveDNS []string
	fs.Func("dns", "also answer DNS queries on UDP `ADDR:PORT` (any name); repeatable", func(s string) error {
		serveDNS = append(serveDNS, s)
		return nil
	})
	fs.Func("tcp", "also accept TCP connections on `ADDR:PORT` (a target for TCP probes); repeatable", func(s string) error {
		listen = append(listen, s)
		return nil
	})
	fs.Func("http", "also serve HTTP on `ADDR:PORT`: 204, or a redirect through a captive ISP; repeatable", func(s string) error {
		serveHTTP = append(serveHTTP, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *control == "" {
		return fmt.Errorf("--control is required")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx) // ends the listeners, before Wait
	defer cancel()
	for _, addr := range listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--tcp: %w", err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			ln.Close()
		}()
		go func() {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return // closed
				}
				c.Close()
			}
		}()
	}
	for _, addr := range serveDNS {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("--dns: %w", err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			pc.Close()
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return // closed
				}
				if resp, ok := ispemu.DNSAnswer(buf[:n]); ok {
					_, _ = pc.WriteTo(resp, from)
				}
			}
		}()
	}
	var e ispemu.Emulator
	for _, addr := range serveHTTP {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		srv := &http.Server{Handler: &e, ReadHeaderTimeout: 5 * time.Second}
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			srv.Close()
		}()
		go func() {
			defer wg.Done()
			_ = srv.Serve(ln) // until Close
		}()
	}
	for _, m := range modes {
		iface, spec, ok := strings.Cut(m, "=")
		if !ok {
			return fmt.Errorf("--mode %q: want IFACE=MODE", m)
		}
		mode, err := ispemu.ParseMode(strings.Split(spec, ","))
		if err != nil {
			return fmt.Errorf("--mode %q: %w", m, err)
		}
		e.Set(iface, mode)
	}
	return e.Run(ctx, *control, func() {
		// Readiness line: the lab waits for it.
		fmt.Printf("ispemu: listening on %s\n", *control)
	})
}

// runISPCtl is `labtool ispctl`: one command to a running emulator.
func runISPCtl(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ispctl", flag.ContinueOnError)
	fs.SetOutput(flagOutput)
	control := fs.String("control", "", "the emulator's control socket `path` (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *control == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: ispctl --control PATH set IFACE MODE... | stats")
	}
	out, err := ispemu.Client{Control: *control}.Do(ctx, strings.Join(fs.Args(), " "))
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stdout, out)
	return nil
}
