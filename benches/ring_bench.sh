#!/usr/bin/env bash
# Compares netvm-shm's SPSC descriptor ring with DPDK's rte_ring (16-byte elements, SP/SC,
# 32 per burst) on this machine, in one run.
#
#   benches/ring_bench.sh [ROUNDS]      (default 5 rounds; each round runs both benchmarks)
#
# Ours: netvm-shm/examples/ring_bench (release build). DPDK: `ring_perf_autotest` of
# dpdk-test (package dpdk-dev / dpdk-test). The two are interleaved round by round and the
# median (and the minimum) over the rounds is reported, because cross-core figures in a VM are
# multimodal: they vary several-fold with what the host does.
#
# Metrics, the same for both:
#   same-core  : cycles per descriptor for (enqueue 32 + dequeue 32) on one core
#                (DPDK: "elem APIs: element size 16B: SP/SC: burst (size: 32)" / 32)
#   cross-core : enqueuer on CPU 0, dequeuer on CPU 1, bulk 32; each side's cycles per
#                descriptor, summed (DPDK: the same line under "Testing using two ...")
# ns = cycles / TSC GHz (TSC calibrated by ring_bench). Ratio = ours / rte_ring (< 1: faster).
set -euo pipefail

ROUNDS="${1:-5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET_DIR/release/examples/ring_bench"
DPDK_TEST="${DPDK_TEST:-$(command -v dpdk-test || true)}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "building ring_bench (release)..." >&2
(cd "$ROOT" && cargo build --quiet -p netvm-shm --release --example ring_bench)

median() { sort -g | awk '{v[NR]=$1} END { if (NR == 0) print "nan"; else print v[int((NR + 1) / 2)] }'; }

# Extracts the 16-byte-element SP/SC 32 figures from ring_perf_autotest output:
#   "same <cycles per burst of 32>" and "cross <cycles per element, both sides summed>".
parse_dpdk() {
    awk '
        /^### / { section = $0 }
        /element size 16B: SP\/SC: burst \(size: 32\)/ && section ~ /burst enq\/deq/ {
            n = split($0, f, ": "); print "same", f[n] }
        /element size 16B: SP\/SC: bulk \(size: 32\)/ && section ~ /two physical cores|two hyperthreads/ {
            n = split($0, f, ": "); print "cross", f[n]; exit }
    ' "$1"
}

for r in $(seq 1 "$ROUNDS"); do
    echo "round $r/$ROUNDS: netvm-shm" >&2
    "$BENCH" --runs 5 > "$TMP/ours.$r"
    if [ -n "$DPDK_TEST" ]; then
        echo "round $r/$ROUNDS: rte_ring" >&2
        echo ring_perf_autotest | "$DPDK_TEST" --no-huge -m 256 --no-pci \
            --file-prefix="ringperf$$" -l 0-1 > "$TMP/dpdk.$r" 2>&1 || true
        parse_dpdk "$TMP/dpdk.$r" > "$TMP/dpdk.parsed.$r"
    fi
done

ours() { cat "$TMP"/ours.* | sed -n "s/^RESULT $1=//p" | median; }
ours_min() { cat "$TMP"/ours.* | sed -n "s/^RESULT $1=//p" | sort -g | head -n1; }
dpdk() { cat "$TMP"/dpdk.parsed.* 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }' | median; }
dpdk_min() {
    local v
    v="$(cat "$TMP"/dpdk.parsed.* 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }' | sort -g | head -n1)"
    echo "${v:-nan}"
}

GHZ="$(ours tsc_ghz)"
O_SAME="$(ours same_core_cycles)"
O_SAME_WAKE="$(ours same_core_wake_cycles)"
O_CROSS="$(ours cross_core_sum_cycles)"
O_CROSS_WALL="$(ours cross_core_wall_cycles)"
O_SAME_MIN="$(ours_min same_core_cycles_min)"
O_CROSS_MIN="$(ours_min cross_core_sum_cycles_min)"
D_SAME_MIN="$(awk -v c="$(dpdk_min same)" 'BEGIN { if (c == "nan") print "nan"; else printf "%.3f", c / 32 }')"
D_CROSS_MIN="$(dpdk_min cross)"
D_SAME_BURST="$(dpdk same)"
D_SAME="$(awk -v c="$D_SAME_BURST" 'BEGIN { if (c == "nan") print "nan"; else printf "%.3f", c / 32 }')"
D_CROSS="$(dpdk cross)"

echo
echo "Ring benchmark: 16-byte descriptors, SP/SC, 32 per burst; $ROUNDS rounds; TSC $GHZ GHz"
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
printf '%-34s %20s %20s %8s\n' "case (cycles | ns per descriptor)" "netvm-shm" "rte_ring" "ratio"
row() { # name ours dpdk
    awk -v n="$1" -v o="$2" -v d="$3" -v g="$GHZ" 'BEGIN {
        os = (o == "nan" || o == "") ? "n/a" : sprintf("%.2f | %.2f", o, o / g)
        ds = (d == "nan" || d == "") ? "n/a" : sprintf("%.2f | %.2f", d, d / g)
        rs = (o == "nan" || o == "" || d == "nan" || d == "" || d == 0) ? "n/a" : sprintf("%.2f", o / d)
        printf "%-34s %20s %20s %8s\n", n, os, ds, rs }'
}
row "same-core enq+deq, median" "$O_SAME" "$D_SAME"
row "same-core enq+deq, min" "$O_SAME_MIN" "$D_SAME_MIN"
row "same-core +doorbell check, median" "$O_SAME_WAKE" "$D_SAME"
row "cross-core enq+deq sides, median" "$O_CROSS" "$D_CROSS"
row "cross-core enq+deq sides, min" "$O_CROSS_MIN" "$D_CROSS_MIN"
row "cross-core wall clock, median" "$O_CROSS_WALL" ""
if [ -z "$DPDK_TEST" ]; then
    echo "(dpdk-test not found: install dpdk-dev / set DPDK_TEST for the rte_ring column)"
fi
echo
echo "per-round figures:"
for r in $(seq 1 "$ROUNDS"); do
    printf '  round %s: ours same %s cross %s' "$r" \
        "$(sed -n 's/^RESULT same_core_cycles=//p' "$TMP/ours.$r")" \
        "$(sed -n 's/^RESULT cross_core_sum_cycles=//p' "$TMP/ours.$r")"
    if [ -f "$TMP/dpdk.parsed.$r" ]; then
        printf ' | rte_ring same %s/32 cross %s' \
            "$(awk '$1 == "same" { print $2 }' "$TMP/dpdk.parsed.$r")" \
            "$(awk '$1 == "cross" { print $2 }' "$TMP/dpdk.parsed.$r")"
    fi
    echo
done
