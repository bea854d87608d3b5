package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// stormBuffer is the event socket buffer the storm test forces (the kernel
// doubles it): far too small for the storm, so it overruns for sure.
const stormBuffer = 16 << 10

// TestStorm: while 50,000 route changes and 100 link flaps hit the
// router, all foreign, and its event socket overruns (ENOBUFS, forced with
// a small buffer), isp2 loses its carrier. uplinkd counts the overruns,
// re-reads everything, takes isp2 out of the balance right after the
// storm, shows the counts in `uplinkd status --json`, and keeps receiving
// events: isp2 comes back when its carrier does.
//
// The storm: 25,000 /32 routes in main through the LAN (a BGP-like load,
// dropped by the kernel before the socket because of uplinkd's socket
// filter), 25,000 default routes in foreign tables (these pass the filter:
// DHCP clients' gateways arrive as default routes) and 100 flaps of a
// foreign veth (read, dropped before the loop).
func TestStorm(t *testing.T) {
	r := newRigFor(t, coreConfig(""), 2*time.Minute)
	r.startEnv(fmt.Sprintf("UPLINKD_TEST_EVENT_BUFFER=%d", stormBuffer))
	r.waitBoth()
	r.ip(lab.Router, "link", "add", "lan9", "type", "veth", "peer", "name", "lan9p")

	var b strings.Builder
	for i := range 25_000 {
		fmt.Fprintf(&b, "route add 198.18.%d.%d/32 via 192.0.2.254 dev %s\n", 100+i/256, i%256, lab.RouterLANLink)
		fmt.Fprintf(&b, "route add default via 192.0.2.254 dev %s table %d\n", lab.RouterLANLink, 1000+i)
		if i%500 == 0 {
			fmt.Fprintf(&b, "link set lan9 up\nlink set lan9 down\n")
		}
	}
	batch := filepath.Join(r.dir, "storm")
	if err := os.WriteFile(batch, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	storm := exec.CommandContext(r.ctx, "ip", "-n", r.lab.NS(lab.Router), "-batch", batch)
	var out strings.Builder
	storm.Stdout, storm.Stderr = &out, &out
	mark := r.mark()
	if err := storm.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.lab.CarrierDown(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if err := storm.Wait(); err != nil {
		t.Fatalf("storm: %v: %s", err, out.String())
	}
	end := time.Now()
	r.waitOnly("eth1")
	took := time.Since(end)
	t.Logf("figure: isp2 out of the balance %v after the storm ended (race detector build, shared machine)", took.Round(time.Millisecond))

	s := r.statusJSON()
	if s.Netlink.Overruns == 0 || s.Netlink.Resyncs < s.Netlink.Overruns {
		t.Fatalf("status --json netlink: %+v, want ENOBUFS overruns counted and as many resyncs", s.Netlink)
	}
	t.Logf("status --json netlink: %+v", s.Netlink)
	r.waitLog(mark, regexp.MustCompile(`msg="netlink events lost, resyncing"`), 5*time.Second)

	// Still receiving: the carrier returns, so does isp2.
	if err := r.lab.CarrierUp(r.ctx, lab.ISP2); err != nil {
		t.Fatal(err)
	}
	r.waitBoth()
}
