package lab_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/test/lab"
)

// labLink is one interface as `ip -j link show` gives it.
type labLink struct {
	Index     int    `json:"ifindex"`
	PeerIndex int    `json:"link_index"`
	Name      string `json:"ifname"`
	Operstate string `json:"operstate"`
}

// checkReady fails unless every veth of the lab is operationally up, with
// an index other than its peer's (ready.go: the kernel's link watcher
// takes in the carrier of a veth whose index equals its peer's up to a
// second late, and IPv6 stays off that link until then).
func checkReady(t *testing.T, l *lab.Lab, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		var links []labLink
		if err := json.Unmarshal([]byte(mustIP(t, l, ns, "-j", "link", "show")), &links); err != nil {
			t.Fatal(err)
		}
		for _, k := range links {
			if k.Name == "lo" {
				continue
			}
			if k.PeerIndex == 0 || k.PeerIndex == k.Index {
				t.Errorf("%s %s: index %d, peer's %d: want a peer with another index", ns, k.Name, k.Index, k.PeerIndex)
			}
			if k.Operstate != "UP" {
				t.Errorf("%s %s: operstate %s, want UP as soon as the lab is built", ns, k.Name, k.Operstate)
			}
		}
	}
}

func TestNewLinksReady(t *testing.T) {
	l := newLab6(t, lab.Options{ThirdISP: true})
	checkReady(t, l, lab.Router, lab.Host, lab.ISP1, lab.ISP2, lab.ISP3, lab.Inet)
	// IPv6 is up on the Internet's side of every transit link: it has
	// its link-local address, which the kernel gives a link once the link
	// watcher has taken in its carrier.
	for _, isp := range []string{lab.ISP1, lab.ISP2, lab.ISP3} {
		if out := mustIP(t, l, lab.Inet, "-6", "addr", "show", "dev", isp, "scope", "link"); !strings.Contains(out, "fe80::") {
			t.Errorf("inet %s has no link-local address yet:\n%s", isp, out)
		}
	}

	// A re-created pair gets indexes of its own too.
	if err := l.DeleteRouterLink(t.Context(), lab.ISP2); err != nil {
		t.Fatal(err)
	}
	if err := l.RecreateRouterLink(t.Context(), lab.ISP2); err != nil {
		t.Fatal(err)
	}
	eventuallyWithin(t, 5*time.Second, "re-created eth2 up", func() bool {
		var links []labLink
		if err := json.Unmarshal([]byte(mustIP(t, l, lab.Router, "-j", "link", "show", "eth2")), &links); err != nil {
			t.Fatal(err)
		}
		return len(links) == 1 && links[0].Operstate == "UP"
	})
	checkReady(t, l, lab.Router, lab.ISP2)
}
