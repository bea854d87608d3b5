package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SplitFirstPort is the first UDP source port Split uses; it uses
// SplitFirstPort..SplitFirstPort+n-1.
const SplitFirstPort = 1024

// RouteGet returns the output device of the router's route for a UDP
// datagram from "from" to dst entering on interface iif (a forwarded
// datagram; iif "" asks for a locally generated one), with the given ports
// (0 leaves a port out). The kernel hashes the ports when
// fib_multipath_hash_policy is 1, so this is the path a flow really takes.
func (l *Lab) RouteGet(ctx context.Context, dst, from netip.Addr, iif string, sport, dport int) (string, error) {
	out, err := l.IP(ctx, Router, append([]string{"-j"}, routeGetArgs(dst, from, iif, sport, dport)...)...)
	if err != nil {
		return "", err
	}
	return parseRouteGet(out)
}

func routeGetArgs(dst, from netip.Addr, iif string, sport, dport int) []string {
	args := []string{"route", "get", dst.String()}
	if from.IsValid() {
		args = append(args, "from", from.String())
	}
	if iif != "" {
		args = append(args, "iif", iif)
	}
	args = append(args, "ipproto", "udp")
	if sport != 0 {
		args = append(args, "sport", strconv.Itoa(sport))
	}
	if dport != 0 {
		args = append(args, "dport", strconv.Itoa(dport))
	}
	return args
}

// parseRouteGet returns the device of `ip -j route get` output.
func parseRouteGet(out string) (string, error) {
	var routes []struct {
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return "", fmt.Errorf("parse ip route get output %q: %w", out, err)
	}
	if len(routes) != 1 || routes[0].Dev == "" {
		return "", fmt.Errorf("ip route get: no device in %q", out)
	}
	return routes[0].Dev, nil
}

// Split asks the router for the route of n UDP flows from HostAddr to
// Target1 port 9, entering on the LAN link, with the distinct source ports
// SplitFirstPort..SplitFirstPort+n-1, and counts the flows per output
// device. All lookups run in one `ip -batch` process.
func (l *Lab) Split(ctx context.Context, n int) (map[string]int, error) {
	if n < 1 || SplitFirstPort+n-1 > 65535 {
		return nil, fmt.Errorf("lab: Split: n=%d out of range 1..%d", n, 65536-SplitFirstPort)
	}
	devs, err := l.Paths(ctx, SplitFlows(n))
	if err != nil {
		return nil, err
	}
	split := make(map[string]int)
	for _, d := range devs {
		split[d]++
	}
	return split, nil
}

// SplitFlows are the n flows Split counts: from HostAddr, source ports
// SplitFirstPort..SplitFirstPort+n-1.
func SplitFlows(n int) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		flows[i] = Flow{Src: HostAddr, Sport: SplitFirstPort + i}
	}
	return flows
}

// Flow is a UDP flow from a LAN address and port to Target1 port 9.
type Flow struct {
	Src   netip.Addr
	Sport int
}

// LANFlows returns n distinct flows of the LAN host, alternating between
// its two addresses, with source ports from SplitFirstPort on.
func LANFlows(n int) []Flow {
	flows := make([]Flow, n)
	for i := range flows {
		src := HostAddr
		if i%2 == 1 {
			src = HostAddr2
		}
		flows[i] = Flow{Src: src, Sport: SplitFirstPort + i/2}
	}
	return flows
}

// Paths returns the router's output device for each flow, entering on the
// LAN link, in order. All lookups run in one `ip -batch` process.
func (l *Lab) Paths(ctx context.Context, flows []Flow) ([]string, error) {
	var in strings.Builder
	for _, f := range flows {
		in.WriteString(strings.Join(routeGetArgs(Target1, f.Src, RouterLANLink, f.Sport, 9), " "))
		in.WriteByte('\n')
	}
	out, err := runIPInput(ctx, in.String(), "-n", l.NS(Router), "-j", "-batch", "-")
	if err != nil {
		return nil, err
	}
	devs := make([]string, 0, len(flows))
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		dev, err := parseRouteGet(sc.Text())
		if err != nil {
			return nil, err
		}
		devs = append(devs, dev)
	}
	if len(devs) != len(flows) {
		return nil, fmt.Errorf("lab: %d answers to %d route lookups", len(devs), len(flows))
	}
	return devs, nil
}
