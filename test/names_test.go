package test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// namesConfig probes two targets by name and one name no resolver knows.
const namesConfig = `
[routing]
lan_interfaces = ["eth0"]

[probe]
targets = ["t1.lab.test", "t2.lab.test", "missing.lab.test"]
` + lab.UplinkConfig

// TestHostnameTargets: with a resolver in the lab (dnsmasq on the Internet
// side, reached through the uplinks), named targets are resolved and
// probed; a name that does not resolve is a warning; when the resolver
// goes away, a reload keeps the addresses the names had and probing goes
// on. uplinkd runs in a private mount namespace whose /etc/resolv.conf
// names the lab's resolver: the host's file is never touched.
func TestHostnameTargets(t *testing.T) {
	testutil.RequireTool(t, "dnsmasq")
	r := newRig(t, namesConfig)
	dns, err := r.lab.Start(r.ctx, lab.Inet, filepath.Join(r.dir, "dns.log"),
		"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--user=root", "--no-resolv", "--no-hosts",
		"--listen-address="+lab.Target3.String(), "--bind-interfaces", "--log-queries", "--log-facility=-",
		"--address=/t1.lab.test/"+lab.Target1.String(), "--address=/t2.lab.test/"+lab.Target2.String(),
		"--pid-file="+filepath.Join(r.dir, "dns.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitLog(r.ctx, filepath.Join(r.dir, "dns.log"), "started"); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(r.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+lab.Target3.String()+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.writeConfig(namesConfig)
	mark := r.mark()
	// `ip netns exec` gives uplinkd a mount namespace of its own.
	r.startWith("sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolv)
	r.waitLog(mark, regexp.MustCompile(`msg="probe target resolved" name=t1.lab.test address=198.18.0.1`), 10*time.Second)
	r.waitLog(mark, regexp.MustCompile(`msg="probe target resolved" name=t2.lab.test address=198.18.0.2`), 10*time.Second)
	r.waitLog(mark, regexp.MustCompile(`level=WARN msg="probe target does not resolve; the uplinks probe the targets they have" name=missing.lab.test`), 10*time.Second)
	r.waitBoth()
	targets := func() []string {
		var out []string
		for _, tg := range uplinkOf(t, r.status(), "isp2").Probe.Targets {
			out = append(out, tg.Address)
		}
		slices.Sort(out)
		return out
	}
	want := []string{"198.18.0.1", "198.18.0.2"}
	r.waitFor("isp2 probing both named targets", 10*time.Second, func() bool { return slices.Equal(targets(), want) })

	// The resolver goes away; a reload resolves again and fails.
	if err := dns.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = dns.Wait()
	mark = r.mark()
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(mark, regexp.MustCompile(`msg="probe target does not resolve; keeping its last address" name=t1.lab.test address=198.18.0.1`), 15*time.Second)
	rounds := uplinkOf(t, r.status(), "isp1").Probe.Rounds
	r.waitFor("more probe rounds without a resolver", 10*time.Second, func() bool {
		u := uplinkOf(t, r.status(), "isp1")
		return u.Probe.Rounds >= rounds+5 && u.State == "active"
	})
	if got := targets(); !slices.Equal(got, want) {
		t.Fatalf("targets without a resolver: %v, want %v", got, want)
	}
	if trs := r.transitions(mark, ""); len(trs) > 0 {
		t.Fatalf("losing the resolver moved uplinks: %+v", trs)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if b, _ := os.ReadFile("/etc/resolv.conf"); strings.Contains(string(b), lab.Target3.String()) {
		t.Fatal("the host's /etc/resolv.conf names the lab's resolver")
	}
}
