#!/usr/bin/env bash
# Hunts the netvm-core crash once seen in the benchmark matrix (3 NFs, zero-copy, memif ports,
# max rate, during the warm-up after the setup started): starts that setup REPS times afresh
# (benches/configs/crash-hunt.json, one netvm-bench run each: manager, core, 3 l2fwd NFs,
# pktgen at max rate) with core dumps enabled, then reports every run whose core died by a
# signal and any core dump with its backtrace.
# Usage (as root): scripts/crash-hunt.sh [REPS]     (default 10)
# Leaves: $OUT (default /tmp/netvm-crash-hunt): run-K/ results per setup, cores/ dumps.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-10}
OUT=${OUT:-/tmp/netvm-crash-hunt}
cargo build --release -q --workspace
rm -rf "$OUT"; mkdir -p "$OUT/cores"
old_pattern=$(cat /proc/sys/kernel/core_pattern)
restore() { echo "$old_pattern" > /proc/sys/kernel/core_pattern; }
trap restore EXIT
echo "$OUT/cores/core.%e.%p" > /proc/sys/kernel/core_pattern
ulimit -c unlimited
ok=0; bad=0
for k in $(seq 1 "$REPS"); do
  if target/release/netvm-bench run benches/configs/crash-hunt.json --out "$OUT/run-$k" \
       --no-progress > "$OUT/run-$k.log" 2>&1 \
     && ! grep -q 'exited with signal' "$OUT/run-$k.log" "$OUT/run-$k"/logs/*.log 2>/dev/null; then
    ok=$((ok + 1))
  else
    bad=$((bad + 1)); echo "crash-hunt: run $k FAILED (see $OUT/run-$k.log)"
  fi
done
echo "crash-hunt: $REPS fresh setups, $ok clean, $bad failed or crashed"
ls -l "$OUT/cores"
for c in "$OUT"/cores/core.*; do
  [ -e "$c" ] || continue
  echo "== $c"
  command -v gdb >/dev/null && gdb -batch -ex bt -ex 'thread apply all bt 8' \
    target/release/netvm-core "$c" 2>/dev/null | head -80 || true
done
[ "$bad" -eq 0 ]
