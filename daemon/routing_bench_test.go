package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/fsm"
	"github.com/uplinkd/uplinkd/netops"
)

// nullRouter takes every plan at once: what is left of a reconcile is
// the daemon's own work, before and after the kernel's.
type nullRouter struct{}

func (nullRouter) Reconcile(netops.Desired) (netops.Result, error) { return netops.Result{}, nil }
func (nullRouter) Cleanup() (netops.Result, error)                 { return netops.Result{}, nil }
func (nullRouter) HoldsFor(netops.Family, int, int) (netops.Held, error) {
	return netops.Held{}, nil
}
func (nullRouter) SetProtocol(int)                {}
func (nullRouter) Nexthops() netops.NexthopKernel { return nil }

// scaleDaemon returns a daemon of n active uplinks as the scale lab has
// them (a /30 each, carrier), multipath, with a null router.
func scaleDaemon(b *testing.B, n int) *Daemon {
	var doc strings.Builder
	doc.WriteString("[routing]\nlan_interfaces = [\"lan0\"]\nmark_mask = 0xff800000\n[probe]\ntargets = [\"198.18.0.1\"]\n")
	for i := range n {
		fmt.Fprintf(&doc, "[[uplink]]\nname = \"w%d\"\ninterface = \"w%d\"\ngateway = \"198.19.%d.%d\"\ntable = %d\n",
			i, i, i*4/256, i*4%256+1, 1000+i)
	}
	cfg, err := config.Parse("scale.toml", []byte(doc.String()))
	if err != nil {
		b.Fatal(err)
	}
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	d.rec = nullRouter{}
	now := time.Now()
	for i, u := range d.uplinks {
		u.link = &events.Link{Index: i + 3, Name: u.cfg.Interface, AdminUp: true, Carrier: true}
		u.addr = netip.PrefixFrom(u.cfg.Gateway.Next(), 30)
		u.gw = u.cfg.Gateway
		u.m.LinkUp("usable", now)
		for range d.cfg.Probe.UpAfter {
			u.m.ProbeRound(true, fsm.Quality{}, now)
		}
	}
	return d
}

// One reconcile of 256 uplinks where one uplink's carrier changed, with a
// kernel that takes no time: planning and the bookkeeping around it
// (pinning off: its nftables table needs a kernel).
func BenchmarkReconcile256(b *testing.B) {
	for _, bal := range []netops.Balancer{netops.Multipath, netops.HashThreshold} {
		b.Run(bal.String(), func(b *testing.B) {
			d := scaleDaemon(b, 256)
			d.balancer.Store(&bal)
			d.doReconcile()
			u := d.uplinks[17]
			for b.Loop() {
				u.link.Carrier = !u.link.Carrier
				d.doReconcile()
			}
		})
	}
}
