#!/usr/bin/env bash
# Idempotent machine setup for netvm on Debian 12, run as root.
#   - installs every system package the project needs (apt)
#   - reserves 2 MiB hugepages and mounts hugetlbfs at /dev/hugepages
# Environment:
#   NETVM_HUGEPAGES   number of 2 MiB pages to reserve (default 1024 = 2 GiB)
#   NETVM_SKIP_APT=1  skip the package step (packages already present)
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (apt-get, /proc/sys/vm/nr_hugepages, mount)"

PACKAGES=(
  # build: DPDK 22.11 from the distro, bindgen's libclang, pkg-config, hwloc for NUMA topology
  pkg-config clang libclang-dev libdpdk-dev dpdk dpdk-dev libhwloc-dev libpcap-dev
  # guests (VM issue): QEMU, busybox initramfs, a distro kernel, cpio to pack the initramfs
  qemu-system-x86 busybox-static linux-image-amd64 cpio
  # independent packet parser for output checks
  tshark
  # misc tools used by scripts and tests
  procps iproute2 util-linux
  # `netvm-manager metrics` tests: promtool checks the exposition, a private prometheus
  # server (started by the test on loopback, own config and data dir) scrapes it
  prometheus
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${NETVM_SKIP_APT:-0}" != 1 ] && [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages present"
fi

# The prometheus package ships a system service (port 9090, data in /var/lib/prometheus) that
# its postinst starts where the init system lets it. netvm's tests start their own server on a
# loopback port: keep the system one stopped and disabled when this run installed the package.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && [ "${NETVM_SKIP_APT:-0}" != 1 ]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl stop prometheus >/dev/null 2>&1 || true
    systemctl disable prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
  echo "setup: prometheus system service stopped and disabled (tests run their own)"
fi

# Rust toolchain: the machine's rustup toolchain; the static musl-free guest target is the host one.
# Debian 12's own rustc (1.63) is too old for the workspace; use rustup's stable toolchain.
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing Rust with rustup"
    command -v curl >/dev/null || apt-get install -y -qq curl ca-certificates >/dev/null
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy -c rustfmt \
      || die "could not install Rust: install it with rustup (https://rustup.rs) and re-run"
  }
  echo "setup: add \$HOME/.cargo/bin to PATH (source \$HOME/.cargo/env)"
fi

# Hugepages: reserve at least NETVM_HUGEPAGES 2 MiB pages, never shrink a bigger reservation.
want=${NETVM_HUGEPAGES:-1024}
have=$(cat /proc/sys/vm/nr_hugepages)
if [ "$have" -lt "$want" ]; then
  echo "$want" > /proc/sys/vm/nr_hugepages || true
  have=$(cat /proc/sys/vm/nr_hugepages)
  [ "$have" -ge "$want" ] || echo "setup: WARNING: kernel granted only $have of $want hugepages" >&2
fi
mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages; then
  mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages || echo "setup: WARNING: could not mount hugetlbfs at /dev/hugepages; tests fall back to --no-huge" >&2
fi
echo "setup: hugepages $(cat /proc/sys/vm/nr_hugepages) x 2 MiB, hugetlbfs $(mountpoint -q /dev/hugepages && echo mounted || echo absent) at /dev/hugepages"
