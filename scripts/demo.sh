#!/usr/bin/env bash
# Sets everything up (system packages, hugepages) and runs the demo: traffic replayed from a
# generated pcap through net_pcap (infinite_rx) -> firewall -> l3fwd -> out, in two trust
# domains (port + firewall in "edge", l3fwd + egress port in "core": one copy per packet),
# with a live progress line and a final summary (rates, drops by reason and by firewall rule,
# the accounting check).
# Usage (as root): scripts/demo.sh      NETVM_DEMO_SECONDS=N for a longer or shorter run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --workspace
# The demo's traffic: 32 mixed UDP/TCP flows, 12 of them denied by examples/demo-fw.rules.
target/release/netvm-manager gen-pcap examples/demo.pcap
exec target/release/netvm-manager up examples/demo.json --duration "${NETVM_DEMO_SECONDS:-10}"
