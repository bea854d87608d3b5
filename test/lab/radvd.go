package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RA is what an ISP's router advertisements say on its access link.
type RA struct {
	// RouterLifetime is AdvDefaultLifetime (whole seconds, 4s to 9000s):
	// how long the router may use the ISP as its default router. Zero
	// advertises "not a default router": the router drops its default
	// route from RAs at once.
	RouterLifetime time.Duration
	// Prefix, when valid, is advertised on-link and for SLAAC.
	Prefix netip.Prefix
}

// DefaultRA is an ISP that announces itself as default router for 30
// minutes, every 3 to 4 seconds.
var DefaultRA = RA{RouterLifetime: 30 * time.Minute}

// RADVD is radvd running in an ISP's namespace (StartRADVD).
type RADVD struct {
	l       *Lab
	where   string // the namespace's short name
	conf    string
	pidfile string
	managed bool // the lab writes conf (StartRADVD): Set works
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	err     error         // cmd.Wait's result, valid once done is closed
}

// StartRADVD runs radvd (the real daemon) on isp's access link, which
// sends router advertisements from the ISP's link-local address Gateway6,
// with its configuration, pid file and log in dir. The router's uplinks
// accept them (accept_ra 2) in a dual-stack lab: they install a default
// route via fe80::1 with proto ra in the router's main table.
func (l *Lab) StartRADVD(ctx context.Context, isp, dir string, ra RA) (*RADVD, error) {
	if _, err := l.lookupISP(isp); err != nil {
		return nil, err
	}
	if !l.opts.IPv6 {
		return nil, fmt.Errorf("lab: StartRADVD: the lab has no IPv6")
	}
	r := &RADVD{l: l, where: isp, conf: filepath.Join(dir, isp+"-radvd.conf"), managed: true, done: make(chan struct{})}
	if err := r.write(ra); err != nil {
		return nil, err
	}
	if err := r.start(ctx, isp, dir, isp+"-radvd"); err != nil {
		return nil, err
	}
	return r, nil
}

// StartRADVDConfig runs radvd in namespace ns with the configuration file
// conf as it is (for instance the router's own radvd, advertising the
// delegated prefixes on the LAN), its pid file in dir/radvd.pid (see
// PIDFile) and its log in dir/radvd.log. Set cannot be used on it: change
// the file and send SIGHUP (Reload).
func (l *Lab) StartRADVDConfig(ctx context.Context, ns, conf, dir string) (*RADVD, error) {
	r := &RADVD{l: l, where: ns, conf: conf, done: make(chan struct{})}
	if err := r.start(ctx, ns, dir, "radvd"); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *RADVD) start(ctx context.Context, ns, dir, name string) error {
	bin := "radvd"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "/usr/sbin/radvd"
	}
	r.pidfile = filepath.Join(dir, name+".pid")
	cmd, err := r.l.Start(ctx, ns, filepath.Join(dir, name+".log"), bin,
		"--nodaemon", "--config", r.conf, "--pidfile", r.pidfile,
		"--logmethod", "stderr", "--debug", "1")
	if err != nil {
		return err
	}
	r.cmd = cmd
	go func() {
		r.err = cmd.Wait()
		close(r.done)
	}()
	return nil
}

// PIDFile is the file radvd writes its process ID to.
func (r *RADVD) PIDFile() string { return r.pidfile }

// radvdConfig is radvd's configuration for ra: advertisements every 3 to
// 4 seconds (radvd's minimum) on the ISP's access link.
func radvdConfig(ra RA) (string, error) {
	life := int(ra.RouterLifetime / time.Second)
	if life != 0 && (life < 4 || life > 9000) {
		return "", fmt.Errorf("lab: RA router lifetime %v: want 0 or 4s to 9000s", ra.RouterLifetime)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "interface %s {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 4;\n\tAdvDefaultLifetime %d;\n", ispDownLink, life)
	if ra.Prefix.IsValid() {
		fmt.Fprintf(&b, "\tprefix %s {\n\t\tAdvOnLink on;\n\t\tAdvAutonomous on;\n\t};\n", ra.Prefix.Masked())
	}
	b.WriteString("};\n")
	return b.String(), nil
}

func (r *RADVD) write(ra RA) error {
	c, err := radvdConfig(ra)
	if err != nil {
		return err
	}
	if err := os.WriteFile(r.conf, []byte(c), 0o644); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// Set rewrites radvd's configuration and makes it reload (SIGHUP); radvd
// then advertises ra at once. Set(RA{}) sends the zero-lifetime RA that
// withdraws the ISP as default router while radvd keeps running.
func (r *RADVD) Set(ra RA) error {
	if !r.managed {
		return fmt.Errorf("lab: radvd at %s runs %s as given: Set cannot rewrite it", r.where, r.conf)
	}
	if err := r.write(ra); err != nil {
		return err
	}
	return r.Reload()
}

// Reload makes radvd re-read its configuration (SIGHUP).
func (r *RADVD) Reload() error {
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("lab: radvd at %s: %w", r.where, err)
	}
	return nil
}

// Stop terminates radvd (SIGTERM), which first sends a final advertisement
// with router lifetime 0, and waits for it to exit.
func (r *RADVD) Stop(ctx context.Context) error {
	select {
	case <-r.done:
		return fmt.Errorf("lab: radvd at %s exited early: %v", r.where, r.err)
	default:
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("lab: radvd at %s: %w", r.where, err)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return fmt.Errorf("lab: radvd at %s did not stop: %w", r.where, ctx.Err())
	}
	// ip netns exec passes radvd's status through.
	if r.err != nil {
		return fmt.Errorf("lab: radvd at %s: %w", r.where, r.err)
	}
	return nil
}
