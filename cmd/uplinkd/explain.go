package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/explain"
	"github.com/uplinkd/uplinkd/netops"
	"github.com/uplinkd/uplinkd/pin"
	"github.com/uplinkd/uplinkd/status"
)

// explainCmd runs `uplinkd explain`: the kernel's route for a new
// connection with the given selectors, and why.
func explainCmd(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) int {
	path := fs.String("config", config.DefaultPath, "configuration file")
	socket := fs.String("socket", "", "status socket (default: the configuration's)")
	from := fs.String("from", "", "source address")
	iif := fs.String("iif", "", "input interface (needs --from); default: the router's own traffic")
	proto := fs.String("proto", "", `"tcp", "udp", "icmp" (ICMPv6 for an IPv6 DEST), "icmp6" or a protocol number`)
	sport := fs.Int("sport", 0, "source port")
	dport := fs.Int("dport", 0, "destination port")
	mark := fs.String("mark", "0", "firewall mark")
	uid := fs.Uint("uid", 0, "uid of the sending process (the router's own traffic)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: uplinkd explain [--config FILE] [--from ADDR] [--iif IF] [--proto P] [--sport N] [--dport N] [--mark M] [--uid U] DEST")
		return exitUsage
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "uplinkd explain: "+format+"\n", a...)
		return exitUsage
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailure
	}
	p := explain.Packet{Iif: *iif, Sport: *sport, Dport: *dport, UID: uint32(*uid)}
	if p.Dst, err = netip.ParseAddr(fs.Arg(0)); err != nil || p.Dst.Zone() != "" {
		return bad("%q is not an IPv4 or IPv6 address", fs.Arg(0))
	}
	p.Dst = p.Dst.Unmap()
	if *from != "" {
		if p.Src, err = netip.ParseAddr(*from); err != nil || p.Src.Zone() != "" {
			return bad("--from %q is not an IPv4 or IPv6 address", *from)
		}
		if p.Src = p.Src.Unmap(); p.Src.Is4() != p.Dst.Is4() {
			return bad("--from %s and %s are of different families", p.Src, p.Dst)
		}
	}
	if *iif != "" && !p.Src.IsValid() {
		return bad("--iif needs --from: the kernel routes a forwarded packet by its source")
	}
	if p.Proto, err = protoNumber(*proto); err != nil {
		return bad("--proto: %v", err)
	}
	if p.Proto == 1 && p.Dst.Is6() {
		p.Proto = 58 // ICMPv6
	}
	if (p.Sport != 0 || p.Dport != 0) && p.Proto == 0 {
		return bad("--sport and --dport need --proto")
	}
	m, err := strconv.ParseUint(*mark, 0, 32)
	if err != nil {
		return bad("--mark %q is not a number", *mark)
	}
	p.Mark = uint32(m)

	links := make(map[int]string)
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Fprintf(stderr, "uplinkd explain: list interfaces: %v\n", err)
		return exitFailure
	}
	q := netops.Query{Dst: p.Dst, Src: p.Src, IPProto: p.Proto, Sport: p.Sport, Dport: p.Dport, Mark: p.Mark}
	for _, i := range ifs {
		links[i.Index] = i.Name
		if i.Name == *iif {
			q.Iif = i.Index
		}
	}
	if *iif != "" && q.Iif == 0 {
		return bad("no interface %q", *iif)
	}
	if q.Iif == 0 {
		u := p.UID
		q.UID = &u
	}
	ans, err := netops.RouteQuery(q)
	if err != nil {
		fmt.Fprintf(stderr, "uplinkd explain: %v\n", err)
		return exitFailure
	}
	in := explain.Input{Config: cfg, Packet: p, Answer: ans, Links: links}
	sock := *socket
	if sock == "" {
		sock = cfg.Status.Socket
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := status.Get(ctx, sock); err == nil {
		in.Status = s
	} else {
		fmt.Fprintf(stderr, "uplinkd explain: no daemon state (%v): the tier in use is not known\n", err)
	}
	if p.Src.IsValid() && p.Sport != 0 && p.Dport != 0 {
		name, err := pinnedUplink(cfg, p)
		if err != nil {
			fmt.Fprintf(stderr, "uplinkd explain: %v\n", err)
		}
		in.Pinned = name
	}
	res := explain.Explain(in)
	fmt.Fprintln(stdout, strings.Join(res.Lines, "\n"))
	if res.Disagree != "" {
		return exitFailure
	}
	return exitOK
}

// pinnedUplink returns the uplink a tracked connection of the flow is
// pinned to (its conntrack mark, named by uplinkd's nftables table), ""
// when there is no such connection or pin.
func pinnedUplink(cfg *config.Config, p explain.Packet) (string, error) {
	if cfg.Routing.MarkMask == 0 {
		return "", nil
	}
	ct, err := netops.DialConntrack(0)
	if err != nil {
		return "", err
	}
	defer ct.Close()
	mark, found, err := ct.MarkOf(uint8(p.Proto), p.Src, p.Dst, uint16(p.Sport), uint16(p.Dport))
	if err != nil || !found || mark&cfg.Routing.MarkMask == 0 {
		return "", err
	}
	t, err := pin.Open(pin.Config{Mask: cfg.Routing.MarkMask})
	if err != nil {
		return "", err
	}
	defer t.Close()
	ups, err := t.Current()
	if err != nil {
		return "", err
	}
	for _, u := range ups {
		if u.Mark == mark&cfg.Routing.MarkMask {
			return u.Name, nil
		}
	}
	return fmt.Sprintf("(unknown mark %#x)", mark&cfg.Routing.MarkMask), nil
}

func protoNumber(s string) (int, error) {
	switch s {
	case "":
		return 0, nil
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmp6", "ipv6-icmp":
		return 58, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 255 {
		return 0, fmt.Errorf("%q: want tcp, udp, icmp, icmp6 or 1..255", s)
	}
	return n, nil
}
