package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DHCPLease is what a DHCP server hands the router on an ISP's access
// link: one address (the range holds just it) and a gateway.
type DHCPLease struct {
	Addr    netip.Prefix // the router's address and the link's prefix length
	Gateway netip.Addr
}

// StartDHCPServer runs dnsmasq as the DHCP server of isp's access link
// (its down0), leasing lease, with its lease and pid files in dir. It
// serves DHCP only (no DNS) and is authoritative, so a client renewing an
// address it no longer hands out gets a NAK and asks again. Stop it with
// the returned command's process (SIGTERM) or let the lab kill it.
func (l *Lab) StartDHCPServer(ctx context.Context, isp, dir string, lease DHCPLease) (*exec.Cmd, error) {
	if _, err := l.lookupISP(isp); err != nil {
		return nil, err
	}
	a := lease.Addr.Addr().String()
	args := []string{
		"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--interface=" + ispDownLink, "--bind-interfaces", "--dhcp-authoritative",
		fmt.Sprintf("--dhcp-range=%s,%s,%s,2m", a, a, netmask(lease.Addr.Bits())),
		"--dhcp-option=option:router," + lease.Gateway.String(),
		"--dhcp-leasefile=" + filepath.Join(dir, isp+"-dnsmasq.leases"),
		"--pid-file=" + filepath.Join(dir, isp+"-dnsmasq.pid"),
		"--log-dhcp", "--log-facility=-",
	}
	return l.Start(ctx, isp, filepath.Join(dir, isp+"-dnsmasq.log"), args...)
}

func netmask(bits int) string {
	m := ^uint32(0) << (32 - bits)
	return fmt.Sprintf("%d.%d.%d.%d", byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// DHCP clients the lab can run on the router.
const (
	UDHCPC = "udhcpc"
	DHCPCD = "dhcpcd"
)

// udhcpcScript configures the lease the way busybox's example script
// does: the address, then every default route deleted and added back
// (RENEW_GAP seconds apart, to model a slow script) at metric 1000, so the
// client's route never decides traffic while uplinkd runs. It never
// touches resolv.conf.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
renew|bound)
	new="$ip/${mask:-24}"
	if ! ip -4 -o addr show dev "$interface" | grep -q " $new "; then
		ip addr add "$new" dev "$interface"
		for old in $(ip -4 -o addr show dev "$interface" | awk '{print $4}'); do
			[ "$old" = "$new" ] || ip addr del "$old" dev "$interface"
		done
	fi
	while ip route del default dev "$interface" 2>/dev/null; do :; done
	[ -n "$RENEW_GAP" ] && sleep "$RENEW_GAP"
	metric=1000
	for r in $router; do
		ip route add default via "$r" dev "$interface" metric "$metric"
		metric=$((metric + 1))
	done
	;;
esac
exit 0
`

// dhcpcdConfig: IPv4 only, no ARP probing of the offered address (the
// lab's leases are never in conflict), default routes at metric 1000.
const dhcpcdConfig = `ipv4only
noarp
noipv4ll
metric 1000
`

// StartDHCPClient runs client on the router's link, with every file it
// writes in dir: pid and lease files, its script or configuration. dhcpcd
// runs in a private mount namespace (`ip netns exec` makes one) with
// fresh /run and /var/lib/dhcpcd, and no script, so it touches neither
// the host's files nor its resolv.conf. renewGap is udhcpc's pause
// between deleting and re-adding its default route.
func (l *Lab) StartDHCPClient(ctx context.Context, client, link, dir string, renewGap string) (*exec.Cmd, error) {
	log := filepath.Join(dir, client+".log")
	switch client {
	case UDHCPC:
		script := filepath.Join(dir, "udhcpc.script")
		if err := os.WriteFile(script, []byte(udhcpcScript), 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		return l.Start(ctx, Router, log, "env", "RENEW_GAP="+renewGap,
			"udhcpc", "-f", "-i", link, "-s", script, "-p", filepath.Join(dir, "udhcpc.pid"), "-t", "20", "-T", "1", "-A", "1")
	case DHCPCD:
		conf := filepath.Join(dir, "dhcpcd.conf")
		lib := filepath.Join(dir, "dhcpcd-lib")
		if err := os.WriteFile(conf, []byte(dhcpcdConfig), 0o644); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		if err := os.MkdirAll(lib, 0o755); err != nil {
			return nil, fmt.Errorf("lab: %w", err)
		}
		sh := strings.Join([]string{
			"set -e",
			"mount -t tmpfs tmpfs /run",
			"mount --bind " + lib + " /var/lib/dhcpcd",
			"exec dhcpcd -B -4 -c /bin/true -f " + conf + " " + link,
		}, "\n")
		return l.Start(ctx, Router, log, "sh", "-c", sh)
	}
	return nil, fmt.Errorf("lab: unknown DHCP client %q (want %s or %s)", client, UDHCPC, DHCPCD)
}
