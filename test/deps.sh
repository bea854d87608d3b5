#!/usr/bin/env bash
# Installs the programs the privileged tests use when a fresh Debian
# machine lacks them: DHCP server and clients for the dynamic-uplink tests,
# radvd for the IPv6 router-advertisement tests,
# setpriv and systemd-analyze for the unit's tests, curl and logger for the
# example hooks. `make test` runs it first. Without root or apt-get it only
# says what is missing, and the tests that need it skip (UPLINKD_REQUIRE_PRIV=1
# turns those skips into failures).
set -u
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
need=()
have ip || need+=(iproute2)
have dnsmasq || need+=(dnsmasq-base)
have dhcpcd || need+=(dhcpcd-base)
have udhcpc || need+=(udhcpc)
have radvd || need+=(radvd)
have setpriv || need+=(util-linux)
have systemd-analyze || need+=(systemd)
have curl || need+=(curl ca-certificates)
have logger || need+=(bsdutils)
((${#need[@]})) || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "test/deps.sh: missing ${need[*]}: the tests that need them skip" >&2
	exit 0
fi
echo "test/deps.sh: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${need[@]}"; }; then
	echo "test/deps.sh: could not install ${need[*]}: the tests that need them skip" >&2
fi
exit 0
