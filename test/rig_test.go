package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/ispemu"
	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// binDir holds uplinkd and labtool, built once by TestMain when privileged.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() == 0 {
			dir, err := os.MkdirTemp("", "uplinkd-test-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			for _, pkg := range []string{"../cmd/uplinkd", "./labtool"} {
				out, err := exec.Command("go", "build", "-race", "-o", dir, pkg).CombinedOutput()
				if err != nil {
					fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
					return 1
				}
			}
			binDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

// coreConfig is the lab's configuration of the reference file: two probe
// targets, every other setting at its default.
var coreConfig = healthConfig()

// healthConfig is the recommended setup: two probe targets and every other
// probe setting at its default, plus extra lines for [probe].
func healthConfig(extra ...string) string {
	return `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["198.18.0.1", "198.18.0.2"]
` + strings.Join(extra, "\n") + "\n" + lab.UplinkConfig
}

// rig is a lab plus one uplinkd process in its router namespace.
type rig struct {
	t       *testing.T
	ctx     context.Context
	lab     *lab.Lab
	emu     ispemu.Client // once startEmu ran
	dir     string
	cfgPath string
	logPath string
	socket  string // the status socket
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error // cmd.Wait's result, valid once exited is closed
}

func newRig(t *testing.T, config string) *rig {
	t.Helper()
	return newRigFor(t, config, 3*time.Minute)
}

// newRigFor is newRig for a test that may take up to limit.
func newRigFor(t *testing.T, config string, limit time.Duration) *rig {
	t.Helper()
	testutil.RequirePriv(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	l, err := lab.New(ctx, "u"+hex.EncodeToString(b))
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	r := &rig{t: t, ctx: ctx, lab: l, dir: t.TempDir()}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(r.logPath); err == nil {
				t.Logf("uplinkd log:\n%s", b)
			}
		}
	})
	r.cfgPath = filepath.Join(r.dir, "uplinkd.toml")
	r.logPath = filepath.Join(r.dir, "uplinkd.log")
	r.socket = filepath.Join(r.dir, "uplinkd.sock")
	r.writeConfig(config)
	return r
}

