package scenario

import (
	"fmt"
	"strings"

	"github.com/uplinkd/uplinkd/config"
)

// probeDefaults describes uplinkd's default probe settings, read from its
// configuration loader so that the page cannot drift from the binary.
func probeDefaults() string {
	cfg, err := config.Parse("defaults.toml", []byte(`[routing]
lan_interfaces = ["eth0"]
[[uplink]]
name = "isp1"
interface = "eth1"
gateway = "198.51.100.1"
table = 100
`))
	if err != nil {
		return "unknown: " + err.Error()
	}
	p := cfg.Probe
	return fmt.Sprintf("interval %v, timeout %v, down_after %d, up_after %d, window %d", p.Interval, p.Timeout, p.DownAfter, p.UpAfter, p.Window)
}

// Niceness is the bench's scheduling priority (main sets it; the tools
// inherit it).
const Niceness = -5

// FailoverSetup describes the failover scenarios' conditions for the
// results page.
func FailoverSetup(cfg FailoverConfig) []string {
	var names []string
	for _, f := range cfg.Faults {
		names = append(names, f.Name)
	}
	return []string{
		fmt.Sprintf("Failover rows: %d runs of each fault on ISP2 (%s), each tool in a fresh lab of network namespaces (test/lab: router, LAN host, isp1, isp2, Internet; weights isp1:isp2 = 1:3, no NAT); each cell is the median and the worst of the %d runs; ratios are seed ÷ uplinkd medians from the same run.",
			cfg.Runs, strings.Join(names, ", "), cfg.Runs),
		"Route level: the fault is injected over netlink in ISP2's namespace and stamped just before; a netlink monitor in the router namespace stamps, on the same clock, the first change of a route, rule or nexthop made by a program (not by the kernel itself, and not the seed's temporary /32 test route).",
		fmt.Sprintf("Each run waits until the tool has both ISPs in the balance, then a random 0 to %v (the seed's check period, so faults hit its loop at random moments), then starts its flows; the repair comes 1.5 s plus another random 0 to %v after the tool's last failover change.", phaseSpread, phaseSpread),
		fmt.Sprintf("Data plane: every run starts %d new LAN UDP flows (two LAN addresses, fresh source ports) that send a datagram every 1 ms to the Internet namespace, whose receiver notes the ISP each one came through; a control flow from the router's ISP1 address shows the noise floor of this machine. A flow's path is the majority ISP of its last %d datagrams before the fault, before the repair, and before the end (1.5 s after the tool's last recovery change).", LANFlows, pathSample),
		fmt.Sprintf("New connections: from the repair on, one datagram every 5 ms from a fresh source port; the figure is the sending time of the first that came through ISP2 (given up %v after the tool's change).", NewConnTimeout),
		"uplinkd: the lab's recommended configuration (two probe targets, probe settings at their defaults: " + probeDefaults() + ") with flap damping off; it is restarted (clean stop, start) before every run, so that each run starts from the same state.",
		"Seed: its if-up script (run as ifupdown would, IFACE=eth2) and its ping daemon (5 s interval, `ping -c 3` twice before disabling), mapped to the lab's addresses (bench/seed/README.md); dnsmasq in the LAN host answers its `host www.google.fr` with the lab's target.",
		fmt.Sprintf("The bench and the tools it starts run at nice %d, both tools alike, to keep the instrument steady on a busy machine.", Niceness),
		fmt.Sprintf("A tool that shows no change within its timeout (uplinkd %v, seed %v) counts as \"> timeout\".", cfg.UplinkdTimeout, cfg.SeedTimeout),
	}
}
