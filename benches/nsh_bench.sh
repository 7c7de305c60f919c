#!/usr/bin/env bash
# Issue 17's measurements: (1) the rate of firewall -> l3fwd on one instance vs the same chain
# split over two instances (firewall on A, NSH over a veth between two network namespaces,
# l3fwd on B; net_af_packet on the link), interleaved rounds in one run; (2) the per-frame
# cost of NSH encapsulation and of decapsulation with validation (netvm-wire example).
# Prints figures; asserts nothing about time. On a 2-CPU machine every core worker and NF
# shares the two CPUs (the split runs four busy pollers, one instance three): the ratio says
# more about CPU sharing than about NSH there.
# Usage: benches/nsh_bench.sh [SECONDS] [ROUNDS]   (as root: it makes network namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
export NSH_BENCH_SECS=${1:-5}
export NSH_BENCH_ROUNDS=${2:-2}
cargo build --release -q -p netvm-core -p netvm-nfs
cargo run --release -q -p netvm-wire --example nsh_cost
cargo run --release -q -p netvm-tests --example nsh_split_rate 2>&1 \
  | grep -E '^(nsh_split_rate|  round)'
