package tools

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/uplinkd/uplinkd/test/lab"
)

// DNSAddr is where the lab's DNS server (dnsmasq, in the LAN host's
// namespace) listens; it answers the seed's `host www.google.fr` with
// SeedTarget. That is not Target1, where the bench's flows go: while ISP2
// is out, the seed routes all traffic to its test address through ISP2
// for its check.
var (
	DNSAddr    = lab.HostAddr
	SeedTarget = lab.Target2
)

// Seed runs the seed's scripts in a lab's router namespace: the if-up
// script as ifupdown runs it when eth2 comes up (IFACE=eth2), then the
// ping daemon, whose /etc/resolv.conf names the lab's DNS server (a
// private mount namespace bind-mounts it; nothing on the host changes).
type Seed struct {
	Lab     *lab.Lab
	Dir     string            // the scripts, their log and pid files, the DNS server's log
	Scripts map[string]string // from MapSeed

	daemon *exec.Cmd
	exited chan struct{}
}

func (s *Seed) Name() string { return "seed" }

// Start starts the DNS server, runs the if-up script and starts the ping
// daemon.
func (s *Seed) Start(ctx context.Context) error {
	for _, tool := range []string{"ip", "ipcalc", "host", "ping", "dnsmasq", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the seed needs %s: %w", tool, err)
		}
	}
	if err := WriteSeed(s.Scripts, s.Dir); err != nil {
		return err
	}
	resolv := filepath.Join(s.Dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+DNSAddr.String()+"\n"), 0o644); err != nil {
		return err
	}
	_, err := s.Lab.Start(ctx, lab.Host, filepath.Join(s.Dir, "dnsmasq.log"), "dnsmasq", "--keep-in-foreground",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address="+DNSAddr.String(),
		"--address=/www.google.fr/"+SeedTarget.String(), "--pid-file=", "--log-facility=-")
	if err != nil {
		return err
	}
	// The seed resolves through the router's /etc/resolv.conf: check the
	// answer the same way before starting it.
	err = poll(ctx, 50*time.Millisecond, "the lab's DNS server", func() (bool, error) {
		out, err := s.Lab.Exec(ctx, lab.Router, "host", "-t", "A", "www.google.fr", DNSAddr.String())
		return err == nil, fmt.Errorf("%v: %s", err, out)
	})
	if err != nil {
		return err
	}
	if out, err := s.Lab.Exec(ctx, lab.Router, "env", "IFACE=eth2", "bash", filepath.Join(s.Dir, "enable_balanced_routing")); err != nil {
		return fmt.Errorf("seed if-up script: %w: %s", err, out)
	}
	cmd, err := s.Lab.Start(ctx, lab.Router, filepath.Join(s.Dir, "daemon.out"),
		"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$0" /etc/resolv.conf && exec env SEED_RUN_DIR="$1" bash "$2"`,
		resolv, s.Dir, filepath.Join(s.Dir, "check_isp_connectivity.sh"))
	if err != nil {
		return err
	}
	s.daemon, s.exited = cmd, make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// WaitBalanced waits until main's default route is the seed's multipath
// route over both ISPs.
func (s *Seed) WaitBalanced(ctx context.Context) error {
	return poll(ctx, 20*time.Millisecond, "the seed's balanced default route", func() (bool, error) {
		select {
		case <-s.exited:
			return false, fmt.Errorf("the seed's ping daemon exited; see %s", s.Dir)
		default:
		}
		n, err := s.defaultNexthops()
		return n == 2, err
	})
}

// defaultNexthops counts the next hops of main's default route.
func (s *Seed) defaultNexthops() (int, error) {
	ns, err := netns.GetFromName(s.Lab.NS(lab.Router))
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: syscall.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return 0, err
	}
	for _, r := range routes {
		isDefault := r.Dst == nil
		if !isDefault {
			ones, _ := r.Dst.Mask.Size()
			isDefault = ones == 0
		}
		if isDefault {
			if len(r.MultiPath) > 0 {
				return len(r.MultiPath), nil
			}
			return 1, nil
		}
	}
	return 0, nil
}

// Reset does nothing: the seed keeps no state between runs but its
// 5-second loop, whose phase is as random as a real fault's time.
func (s *Seed) Reset(context.Context) error { return nil }

// Stop ends the ping daemon the way its init script does (SIGTERM; it
// stops after its current sleep).
func (s *Seed) Stop() error {
	if s.daemon == nil {
		return nil
	}
	_ = s.daemon.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		// The lab kills it with its namespace.
	}
	return nil
}
