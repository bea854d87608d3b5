package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one labtool subcommand. run gets the arguments after the
// subcommand's name and a context cancelled by SIGINT or SIGTERM.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

// commands is the subcommand table; each command lives in its own file.
// `labtool demo` (the `make demo` driver) adds its entry here.
var commands = map[string]command{
	"demo":     {"run uplinkd in a lab, break and repair its uplinks, show the failovers (root)", runDemo},
	"flows":    {"run long-lived TCP and UDP flows to a flowsink; write per-flow uplink, gaps, losses, resets", runFlows},
	"flowsink": {"echo flow records on UDP and TCP with the source address seen; report sources per flow", runFlowSink},
	"ispemu":   {"answer ICMP echo per ingress interface with loss, delay and jitter (in a lab namespace)", runISPEmu},
	"ispctl":   {"send a command to a running ispemu: set IFACE MODE..., stats", runISPCtl},
	"tunpair":  {"a point-to-point link: tun devices here and in --peer, packets copied between them (root)", runTunPair},
	"udpsink":  {"receive udpsend datagrams; on SIGTERM/SIGINT write a JSON report", runSink},
	"udpsend":  {"send sequence-numbered, timestamped UDP datagrams from a fixed port", runSend},
}

// flagOutput receives flag errors and usage; tests silence it.
var flagOutput io.Writer = os.Stderr

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "labtool: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cmd.run(ctx, os.Args[2:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "labtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: labtool COMMAND [flags]  (COMMAND -h for its flags)")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", name, commands[name].summary)
	}
}
