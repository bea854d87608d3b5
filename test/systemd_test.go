package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

const unitFile = "../contrib/systemd/uplinkd.service"

// uplinkdBinary returns a built uplinkd: TestMain's, or one built now.
func uplinkdBinary(t *testing.T) string {
	t.Helper()
	if binDir != "" {
		return filepath.Join(binDir, "uplinkd")
	}
	bin := filepath.Join(t.TempDir(), "uplinkd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/uplinkd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// verify runs `systemd-analyze verify` on unit and fails on any complaint:
// it exits 0 even for directives it ignores as invalid.
func verify(t *testing.T, unit string) {
	t.Helper()
	analyze := testutil.RequireTool(t, "systemd-analyze")
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// Acceptance 5: the unit file passes systemd-analyze verify, with its
// programs where they would be installed.
func TestUnitFileVerifies(t *testing.T) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"Type=notify", "WatchdogSec=", "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW", "ProtectSystem=strict",
		"NoNewPrivileges=yes", "RuntimeDirectory=uplinkd", "RestrictAddressFamilies=AF_NETLINK AF_UNIX AF_INET AF_INET6",
		"ExecReload=/usr/local/bin/uplinkd reload",
		// Crash safety of the original hash policy, and SIGUSR2 as the
		// upgrade path.
		"RuntimeDirectoryPreserve=restart", "RestartForceExitStatus=75", "SuccessExitStatus=75",
	} {
		if !strings.Contains(unit, "\n"+want) {
			t.Errorf("unit file lacks %s", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "uplinkd.service")
	unit = strings.ReplaceAll(unit, "/usr/local/bin/uplinkd", uplinkdBinary(t))
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	verify(t, path)

	// The check is worth something: a broken directive is reported.
	bad := filepath.Join(t.TempDir(), "uplinkd.service")
	if err := os.WriteFile(bad, []byte(strings.Replace(unit, "WatchdogSec=10s", "WatchdogSec=soon", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("systemd-analyze", "verify", bad).CombinedOutput()
	if !strings.Contains(string(out), "WatchdogSec") && !strings.Contains(string(out), "soon") {
		t.Errorf("systemd-analyze verify accepted WatchdogSec=soon: %s", out)
	}
}

// make install with DESTDIR and PREFIX puts everything in place.
func TestMakeInstall(t *testing.T) {
	testutil.RequireTool(t, "make")
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+filepath.Join(t.TempDir(), "bin"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/bin/uplinkd":                        0o755,
		"usr/lib/systemd/system/uplinkd.service": 0o644,
		"usr/share/uplinkd/hooks/syslog":         0o755,
		"usr/share/uplinkd/hooks/webhook":        0o755,
		"usr/share/uplinkd/uplinkd.toml":         0o644,
		"etc/uplinkd/uplinkd.toml":               0o640,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
		}
	}
	bin := filepath.Join(dest, "usr/bin/uplinkd")
	if out, err := exec.Command(bin, "check", "--config", filepath.Join(dest, "etc/uplinkd/uplinkd.toml")).CombinedOutput(); err != nil {
		t.Errorf("installed uplinkd check of the installed config: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system/uplinkd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nExecStart=/usr/bin/uplinkd run --config /etc/uplinkd/uplinkd.toml\n") ||
		strings.Contains(string(unit), "/usr/local") {
		t.Errorf("installed unit does not use PREFIX=/usr:\n%s", unit)
	}
	staged := filepath.Join(t.TempDir(), "uplinkd.service")
	if err := os.WriteFile(staged, []byte(strings.ReplaceAll(string(unit), "/usr/bin/uplinkd", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	verify(t, staged)

	// A second install keeps the operator's configuration.
	conf := filepath.Join(dest, "etc/uplinkd/uplinkd.toml")
	if err := os.WriteFile(conf, []byte("# mine\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/usr", "BIN="+filepath.Join(t.TempDir(), "bin"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "keeping") {
		t.Fatalf("second make install: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(conf); string(b) != "# mine\n" {
		t.Errorf("make install overwrote the configuration: %q", b)
	}
}

// notifications is a fake systemd notify socket.
type notifications struct {
	conn *net.UnixConn
	path string
}

func fakeNotifySocket(t *testing.T) *notifications {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifications{conn: c, path: path}
}

// next returns the next notification that is not a watchdog ping.
func (n *notifications) next(t *testing.T, pings *int) string {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		_ = n.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := n.conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		msg := string(buf[:k])
		if msg == "WATCHDOG=1\n" {
			*pings++
			continue
		}
		return msg
	}
}

// Acceptance 5: READY=1 after the first reconcile, watchdog pings at half
// WATCHDOG_USEC from the event loop, RELOADING=1/READY=1 on SIGHUP,
// STOPPING=1 on SIGTERM, against a fake notify socket.
func TestSystemdNotify(t *testing.T) {
	r := newRig(t, coreConfig(""))
	n := fakeNotifySocket(t)
	r.startEnv("NOTIFY_SOCKET="+n.path, "WATCHDOG_USEC=400000")
	pings := 0
	ready := n.next(t, &pings)
	if !regexp.MustCompile(`^READY=1\nSTATUS=\d of 2 uplinks active\n$`).MatchString(ready) {
		t.Fatalf("first notification %q, want READY=1", ready)
	}
	// The first reconcile installed the rules before READY.
	if rules := r.ip(lab.Router, "rule"); !strings.Contains(rules, "lookup 250 proto 201") {
		t.Errorf("READY=1 before the first reconcile; rules:\n%s", rules)
	}
	r.waitBoth()
	// Drop the pings queued meanwhile, then count for a second.
	buf := make([]byte, 4096)
	for {
		_ = n.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := n.conn.Read(buf); err != nil {
			break
		}
	}
	pings = 0
	start := time.Now()
	for time.Since(start) < time.Second {
		_ = n.conn.SetReadDeadline(time.Now().Add(time.Second))
		k, err := n.conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:k]) == "WATCHDOG=1\n" {
			pings++
		}
	}
	// Every 200ms: about 5 in a second; the loop is not busy polling.
	if pings < 2 || pings > 8 {
		t.Errorf("%d watchdog pings in 1s with WATCHDOG_USEC=400000, want about 5", pings)
	}

	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if msg := n.next(t, &pings); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=\d+\n$`).MatchString(msg) {
		t.Errorf("on SIGHUP: %q, want RELOADING=1", msg)
	}
	if msg := n.next(t, &pings); msg != "READY=1\nSTATUS=2 of 2 uplinks active\n" {
		t.Errorf("after the reload: %q, want READY=1", msg)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := n.next(t, &pings); msg != "STOPPING=1\n" {
		t.Errorf("on SIGTERM: %q, want STOPPING=1", msg)
	}
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("uplinkd did not exit after SIGTERM")
	}
}

// uplinkd works with nothing but the capabilities the unit file grants:
// run through setpriv with exactly those (and no root privileges beyond
// them), it converges, fails over and cleans up.
// capabilityError matches an error, or a warning of the kind a missing
// capability causes.
var capabilityError = regexp.MustCompile(`(?m)^.*(level=ERROR|level=WARN.*(operation not permitted|permission denied)).*$`)

func TestUnitCapabilitiesSuffice(t *testing.T) {
	setpriv := testutil.RequireTool(t, "setpriv")
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^AmbientCapabilities=(.*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no AmbientCapabilities in the unit file")
	}
	var caps []string
	for _, c := range strings.Fields(m[1]) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	set := "-all," + strings.Join(caps, ",")
	r := newRig(t, coreConfig(""))
	r.startWith(setpriv, "--inh-caps="+set, "--ambient-caps="+set, "--bounding-set="+set,
		"--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked", "--no-new-privs", "--")
	r.waitBoth()
	mark := r.mark()
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, "isp2", "down", 5*time.Second)
	r.waitOnly("eth1")
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if left := r.ours(); left != "" {
		t.Fatalf("left after stop:\n%s", left)
	}
	// A missing capability shows as EPERM or EACCES. Other warnings are
	// not this test's business: a reconcile racing the
	// carrier loss may be refused by the kernel and retried.
	if log, _ := os.ReadFile(r.logPath); capabilityError.Match(log) {
		t.Errorf("errors with the unit's capabilities:\n%s", log)
	}
}
