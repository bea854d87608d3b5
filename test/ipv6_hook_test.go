package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
	"github.com/uplinkd/uplinkd/test/testutil"
)

// lanRADVDConfig advertises both delegated prefixes on the router's LAN,
// each preferred lifetime tagged for examples/hooks/prefix6-lifetime.
const lanRADVDConfig = `interface eth0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	prefix 2001:db8:1100::/64 {
		AdvPreferredLifetime 14400; # uplinkd:isp1
	};
	prefix 2001:db8:2200::/64 {
		AdvPreferredLifetime 14400; # uplinkd:isp2
	};
};
`

// slaac returns the preferred lifetime of the LAN host's SLAAC address in
// prefix (ok false when it has none yet).
func (r *rig) slaac(prefix string) (preferred int, ok bool) {
	r.t.Helper()
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Dynamic   bool   `json:"dynamic"`
			Preferred any    `json:"preferred_life_time"`
		} `json:"addr_info"`
	}
	out := r.ip(lab.Host, "-6", "-j", "addr", "show", "dev", lab.HostLink)
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		r.t.Fatalf("%s: %v", out, err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Dynamic && strings.HasPrefix(a.Local, prefix) {
				p, _ := a.Preferred.(float64) // "forever" is a string
				return int(p), true
			}
		}
	}
	return 0, false
}

// Documentation made real: the example hook prefix6-lifetime, run by
// uplinkd on isp2's IPv6 transitions, has the router's radvd advertise
// isp2's prefix with a preferred lifetime of 0 while isp2's IPv6 is down:
// the LAN host's SLAAC address in that prefix becomes deprecated (new
// connections pick isp1's), and preferred again once isp2 is back.
func TestIPv6PrefixDeprecationHook(t *testing.T) {
	testutil.RequireTool(t, "radvd")
	hook, err := filepath.Abs("../examples/hooks/prefix6-lifetime")
	if err != nil {
		t.Fatal(err)
	}
	r := newRig6(t, "", lab.Options{}, 3*time.Minute)
	conf := filepath.Join(r.dir, "radvd-lan.conf")
	if err := os.WriteFile(conf, []byte(lanRADVDConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	ra, err := r.lab.StartRADVDConfig(r.ctx, lab.Router, conf, r.dir)
	if err != nil {
		t.Fatal(err)
	}
	r.writeConfig(withLANPrefixes(health6Config()) + fmt.Sprintf("\n[hooks]\non_transition = [%q, \"isp2\", %q, \"14400\", %q]\n", hook, conf, ra.PIDFile()))
	preferred := func(want string, check func(p int) bool) {
		t.Helper()
		r.waitFor("the host's address in isp2's prefix "+want, 30*time.Second, func() bool {
			p, ok := r.slaac("2001:db8:2200:")
			return ok && check(p)
		})
	}
	preferred("preferred", func(p int) bool { return p > 0 })
	r.start()
	r.waitBoth6()

	mark := r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, true); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "probing", 30*time.Second)
	preferred("deprecated", func(p int) bool { return p == 0 })
	if p, _ := r.slaac("2001:db8:1100:"); p == 0 {
		t.Fatal("isp1's prefix was deprecated too")
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "AdvPreferredLifetime 0; # uplinkd:isp2") {
		t.Fatalf("radvd configuration:\n%s", b)
	}

	mark = r.mark()
	if err := r.lab.Blackhole6(r.ctx, lab.ISP2, false); err != nil {
		t.Fatal(err)
	}
	r.waitTransition(mark, v6("isp2"), "active", 30*time.Second)
	preferred("preferred again", func(p int) bool { return p > 0 })
	r.stopClean()
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := ra.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
