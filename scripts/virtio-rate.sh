#!/usr/bin/env bash
# Rate through an unmodified guest (kind "virtio": kernel bridge, vhost-user, copies) vs
# through a netlib NF (l2fwd) in a guest (kind "vm": ivshmem, zero copy), same run, one
# worker, each guest on its own endless pcap input. Prints the FIGURE lines of
# tests/tests/vm_virtio.rs::virtio_vs_netlib_guest_rate (TCG here; KVM where /dev/kvm works).
# Env: CARGO_TARGET_DIR, NETVM_GUEST_TARGET_DIR as for the other guest tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --quiet -p netvm-tests --test vm_virtio virtio_vs_netlib_guest_rate -- --nocapture 2>&1 \
  | grep -E '^FIGURE|test result'
