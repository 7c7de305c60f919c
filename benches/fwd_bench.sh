#!/usr/bin/env bash
# Forwarding-rate benchmark of the data plane (issue: zero-copy data plane), all in one run:
#   1. dpdk-testpmd io forwarding, native mbuf pool          (the ceiling)
#   2. dpdk-testpmd io forwarding, pinned external buffers   (same memory model as netvm)
#   3. netvm-core port -> port (no NF)
#   4. netvm-core port -> 1 NF process (l2fwd) -> port, zero-copy
# Traffic: net_null RX (64 B, copy=1) -> net_null TX (no-rx). Core/testpmd forwarding on the
# last CPU, the NF on CPU 0. Prints Mpps and ratios; also the idle NF's CPU use.
# Usage: benches/fwd_bench.sh [SECONDS]   (as root; builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
NCPU=$(nproc)
WCPU=$((NCPU - 1))
cargo build --release -q -p netvm-core -p netvm-nfs
BIN=target/release
TMP=$(mktemp -d /tmp/netvm-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

testpmd() { # $1 = mp-alloc
  { timeout -s INT $((SECS + 3)) dpdk-testpmd -l 0-$WCPU --main-lcore 0 --no-pci --in-memory \
    --file-prefix=nvbench$$ --vdev net_null0,size=64,copy=1 --vdev net_null1,no-rx=1 -- \
    --forward-mode=io --nb-cores=1 --stats-period="$SECS" --no-lsc-interrupt --mp-alloc="$1" 2>&1 || true; } |
    awk '/Tx-pps/ {v=$2} END {printf "%.2f", v/1e6}'
}

core_cfg() { # $1 = with NF (0/1)
  local nfs='[]' svc='[]'
  if [ "$1" = 1 ]; then
    nfs='[{"name": "fwd1", "service": "fwd", "domain": "d0"}]'; svc='["fwd"]'
  fi
  cat > "$TMP/core.json" <<JSON
{ "name": "bench", "run_dir": "$TMP/run", "workers": [{"cpu": $WCPU}],
  "domains": [{"name": "d0", "buffers": 16384}],
  "ports": [{"name": "in", "device": "net_null0,size=64,copy=1", "domain": "d0"},
            {"name": "out", "device": "net_null1,no-rx=1", "domain": "d0"}],
  "nfs": $nfs,
  "chains": [{"name": "c", "match": {"in_port": "in"}, "services": $svc, "egress": "out"}] }
JSON
}

core_run() { # $1 = with NF
  core_cfg "$1"
  "$BIN/netvm-core" "$TMP/core.json" --duration "$SECS" --summary "$TMP/sum.json" > "$TMP/core.out" 2> "$TMP/core.err" &
  local cpid=$!
  PIDS+=("$cpid")
  if [ "$1" = 1 ]; then
    while [ ! -S "$TMP/run/control.sock" ]; do kill -0 $cpid 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05; done
    local region
    region=$(ls /dev/hugepages/netvm-d0.$cpid.region 2>/dev/null || ls /dev/shm/netvm-d0.$cpid.region)
    taskset -c 0 "$BIN/l2fwd" --region "$region" --nf fwd1 --dst-mac 02:00:00:00:00:02 > "$TMP/nf.out" 2>&1 &
    PIDS+=($!)
  fi
  wait $cpid || { cat "$TMP/core.err" >&2; exit 1; }
  # This runs in a subshell (process substitution): stop the NF here, not in the EXIT trap.
  if [ "$1" = 1 ]; then kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; fi
  python3 - "$TMP/sum.json" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))
tx=sum(p["tx"] for p in s["ports"])
print(f'{tx/s["uptime_s"]/1e6:.2f} {s["accounting_ok"]} {s["pools_full"]}')
PY
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "run: ${SECS}s per point, 64 B, net_null -> net_null"
T_NAT=$(testpmd native)
T_XBUF=$(testpmd xbuf)
read -r P2P OK1 FULL1 < <(core_run 0)
read -r NF1 OK2 FULL2 < <(core_run 1)
printf '%-44s %8s\n' "configuration" "Mpps"
printf '%-44s %8s\n' "testpmd io-fwd (native pool)" "$T_NAT"
printf '%-44s %8s\n' "testpmd io-fwd (pinned external buffers)" "$T_XBUF"
printf '%-44s %8s   accounting=%s pools_full=%s\n' "netvm port->port" "$P2P" "$OK1" "$FULL1"
printf '%-44s %8s   accounting=%s pools_full=%s\n' "netvm port->l2fwd NF->port (zero-copy)" "$NF1" "$OK2" "$FULL2"
python3 -c "
p2p,nat,xb,nf=$P2P,$T_NAT,$T_XBUF,$NF1
print(f'ratio port->port / testpmd native = {p2p/nat:.2f}   (goal >= 0.85)')
print(f'ratio port->port / testpmd xbuf   = {p2p/xb:.2f}')
print(f'through one NF = {nf:.2f} Mpps   (goal >= 20)')
"
