package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/config"
	"github.com/uplinkd/uplinkd/events"
	"github.com/uplinkd/uplinkd/netops"
)

// scaleFakeDaemon returns a daemon of n uplinks as the scale lab has them (a
// /30 each on u0..u(n-1), carrier-only), settled once against a fake
// kernel holding those links.
func scaleFakeDaemon(tb testing.TB, n int) (*Daemon, *fakeNet) {
	tb.Helper()
	var doc strings.Builder
	doc.WriteString("[routing]\nlan_interfaces = [\"lan0\"]\nmark_mask = 0xff800000\n[probe]\nflap_limit = 0\ntargets = []\n")
	net := newFakeNet(250)
	net.snap.Links = append(net.snap.Links, events.Link{Index: 1, Name: "lo", AdminUp: true, Carrier: true},
		events.Link{Index: 2, Name: "lan0", AdminUp: true, Carrier: true})
	for i := range n {
		gw := netip.AddrFrom4([4]byte{198, 19, byte(i * 4 / 256), byte(i*4%256 + 1)})
		a := gw.Next()
		fmt.Fprintf(&doc, "[[uplink]]\nname = \"w%d\"\ninterface = \"u%d\"\ngateway = \"%s\"\ntable = %d\n", i, i, gw, 1000+i)
		net.snap.Links = append(net.snap.Links, events.Link{Index: 3 + i, Name: fmt.Sprintf("u%d", i), AdminUp: true, Carrier: true})
		net.snap.Addrs = append(net.snap.Addrs, events.Addr{Index: 3 + i, Prefix: netip.PrefixFrom(a, 30)})
	}
	cfg, err := config.Parse("scale.toml", []byte(doc.String()))
	if err != nil {
		tb.Fatal(err)
	}
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{})
	d.use(&Kernel{State: net, Events: net, Routing: net, Probers: newFakeProbers()})
	bal := netops.HashThreshold
	d.balancer.Store(&bal)
	d.dumpAll()
	d.settle(context.Background())
	return d, net
}

// BenchmarkObserve256: one carrier change of 256 uplinks, from the event
// to the uplinks evaluated (what precedes the plan on every event).
func BenchmarkObserve256(b *testing.B) {
	d, _ := scaleFakeDaemon(b, 256)
	ctx := context.Background()
	_ = ctx
	link := d.snap.Links[10]
	on := false
	u := d.uplinks[10-2]
	for b.Loop() {
		link.Carrier = on
		on = !on
		d.linkChanged(events.LinkEvent{Link: link})
		only := d.touched()
		snap, _ := d.readLinks(ctx)
		d.linkEvs = nil
		only.resolve(d, snap)
		d.observe(snap, only)
		if u.link.Carrier != link.Carrier {
			b.Fatalf("%s's link %+v, want %+v", u.label(), *u.link, link)
		}
	}
}
