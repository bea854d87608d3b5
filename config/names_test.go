package config

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHostName(t *testing.T) {
	for s, want := range map[string]bool{
		"one.one.one.one": true, "dns.google": true, "www.google.fr.": true, "a-b.c9": true, "localhost": false, "x": false,
		"": false, "1.2.3": false, "one example": false, "-a.b": false, "a-.b": false, "a..b": false,
		"a_b.c": false, "2001:db8::1": false, string(make([]byte, 300)): false,
	} {
		if got := hostName(s); got != want {
			t.Errorf("hostName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTargetNames(t *testing.T) {
	c := mustParse(t, file(`[probe]`, `targets = ["One.One.One.One.", "9.9.9.9", "dns.google"]`,
		isp1, `probe_targets = ["t.example"]`, isp2))
	if diff := cmp.Diff([]string{"one.one.one.one", "dns.google"}, c.Probe.TargetNames); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"one.one.one.one", "dns.google", "t.example"}, c.Names()); diff != "" {
		t.Errorf("all names (-want +got):\n%s", diff)
	}
	resolved := map[string]netip.Addr{"one.one.one.one": netip.MustParseAddr("1.1.1.1"), "t.example": netip.MustParseAddr("192.0.2.7")}
	resolve := func(n string) (netip.Addr, bool) { a, ok := resolved[n]; return a, ok }
	// isp1 has its own list (one name); isp2 the global one, where
	// dns.google does not resolve and 1.1.1.1 is listed once.
	got1 := c.TargetsResolved(c.Uplinks[0], netip.Addr{}, resolve)
	got2 := c.TargetsResolved(c.Uplinks[1], netip.Addr{}, resolve)
	if diff := cmp.Diff([]Target{icmp("192.0.2.7")}, got1, addrComparer); diff != "" {
		t.Errorf("isp1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Target{icmp("9.9.9.9"), icmp("1.1.1.1")}, got2, addrComparer); diff != "" {
		t.Errorf("isp2 (-want +got):\n%s", diff)
	}
	// Names count for reliability, and are never duplicated.
	for _, doc := range []string{
		file(`[probe]`, `targets = ["a.example", "b.example"]`, `reliability = 3`, isp1),
		file(`[probe]`, `targets = ["a.example", "A.example."]`, isp1),
	} {
		if _, err := Parse("test.toml", []byte(doc)); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
	// An uplink probed by name only is not probed at its gateway, even
	// before the name resolves.
	on := true
	u := Uplink{ProbeTargets: []Target{}, ProbeTargetNames: []string{"x.example"}, ProbeGateway: &on, Gateway: netip.MustParseAddr("192.0.2.1")}
	if got := c.TargetsResolved(u, u.Gateway, func(string) (netip.Addr, bool) { return netip.Addr{}, false }); len(got) != 0 {
		t.Errorf("unresolved name: targets %v, want none", got)
	}
}
