package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The point-to-point link between the router and ISP3 (a lab made with
// Options.ThirdISP), modelled by `labtool tunpair`: PPPLink on both ends,
// the router's local address PPPRouterAddr, ISP3's PPPPeerAddr.
const PPPLink = "ppp0"

var (
	PPPRouterAddr = netip.MustParseAddr("198.18.50.2")
	PPPPeerAddr   = netip.MustParseAddr("198.18.50.1")
)

// StartPointToPoint brings up the point-to-point link to ISP3 as a PPP
// session does: the tun pair appears, then both ends get their addresses
// (local and peer) and go up. Killing the returned process ends the
// session: both interfaces disappear. Signal it SIGUSR1 to take the
// router end's carrier away, SIGUSR2 to give it back.
func (l *Lab) StartPointToPoint(ctx context.Context, labtool, dir string) (*exec.Cmd, error) {
	if _, err := l.lookupISP(ISP3); err != nil {
		return nil, fmt.Errorf("lab: a point-to-point link needs Options.ThirdISP: %w", err)
	}
	log := filepath.Join(dir, "tunpair.log")
	mark := fileSize(log)
	cmd, err := l.Start(ctx, Router, log, labtool, "tunpair", "--name", PPPLink, "--peer", l.NS(ISP3))
	if err != nil {
		return nil, err
	}
	if err := waitLogAfter(ctx, log, mark, "tunpair: up"); err != nil {
		return nil, err
	}
	isp3Up := isp3.upAddr.Addr().String()
	err = l.runSteps(ctx, []step{
		{ISP3, []string{"addr", "add", PPPPeerAddr.String(), "peer", PPPRouterAddr.String(), "dev", PPPLink}},
		{ISP3, []string{"link", "set", PPPLink, "up"}},
		{Inet, []string{"route", "replace", netip.PrefixFrom(PPPRouterAddr, 32).String(), "via", isp3Up}},
		{Router, []string{"addr", "add", PPPRouterAddr.String(), "peer", PPPPeerAddr.String(), "dev", PPPLink}},
		{Router, []string{"link", "set", PPPLink, "up"}},
	})
	if err != nil {
		return nil, err
	}
	return cmd, nil
}

func fileSize(name string) int64 {
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitLogAfter is WaitLog for what file gained after offset, within 10s.
func waitLogAfter(ctx context.Context, file string, offset int64, substr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		b, _ := os.ReadFile(file)
		if int64(len(b)) > offset && strings.Contains(string(b[offset:]), substr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: waiting for %q in %s: %w (log: %q)", substr, file, ctx.Err(), b[min(int64(len(b)), offset):])
		case <-t.C:
		}
	}
}
