#!/usr/bin/env bash
# Sets everything up (system packages, hugepages) and runs the demo.
# Usage (as root): scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
cargo build --release -p dpdk --example portfwd
# EAL up, two ports, packets forwarded, counts printed.
exec target/release/examples/portfwd "${NETVM_DEMO_SECONDS:-3}"
