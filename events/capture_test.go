package events

import (
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/uplinkd/uplinkd/test/testutil"
	"golang.org/x/sys/unix"
)

// TestCapture prints the raw notifications of a scripted scenario as hex, to
// refresh the fixtures in fixtures_test.go. It only runs with
// UPLINKD_CAPTURE=1 (and root): go test -run TestCapture -v ./events/
func TestCapture(t *testing.T) {
	if os.Getenv("UPLINKD_CAPTURE") != "1" {
		t.Skip("set UPLINKD_CAPTURE=1 to print captured rtnetlink messages")
	}
	testutil.RequirePriv(t)
	id := randomID(t)
	a, ha := newNS(t, id, "a")
	b, _ := newNS(t, id, "b")

	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(ha)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_NEXTHOP,
		unix.RTNLGRP_IPV6_IFADDR, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_NEIGH} {
		if err := c.JoinGroup(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := setReadBuffer(c, receiveBuffer); err != nil {
		t.Fatal(err)
	}

	steps := [][]string{
		{"-n", a, "link", "add", "eth2", "type", "veth", "peer", "name", "up0", "netns", b},
		{"-n", b, "link", "set", "up0", "up"},
		{"-n", a, "link", "set", "eth2", "up"},
		{"-n", b, "link", "set", "up0", "down"},
		{"-n", b, "link", "set", "up0", "up"},
		{"-n", a, "addr", "add", "203.0.113.2/24", "dev", "eth2"},
		{"-n", a, "route", "add", "198.51.100.0/24", "via", "203.0.113.1", "table", "200", "proto", "201"},
		{"-n", a, "route", "del", "198.51.100.0/24", "via", "203.0.113.1", "table", "200", "proto", "201"},
		{"-n", a, "rule", "add", "priority", "10000", "from", "203.0.113.2", "lookup", "200", "proto", "201"},
		{"-n", a, "rule", "del", "priority", "10000"},
		{"-n", a, "nexthop", "add", "id", "42", "via", "203.0.113.1", "dev", "eth2", "proto", "201"},
		{"-n", a, "nexthop", "del", "id", "42"},
		// Routes and nexthops through a link that loses carrier, then goes
		// admin down, then is deleted while up.
		{"-n", a, "route", "add", "default", "via", "203.0.113.1", "table", "200", "proto", "201"},
		{"-n", a, "nexthop", "add", "id", "43", "via", "203.0.113.1", "dev", "eth2", "proto", "201"},
		{"-n", b, "link", "set", "up0", "down"},
		{"-n", a, "link", "set", "eth2", "down"},
		{"-n", a, "link", "set", "eth2", "up"},
		{"-n", b, "link", "set", "up0", "up"},
		{"-n", a, "route", "add", "default", "via", "203.0.113.1", "table", "200", "proto", "201"},
		{"-n", a, "link", "add", "eth3", "type", "veth", "peer", "name", "up1", "netns", b},
		{"-n", a, "addr", "add", "198.51.100.2/24", "dev", "eth3"},
		{"-n", a, "link", "set", "eth3", "up"},
		{"-n", a, "link", "del", "eth3"},
		// Tables above 255 only fit in RTA_TABLE/FRA_TABLE; a
		// point-to-point address has IFA_LOCAL != IFA_ADDRESS.
		{"-n", a, "route", "add", "198.51.100.0/24", "via", "203.0.113.1", "table", "1000", "proto", "201"},
		{"-n", a, "rule", "add", "priority", "10001", "lookup", "1000"},
		{"-n", a, "addr", "add", "198.18.0.1", "peer", "198.18.0.2/32", "dev", "eth2"},
		{"-n", a, "addr", "del", "203.0.113.2/24", "dev", "eth2"},
		{"-n", a, "link", "set", "eth2", "down"},
		{"-n", a, "link", "set", "eth2", "name", "wan0"},
		{"-n", a, "link", "add", "br0", "type", "bridge"},
		{"-n", a, "link", "set", "wan0", "master", "br0"},
		{"-n", a, "link", "set", "wan0", "nomaster"},
		{"-n", a, "link", "del", "wan0"},
		// IPv6 on eth4: DAD takes 100ms and starts at once; the peer
		// holds 2001:db8:1::5, so DAD for it fails here.
		{"-n", a, "link", "add", "eth4", "type", "veth", "peer", "name", "up4", "netns", b},
		{"netns", "exec", a, "sysctl", "-qw", "net.ipv6.conf.eth4.router_solicitation_delay=0", "net.ipv6.neigh.eth4.retrans_time_ms=100"},
		{"-n", b, "addr", "add", "2001:db8:1::5/64", "dev", "up4", "nodad"},
		{"-n", b, "link", "set", "up4", "up"},
		{"-n", a, "link", "set", "eth4", "up"},
		{"-n", a, "addr", "add", "2001:db8:1::2/64", "dev", "eth4", "nodad"},
		{"-n", a, "addr", "add", "2001:db8:1::3/64", "dev", "eth4", "preferred_lft", "0", "valid_lft", "600"},
		{"-n", a, "addr", "add", "2001:db8:1::5/64", "dev", "eth4"},
		{"-n", a, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth4", "proto", "ra", "metric", "1024", "expires", "1800"},
		{"-n", a, "-6", "route", "del", "default", "via", "fe80::1", "dev", "eth4"},
		{"-n", a, "-6", "route", "add", "2001:db8:ff::/48", "via", "fe80::1", "dev", "eth4", "table", "1000", "proto", "201"},
		{"-n", a, "-6", "rule", "add", "priority", "10002", "from", "2001:db8:1::2", "lookup", "1000", "proto", "201"},
		{"-n", a, "-6", "rule", "del", "priority", "10002"},
		{"-n", a, "nexthop", "add", "id", "44", "via", "fe80::1", "dev", "eth4", "proto", "201"},
		{"-n", a, "-6", "neigh", "add", "fe80::1", "dev", "eth4", "lladdr", "02:00:00:00:00:01", "nud", "reachable"},
		{"-n", a, "-6", "neigh", "change", "fe80::1", "dev", "eth4", "nud", "failed"},
	}
	for _, s := range steps {
		ip(t, s...)
		t.Logf("### ip %v", s)
		_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			msgs, err := c.Receive()
			if err != nil {
				break
			}
			for _, m := range msgs {
				ev, perr := parseMessage(m)
				t.Logf("type=%d flags=%v ev=%T%+v err=%v\n%s", m.Header.Type, m.Header.Flags, ev, ev, perr, hex.EncodeToString(m.Data))
			}
		}
	}
}
