#!/bin/sh
# Installs OVS-DPDK for the `ovs` rows of the benchmark matrix (netvm-bench starts its own
# private ovsdb-server + ovs-vswitchd per run; no system OVS service may keep running).
#
# Not part of scripts/setup.sh or CI: the package brings system services. Idempotent. Needs root.
set -eu

VSWITCHD_DPDK=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-ovs.sh: run as root" >&2
    exit 1
fi

if ! dpkg-query -W -f='${Status}' openvswitch-switch-dpdk 2>/dev/null | grep -q 'install ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openvswitch-switch-dpdk
fi

# The DPDK-enabled vswitchd (the package installs it as an alternative, not as the default).
update-alternatives --set ovs-vswitchd "$VSWITCHD_DPDK"

# The package's postinst may have started the system instance: stop it (the benchmark runs its
# own, with its own database and sockets).
if [ -x /usr/share/openvswitch/scripts/ovs-ctl ]; then
    /usr/share/openvswitch/scripts/ovs-ctl stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop openvswitch-switch ovs-vswitchd ovsdb-server >/dev/null 2>&1 || true
    systemctl disable openvswitch-switch >/dev/null 2>&1 || true
fi
for pidfile in /var/run/openvswitch/ovs-vswitchd.pid /var/run/openvswitch/ovsdb-server.pid; do
    if [ -s "$pidfile" ]; then
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            echo "setup-ovs.sh: stopping system OVS process $pid ($pidfile)"
            kill "$pid" || true
        fi
    fi
done

echo "OVS-DPDK: $(ovs-vswitchd --version | head -1), $(readlink -f "$(command -v ovs-vswitchd)")"
