#!/usr/bin/env bash
# Scaling with workers (issue 13): port -> port and port -> 1 NF (l2fwd) -> port with 1 and 2
# workers, interleaved rounds, median and range. Traffic: net_null RX (64 B, copy=1) with as
# many RX queues as workers -> net_null TX. net_null has no RSS and its frames are not IP, so
# every queue's frames stay with its poller (no steering hand-offs; see docs/design.md).
# 1 worker: CPU (N-1). 2 workers: CPUs (N-2, N-1). The NF runs on CPU 0 — on a 2-CPU machine it
# then shares CPU 0 with worker 0 in the 2-worker case, which this script says in its output.
# Usage: benches/workers_bench.sh [SECONDS] [ROUNDS]   (as root; builds release binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}
ROUNDS=${2:-3}
NCPU=$(nproc)
cargo build --release -q -p netvm-core -p netvm-nfs
BIN=target/release
TMP=$(mktemp -d /tmp/netvm-wbench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

run_point() { # $1 = workers (1|2), $2 = NF (0|1); prints Mpps
  local workers nfs='[]' svc='[]'
  if [ "$1" = 1 ]; then workers="[{\"cpu\": $((NCPU - 1))}]"
  else workers="[{\"cpu\": $((NCPU - 2))}, {\"cpu\": $((NCPU - 1))}]"; fi
  if [ "$2" = 1 ]; then nfs='[{"name": "fwd1", "service": "fwd", "domain": "d0"}]'; svc='["fwd"]'; fi
  cat > "$TMP/core.json" <<JSON
{ "name": "wbench", "run_dir": "$TMP/run", "workers": $workers,
  "domains": [{"name": "d0", "buffers": 32768}],
  "ports": [{"name": "in", "device": "net_null0,size=64,copy=1", "domain": "d0"},
            {"name": "out", "device": "net_null1,no-rx=1", "domain": "d0"}],
  "nfs": $nfs,
  "chains": [{"name": "c", "match": {"in_port": "in"}, "services": $svc, "egress": "out"}] }
JSON
  rm -rf "$TMP/run"
  "$BIN/netvm-core" "$TMP/core.json" --duration "$SECS" --summary "$TMP/sum.json" > "$TMP/core.out" 2> "$TMP/core.err" &
  local cpid=$! nfpid=
  PIDS+=("$cpid")
  if [ "$2" = 1 ]; then
    while [ ! -S "$TMP/run/control.sock" ]; do kill -0 $cpid 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05; done
    local region
    region=$(ls /dev/hugepages/netvm-d0.$cpid.region 2>/dev/null || ls /dev/shm/netvm-d0.$cpid.region)
    taskset -c 0 "$BIN/l2fwd" --region "$region" --nf fwd1 --dst-mac 02:00:00:00:00:02 > "$TMP/nf.out" 2>&1 &
    nfpid=$!
    PIDS+=("$nfpid")
  fi
  wait $cpid || { cat "$TMP/core.err" >&2; exit 1; }
  if [ -n "$nfpid" ]; then kill "$nfpid" 2>/dev/null || true; wait "$nfpid" 2>/dev/null || true; fi
  python3 - "$TMP/sum.json" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))
tx=sum(p["tx"] for p in s["ports"])
ok = s["accounting_ok"] and s["pools_full"]
print(f'{tx/s["uptime_s"]/1e6:.2f}' + ('' if ok else '(!accounting)'))
PY
}

echo "machine: $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "run: ${SECS}s per point, $ROUNDS interleaved rounds, 64 B, net_null -> net_null"
[ "$NCPU" -le 2 ] && echo "note: 2 CPUs — with 2 workers the NF shares CPU 0 with worker 0"
declare -A R
for r in $(seq 1 "$ROUNDS"); do
  for nf in 0 1; do
    for w in 1 2; do
      v=$(run_point "$w" "$nf")
      R[$w,$nf]="${R[$w,$nf]:-} $v"
    done
  done
done
summ() { python3 -c 'import sys,statistics as s; v=[float(x.split("(")[0]) for x in sys.argv[1:]]; j=" ".join(sys.argv[1:]); print(f"median {s.median(v):6.2f}  range {min(v):.2f}-{max(v):.2f}  ({j})")' $1; }
for nf in 0 1; do
  name=$([ "$nf" = 0 ] && echo "port->port" || echo "1 NF (l2fwd)")
  for w in 1 2; do
    printf '%-14s %d worker(s): Mpps %s\n' "$name" "$w" "$(summ "${R[$w,$nf]}")"
  done
done
