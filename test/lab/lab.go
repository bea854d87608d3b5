package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// closeTimeout bounds Close, which must work even when the context that
// built the lab is already cancelled.
const closeTimeout = 30 * time.Second

// Lab is one instance of the topology described in the package
// documentation. Its methods may be called from several goroutines.
type Lab struct {
	prefix     string
	isps       []isp // ISP1, ISP2 and, with Options.ThirdISP, ISP3
	opts       Options
	namespaces []string // short names, in creation order

	mu      sync.Mutex
	closed  bool
	created []string           // full names of the namespaces New created
	procs   []*proc            // processes started with Start
	uplinks map[string]*uplink // by ISP short name
	// lastIndex is the last interface index given to a veth end (see
	// vethIndexes).
	lastIndex int
}

// uplink is the router's current view of one ISP link; faults change it.
type uplink struct {
	link string       // router interface name (changes with RenameRouterLink)
	addr netip.Prefix // router address (changes with Readdress)
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,9}$`)

// New builds the lab in namespaces named prefix+"-r", prefix+"-h",
// prefix+"-isp1", prefix+"-isp2" and prefix+"-inet". prefix is one lower-case
// letter followed by at most nine letters or digits. None of the namespaces
// may exist yet. On error, everything New created is removed again.
func New(ctx context.Context, prefix string) (*Lab, error) {
	return NewWithOptions(ctx, prefix, Options{})
}

// Options are the variations of the lab.
type Options struct {
	// ThirdISP adds ISP3 (namespace prefix+"-isp3"), reached from the
	// router's eth3 (ISP3RouterAddr, gateway ISP3Gateway).
	ThirdISP bool
	// IPv6 makes the lab dual-stack (see topology6.go): link-local ISP
	// gateways (Gateway6), a global router address on each access link,
	// a delegated LAN prefix per ISP on the router's LAN interface and
	// the host, IPv6 targets in the Internet namespace.
	IPv6 bool
	// PrefixOnlyISP2 (with IPv6) leaves the router's link to isp2 with its
	// link-local address only: isp2 delegates ISP2LANPrefix6 and nothing
	// else, as many ISPs do.
	PrefixOnlyISP2 bool
}

// NewWithOptions is New with variations.
func NewWithOptions(ctx context.Context, prefix string, opts Options) (*Lab, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("lab: bad prefix %q: want %s", prefix, prefixRE)
	}
	if opts.PrefixOnlyISP2 && !opts.IPv6 {
		return nil, fmt.Errorf("lab: PrefixOnlyISP2 needs IPv6")
	}
	l := &Lab{prefix: prefix, opts: opts, uplinks: make(map[string]*uplink), isps: slices.Clone(isps), namespaces: slices.Clone(namespaces)}
	if opts.ThirdISP {
		l.isps = append(l.isps, isp3)
		l.namespaces = append(l.namespaces, ISP3)
	}
	for _, i := range l.isps {
		l.uplinks[i.name] = &uplink{link: i.routerLink, addr: i.routerAddr}
	}
	if err := l.build(ctx); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, fmt.Errorf("lab %s: %w", prefix, err)
	}
	return l, nil
}

// step is one ip invocation: "ip -n NS args..." with NS a short name.
type step struct {
	ns   string
	args []string
}

func (l *Lab) build(ctx context.Context) error {
	for _, ns := range l.namespaces {
		full := l.NS(ns)
		if _, err := runIP(ctx, "netns", "add", full); err != nil {
			return err
		}
		l.mu.Lock()
		l.created = append(l.created, full)
		l.mu.Unlock()
	}

	// Links first: sysctls name them and addresses need them.
	var steps []step
	add := func(ns string, args ...string) { steps = append(steps, step{ns, args}) }
	add(Router, l.vethArgs(RouterLANLink, HostLink, Host)...)
	for _, i := range l.isps {
		add(Router, l.vethArgs(i.routerLink, ispDownLink, i.name)...)
		add(i.name, l.vethArgs(ispUpLink, i.name, Inet)...)
	}
	if err := l.runSteps(ctx, steps); err != nil {
		return err
	}

	links := map[string][]string{
		Router: {RouterLANLink},
		Host:   {HostLink},
	}
	for _, i := range l.isps {
		links[Router] = append(links[Router], i.routerLink)
		links[i.name] = []string{ispDownLink, ispUpLink}
		links[Inet] = append(links[Inet], i.name)
	}
	for _, ns := range l.namespaces {
		kv := sysctls(ns, links[ns])
		if l.opts.IPv6 {
			kv = append(kv, sysctls6(ns, links[ns])...)
		}
		if err := l.sysctl(ctx, ns, kv...); err != nil {
			return err
		}
	}

	steps = steps[:0]
	add(Router, "addr", "add", netip.PrefixFrom(RouterLANAddr, LANPrefix.Bits()).String(), "dev", RouterLANLink)
	add(Host, "addr", "add", netip.PrefixFrom(HostAddr, LANPrefix.Bits()).String(), "dev", HostLink)
	add(Host, "addr", "add", netip.PrefixFrom(HostAddr2, LANPrefix.Bits()).String(), "dev", HostLink)
	for _, i := range l.isps {
		add(Router, "addr", "add", i.routerAddr.String(), "dev", i.routerLink)
		add(i.name, "addr", "add", i.gateway.String(), "dev", ispDownLink)
		add(i.name, "addr", "add", i.upAddr.String(), "dev", ispUpLink)
		add(Inet, "addr", "add", i.inetAddr.String(), "dev", i.name)
	}
	add(Inet, "addr", "add", netip.PrefixFrom(Target1, 32).String(), "dev", "lo")
	add(Inet, "addr", "add", netip.PrefixFrom(Target2, 32).String(), "dev", "lo")
	add(Inet, "addr", "add", netip.PrefixFrom(Target3, 32).String(), "dev", "lo")
	if l.opts.IPv6 {
		l.addrSteps6(add)
	}
	for _, ns := range l.namespaces {
		add(ns, "link", "set", "lo", "up")
		for _, link := range links[ns] {
			add(ns, "link", "set", link, "up")
		}
	}
	add(Host, "route", "add", "default", "via", RouterLANAddr.String())
	for _, i := range l.isps {
		add(i.name, "route", "add", "default", "via", i.inetAddr.Addr().String())
		add(i.name, "route", "add", LANPrefix.String(), "via", i.routerAddr.Addr().String())
		add(Inet, "route", "add", i.routerAddr.Masked().String(), "via", i.upAddr.Addr().String())
	}
	// No NAT: the LAN's return path is always isp1.
	add(Inet, "route", "add", LANPrefix.String(), "via", isps[0].upAddr.Addr().String())
	add(Router, adminDefault(isps[0].routerLink)...)
	if l.opts.IPv6 {
		l.routeSteps6(add)
	}
	if err := l.runSteps(ctx, steps); err != nil {
		return err
	}
	// Ready for traffic (ready.go): every link operationally up and, in
	// a dual-stack lab, no IPv6 address tentative.
	if err := l.waitLinksUp(ctx, links); err != nil {
		return err
	}
	if l.opts.IPv6 {
		return l.waitReady6(ctx)
	}
	return nil
}

// runSteps runs steps in order, one ip -batch per run of steps in the same
// namespace, and reports the failing command with ip's message.
func (l *Lab) runSteps(ctx context.Context, steps []step) error {
	for len(steps) > 0 {
		n := 1
		for n < len(steps) && steps[n].ns == steps[0].ns {
			n++
		}
		if err := l.batch(ctx, steps[0].ns, steps[:n]); err != nil {
			return err
		}
		steps = steps[n:]
	}
	return nil
}

var batchFailRE = regexp.MustCompile(`Command failed -:(\d+)`)

// batch runs steps (all in namespace ns) with one "ip -n NS -batch -".
func (l *Lab) batch(ctx context.Context, ns string, steps []step) error {
	if len(steps) == 1 {
		_, err := l.IP(ctx, ns, steps[0].args...)
		return err
	}
	var in strings.Builder
	for _, s := range steps {
		in.WriteString(strings.Join(s.args, " "))
		in.WriteByte('\n')
	}
	full, err := l.resolve(ns)
	if err != nil {
		return err
	}
	_, err = runIPInput(ctx, in.String(), "-n", full, "-batch", "-")
	if err == nil {
		return nil
	}
	// Name the command that failed rather than the whole batch.
	var n int
	if m := batchFailRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &n)
	}
	if n >= 1 && n <= len(steps) {
		return fmt.Errorf("ip -n %s %s: %w", full, strings.Join(steps[n-1].args, " "), err)
	}
	return err
}

// sysctl sets keys (key=value) in namespace ns.
func (l *Lab) sysctl(ctx context.Context, ns string, kv ...string) error {
	_, err := l.Exec(ctx, ns, append([]string{"sysctl", "-q", "-w"}, kv...)...)
	return err
}

// NS returns the full network namespace name for a short name: Router,
// Host, ISP1, ISP2, Inet, or ISP3 in a lab with a third ISP. It panics on
// any other name.
func (l *Lab) NS(name string) string {
	if !slices.Contains(l.namespaces, name) {
		panic(fmt.Sprintf("lab: unknown namespace %q", name))
	}
	return l.prefix + "-" + name
}

// resolve accepts a short name or the full name of one of the lab's own
// namespaces, so no method can ever run in the host or a foreign namespace.
func (l *Lab) resolve(ns string) (string, error) {
	for _, n := range l.namespaces {
		if ns == n || ns == l.prefix+"-"+n {
			return l.prefix + "-" + n, nil
		}
	}
	return "", fmt.Errorf("lab %s: unknown namespace %q", l.prefix, ns)
}

// Exec runs args in namespace ns (`ip netns exec NS args...`) and returns
// its combined output. ns is a short name (Router, ...) or the full name.
func (l *Lab) Exec(ctx context.Context, ns string, args ...string) (string, error) {
	full, err := l.resolve(ns)
	if err != nil {
		return "", err
	}
	argv := append([]string{"netns", "exec", full}, args...)
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// IP runs `ip -n NS args...` and returns its standard output; errors carry
// the command and ip's standard error.
func (l *Lab) IP(ctx context.Context, ns string, args ...string) (string, error) {
	full, err := l.resolve(ns)
	if err != nil {
		return "", err
	}
	return runIP(ctx, append([]string{"-n", full}, args...)...)
}

func runIP(ctx context.Context, args ...string) (string, error) {
	return runIPInput(ctx, "", args...)
}

func runIPInput(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", "; ")
		return stdout.String(), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}

// Close kills every process started with Start, then deletes the lab's
// namespaces (which destroys their interfaces). It is idempotent and works
// after a failed or cancelled New.
func (l *Lab) Close() error {
	l.mu.Lock()
	l.closed = true
	procs, created := l.procs, l.created
	l.procs, l.created = nil, nil
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	for _, p := range procs {
		if err := p.kill(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for _, full := range slices.Backward(created) {
		if _, err := runIP(ctx, "netns", "del", full); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
