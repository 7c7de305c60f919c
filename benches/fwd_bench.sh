#!/usr/bin/env bash
# Forwarding-rate benchmark of the data plane (issue: zero-copy data plane), all in one run:
#   1. dpdk-testpmd io forwarding, native mbuf pool          (the ceiling)
#   2. dpdk-testpmd io forwarding, pinned external buffers   (same memory model as netvm)
#   3. netvm-core port -> port (no NF)
#   4. netvm-core port -> 1 NF process (l2fwd) -> port, zero-copy
#   5. netvm-core port -> 1 NF process in another trust domain -> port (one copy per frame)
# Traffic: net_null RX (SIZE bytes, default 64, copy=1) -> net_null TX (no-rx). Core/testpmd
# forwarding on the last CPU, the NF on CPU 0. Prints Mpps (and Gbit/s) and ratios. Frames over
# 2048 bytes run in domains whose `buffer_size` fits them (jumbo frames); testpmd then gets a
# matching --mbuf-size.
# Usage: benches/fwd_bench.sh [SECONDS] [SIZE]   (as root; builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
SIZE=${2:-64}
BUFSZ=$(( SIZE > 2048 ? SIZE : 2048 ))
NCPU=$(nproc)
WCPU=$((NCPU - 1))
cargo build --release -q -p netvm-core -p netvm-nfs
BIN=target/release
TMP=$(mktemp -d /tmp/netvm-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP" /var/run/dpdk/nvbench$$; }
trap cleanup EXIT

testpmd() { # $1 = mp-alloc
  { timeout -s INT $((SECS + 3)) dpdk-testpmd -l 0-$WCPU --main-lcore 0 --no-pci --in-memory \
    --file-prefix=nvbench$$ --vdev net_null0,size=$SIZE,copy=1 --vdev net_null1,no-rx=1 -- \
    --forward-mode=io --nb-cores=1 --stats-period="$SECS" --no-lsc-interrupt --mp-alloc="$1" \
    --mbuf-size=$((BUFSZ + 128)) --max-pkt-len=$((BUFSZ)) 2>&1 || true; } |
    awk '/Tx-pps/ {v=$2} END {printf "%.2f", v/1e6}'
}

core_cfg() { # $1 = with NF (0: none, 1: same domain, 2: another domain)
  local nfs='[]' svc='[]'
  if [ "$1" = 1 ]; then
    nfs='[{"name": "fwd1", "service": "fwd", "domain": "d0"}]'; svc='["fwd"]'
  elif [ "$1" = 2 ]; then
    nfs='[{"name": "fwd1", "service": "fwd", "domain": "d1"}]'; svc='["fwd"]'
  fi
  cat > "$TMP/core.json" <<JSON
{ "name": "bench", "run_dir": "$TMP/run", "workers": [{"cpu": $WCPU}],
  "domains": [{"name": "d0", "buffers": 16384, "buffer_size": $BUFSZ},
              {"name": "d1", "buffers": 16384, "buffer_size": $BUFSZ}],
  "ports": [{"name": "in", "device": "net_null0,size=$SIZE,copy=1", "domain": "d0"},
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
  if [ "$1" != 0 ]; then
    local dom=d0; [ "$1" = 2 ] && dom=d1
    while [ ! -S "$TMP/run/control.sock" ]; do kill -0 $cpid 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05; done
    local region
    region=$(ls /dev/hugepages/netvm-$dom.$cpid.region 2>/dev/null || ls /dev/shm/netvm-$dom.$cpid.region)
    taskset -c 0 "$BIN/l2fwd" --region "$region" --nf fwd1 --dst-mac 02:00:00:00:00:02 > "$TMP/nf.out" 2>&1 &
    PIDS+=($!)
  fi
  wait $cpid || { cat "$TMP/core.err" >&2; exit 1; }
  # This runs in a subshell (process substitution): stop the NF here, not in the EXIT trap.
  if [ "$1" != 0 ]; then kill "${PIDS[-1]}" 2>/dev/null || true; wait "${PIDS[-1]}" 2>/dev/null || true; fi
  python3 - "$TMP/sum.json" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))
tx=sum(p["tx"] for p in s["ports"])
print(f'{tx/s["uptime_s"]/1e6:.2f} {s["accounting_ok"]} {s["pools_full"]}')
PY
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "run: ${SECS}s per point, $SIZE B, net_null -> net_null"
T_NAT=$(testpmd native)
T_XBUF=$(testpmd xbuf)
read -r P2P OK1 FULL1 < <(core_run 0)
read -r NF1 OK2 FULL2 < <(core_run 1)
read -r NFX OK3 FULL3 < <(core_run 2)
printf '%-44s %8s\n' "configuration" "Mpps"
printf '%-44s %8s\n' "testpmd io-fwd (native pool)" "$T_NAT"
printf '%-44s %8s\n' "testpmd io-fwd (pinned external buffers)" "$T_XBUF"
printf '%-44s %8s   accounting=%s pools_full=%s\n' "netvm port->port" "$P2P" "$OK1" "$FULL1"
printf '%-44s %8s   accounting=%s pools_full=%s\n' "netvm port->l2fwd NF->port (zero-copy)" "$NF1" "$OK2" "$FULL2"
printf '%-44s %8s   accounting=%s pools_full=%s\n' "netvm port->l2fwd NF in another domain (copy)" "$NFX" "$OK3" "$FULL3"
python3 -c "
p2p,nat,xb,nf=$P2P,$T_NAT,$T_XBUF,$NF1
r=lambda a,b: f'{a/b:.2f}' if b else 'n/a (testpmd gave no figure)'
print(f'ratio port->port / testpmd native = {r(p2p,nat)}   (goal >= 0.85)')
print(f'ratio port->port / testpmd xbuf   = {r(p2p,xb)}')
print(f'through one NF = {nf:.2f} Mpps   (goal >= 20)')
g=lambda mpps: mpps*1e6*($SIZE+20)*8/1e9
print(f'Gbit/s on the wire ({$SIZE} B + 20 B preamble/IFG): port->port {g(p2p):.1f}, 1 NF zero-copy {g(nf):.1f}, 1 NF crossing {g($NFX):.1f}')
"
