#!/usr/bin/env bash
# Installs what `make bench` needs and a fresh Debian machine lacks: the
# seed's own tools (ipcalc, host, ping), the lab's DNS server (dnsmasq) and
# iproute2/util-linux. Only packages whose command is missing are installed.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
	echo "make bench needs root: it builds network namespaces" >&2
	exit 1
fi
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ipcalc >/dev/null || need+=(ipcalc)
command -v host >/dev/null || need+=(bind9-host)
command -v ping >/dev/null || need+=(iputils-ping)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v unshare >/dev/null || need+=(util-linux)
command -v mount >/dev/null || need+=(mount)
if ((${#need[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi
