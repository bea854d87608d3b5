package lab_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// TestScaleLab builds a small scale lab and checks that every uplink
// is reachable from the probe targets through its own interface, that a change of
// the WAN-side link shows as a carrier loss on the router, and that Close
// removes the namespaces.
func TestScaleLab(t *testing.T) {
	testutil.RequirePriv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := randomPrefix(t)
	const n = 3
	l, err := lab.NewScale(ctx, prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })

	for i := range n {
		u := lab.ScaleUplinkAt(i)
		out, err := l.IP(ctx, lab.Router, "route", "get", u.Gateway.String())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "dev "+u.Link+" ") {
			t.Errorf("uplink %d: route to its gateway: %q", i, out)
		}
		back, err := l.IP(ctx, lab.WAN, "route", "get", u.Addr.Addr().String(), "from", lab.ScaleTarget1.String())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(back, "dev "+u.Far+" ") {
			t.Errorf("uplink %d: WAN route back from the target: %q", i, back)
		}
	}
	if _, err := l.IP(ctx, lab.Peer, "route", "get", lab.PeerRouterAddr.Addr().String()); err != nil {
		t.Errorf("peer cannot reach the router: %v", err)
	}
	u := lab.ScaleUplinkAt(1)
	if _, err := l.IP(ctx, lab.WAN, "link", "set", u.Far, "down"); err != nil {
		t.Fatal(err)
	}
	out, err := l.IP(ctx, lab.Router, "link", "show", u.Link)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "NO-CARRIER") {
		t.Errorf("router link after the far end went down: %q", out)
	}
	if cfg := lab.ScaleUplinkConfig(2, 1000); strings.Count(cfg, "[[uplink]]") != 2 || !strings.Contains(cfg, `gateway = "198.19.0.5"`) {
		t.Errorf("ScaleUplinkConfig(2, 1000) = %q", cfg)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out2, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out2), prefix+"-") {
		t.Errorf("namespaces left after Close: %s", out2)
	}
}
