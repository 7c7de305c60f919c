#!/usr/bin/env bash
# Sets everything up (system packages, hugepages) and runs the demo: traffic replayed from a
# generated pcap through net_pcap (infinite_rx) -> firewall -> l3fwd -> out, in two trust
# domains (port + firewall in "edge", l3fwd + egress port in "core": one copy per packet),
# with a live progress line and a final summary (rates, drops by reason and by firewall rule,
# the accounting check). Two cases, each labelled:
#   1. healthy: the source paced at 400 kpps (examples/demo.json, `rx_rate_pps`), a rate the
#      two NFs sustain on one CPU: the drops are the firewall's intended denials (and, where
#      the NFs' CPU is taken away for milliseconds, a few frames overflowing a ring);
#   2. overload: the same chain with the source unpaced (examples/demo-overload.json): the NFs
#      cannot keep up, and the excess is dropped before it costs them anything: at the chain's
#      entry (`backpressure`) while the router is behind, else at the firewall's full ring.
# Usage (as root): scripts/demo.sh      NETVM_DEMO_SECONDS=N for a longer or shorter healthy
#                                       run (the overload case runs half as long).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release --workspace
# The demo's traffic: 32 mixed UDP/TCP flows, 12 of them denied by examples/demo-fw.rules.
target/release/netvm-manager gen-pcap examples/demo.pcap
secs=${NETVM_DEMO_SECONDS:-10}
echo "=== demo 1/2: healthy chain, source paced at 400 kpps (examples/demo.json)"
target/release/netvm-manager up examples/demo.json --duration "$secs"
echo
echo "=== demo 2/2: overload, the same chain with the source unpaced (examples/demo-overload.json)"
echo "===           the NFs cannot keep up: the excess is dropped at the chain's entry (backpressure) or the firewall's ring (ring_full), by design"
exec target/release/netvm-manager up examples/demo-overload.json --duration "$(( (secs + 1) / 2 ))"