// writeConfig writes the configuration file, with the status socket in
// the test's directory (never the host's /run).
func (r *rig) writeConfig(config string) {
	r.t.Helper()
	config += fmt.Sprintf("\n[status]\nsocket = %q\n", r.socket)
	if err := os.WriteFile(r.cfgPath, []byte(config), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// start runs uplinkd and waits until its first reconcile is done.
func (r *rig) start() {
	r.t.Helper()
	r.startWith()
}

// startEnv is start with extra environment variables ("KEY=VALUE").
func (r *rig) startEnv(env ...string) {
	r.t.Helper()
	r.startWith(append([]string{"env"}, env...)...)
}

// startWith is start through a wrapper: the command prefix, which runs
// the rest of its arguments.
func (r *rig) startWith(prefix ...string) {
	r.t.Helper()
	mark := r.mark()
	args := append(prefix, filepath.Join(binDir, "uplinkd"), "run", "--config", r.cfgPath)
	cmd, err := r.lab.Start(r.ctx, lab.Router, r.logPath, args...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) {
		r.err = c.Wait()
		close(done)
	}(cmd, r.exited)
	r.waitLog(mark, regexp.MustCompile(`msg=ready`), 10*time.Second)
}

// startEmu starts the ISP emulator in the lab's Internet namespace.
func (r *rig) startEmu() {
	r.t.Helper()
	emu, err := r.lab.StartISPEmu(r.ctx, filepath.Join(binDir, "labtool"), r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	r.emu = emu
}

// setISP sets how the emulator treats isp's upstream ("loss=40%", "slow").
func (r *rig) setISP(isp, mode string) {
	r.t.Helper()
	m, err := ispemu.ParseMode(strings.Fields(mode))
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.emu.Set(r.ctx, isp, m); err != nil {
		r.t.Fatal(err)
	}
}

// transition is one logged state change.
type transition struct{ uplink, from, to, reason string }

var transitionRE = regexp.MustCompile(`msg=transition uplink=(\S+) from=(\S+) to=(\S+) reason=("(?:[^"\\]|\\.)*"|\S+)`)

// transitions returns the transitions logged after mark, of uplink or,
// with uplink "", of all.
func (r *rig) transitions(mark int, uplink string) []transition {
	b, _ := os.ReadFile(r.logPath)
	var out []transition
	for _, m := range transitionRE.FindAllStringSubmatch(string(b[min(mark, len(b)):]), -1) {
		reason, err := strconv.Unquote(m[4])
		if err != nil {
			reason = m[4]
		}
		if uplink == "" || m[1] == uplink {
			out = append(out, transition{m[1], m[2], m[3], reason})
		}
	}
	return out
}

// stop signals uplinkd and returns its exit code.
func (r *rig) stop(sig syscall.Signal) int {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.t.Fatalf("uplinkd did not exit within 10s of %v", sig)
	}
	if r.err == nil {
		return 0
	}
	if ee, ok := r.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	r.t.Fatalf("wait: %v", r.err)
	return -1
}

// mark is the current end of the daemon's log; waits look after it.
func (r *rig) mark() int {
	b, _ := os.ReadFile(r.logPath)
	return len(b)
}

// waitLog waits for a log line after mark matching re and returns it.
func (r *rig) waitLog(mark int, re *regexp.Regexp, timeout time.Duration) string {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(r.logPath)
		if len(b) > mark {
			for _, line := range strings.Split(string(b[mark:]), "\n") {
				if re.MatchString(line) {
					return line
				}
			}
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no log line matching %q within %v", re, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTransition waits for uplink's transition to state after mark.
func (r *rig) waitTransition(mark int, uplink, to string, timeout time.Duration) string {
	r.t.Helper()
	return r.waitLog(mark, regexp.MustCompile(`msg=transition uplink=`+uplink+` from=\S+ to=`+to+`\b`), timeout)
}

// ip runs `ip -n NS args...` and fails the test on error.
func (r *rig) ip(ns string, args ...string) string {
	r.t.Helper()
	out, err := r.lab.IP(r.ctx, ns, args...)
	if err != nil {
		r.t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return out
}

// table lists a routing table of the router; a table that does not exist
// (nothing in it yet) is empty.
func (r *rig) table(id string) string {
	r.t.Helper()
	out, err := r.lab.IP(r.ctx, lab.Router, "route", "show", "table", id)
	if err != nil {
		if strings.Contains(out+err.Error(), "FIB table does not exist") {
			return ""
		}
		r.t.Fatalf("ip route show table %s: %v: %s", id, err, out)
	}
	return out
}

// balance is the router's balance table.
func (r *rig) balance() string { return r.table("250") }

// waitFor polls the kernel state (tests only) until check passes.
func (r *rig) waitFor(what string, timeout time.Duration, check func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %v waiting for %s\nbalance table: %s\nrules:\n%s", timeout, what,
				r.balance(), r.ip(lab.Router, "rule"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const (
	viaISP1  = "nexthop via 198.51.100.1 dev eth1 weight 1"
	viaISP2  = "nexthop via 203.0.113.1 dev eth2 weight 3"
	onlyISP1 = "default via 198.51.100.1 dev eth1 proto 201"
	onlyISP2 = "default via 203.0.113.1 dev eth2 proto 201"
)

func (r *rig) waitBoth() {
	r.t.Helper()
	r.waitFor("both uplinks in the balance", 15*time.Second, func() bool {
		b := r.balance()
		return strings.Contains(b, viaISP1) && strings.Contains(b, viaISP2)
	})
}

func (r *rig) waitOnly(prefix string) {
	r.t.Helper()
	r.waitFor("balance "+prefix, 15*time.Second, func() bool { return strings.HasPrefix(r.balance(), prefix) })
}

// ours lists every route and rule carrying uplinkd's protocol, one per
// line, sorted (rules of equal priority keep insertion order in the kernel).
func (r *rig) ours() string {
	var lines []string
	routes := r.ip(lab.Router, "-o", "route", "show", "table", "all", "proto", "201")
	for _, l := range strings.Split(routes, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	for _, l := range strings.Split(r.ip(lab.Router, "rule"), "\n") {
		if strings.Contains(l, "proto 201") {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
