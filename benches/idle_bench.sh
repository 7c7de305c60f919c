#!/usr/bin/env bash
# Adaptive vs busy worker polling (config "poll"), all in one run. Prints, asserts nothing:
#   1. idle cost: CPU time of each worker thread of an idle instance (memif ports with no peer,
#      one l2fwd NF) over SECONDS, busy vs adaptive (default 1 ms maximum sleep, and 500 and
#      250 µs), from /proc/PID/task/TID/schedstat (ns on CPU; /proc/.../stat utime+stime as a
#      cross-check) — goal: adaptive <= 2% of a CPU;
#   2. latency: netvm-pktgen (memif client, HDR round-trip latency, TSC-paced, 16 flows, 64 B)
#      at 10 kpps and 100 kpps through port->port (no NF) and port->l2fwd->port, busy vs
#      adaptive (default bound), p50/p99/max and the worker's sleeps during the run (from the
#      core's stats, taken before and after pktgen, so pktgen's start-up is included).
# Placement (2 CPUs): the core's worker on the last CPU; the NF and pktgen both on CPU 0 (they
# share it: NF wake-ups wait for the scheduler, which shows in the l2fwd latencies of both modes).
# Usage: benches/idle_bench.sh [SECONDS] [LAT_SECONDS]   (as root; builds release binaries;
#        honours CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
LSECS=${2:-3}
NCPU=$(nproc)
WCPU=$((NCPU - 1))
GCPU=0
cargo build --release -q -p netvm-core -p netvm-nfs -p netvm-pktgen
BIN=${CARGO_TARGET_DIR:-target}/release
TMP=$(mktemp -d /tmp/netvm-idlebench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
NOHUGE=()
if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -lt 256 ]; then NOHUGE=(--no-huge); fi

core_cfg() { # $1 = poll mode (busy, adaptive or adaptive:MAX_SLEEP_US), $2 = 1 with an l2fwd NF
  local nfs='[]' svc='[]' poll="\"poll\": \"$1\""
  case "$1" in adaptive:*) poll="\"poll\": \"adaptive\", \"poll_max_sleep_us\": ${1#adaptive:}" ;; esac
  if [ "$2" = 1 ]; then nfs='[{"name": "fwd1", "service": "fwd", "domain": "d0"}]'; svc='["fwd"]'; fi
  local eal='{}'
  [ ${#NOHUGE[@]} -gt 0 ] && eal='{"no_huge_mb": 512}'
  cat > "$TMP/core.json" <<JSON
{ "name": "idlebench", "run_dir": "$TMP/run", "workers": [{"cpu": $WCPU}], $poll,
  "eal": $eal,
  "domains": [{"name": "d0", "buffers": 8192}],
  "ports": [{"name": "in", "device": "net_memif0,role=server,socket=$TMP/in.sock,socket-abstract=no", "domain": "d0"},
            {"name": "out", "device": "net_memif1,role=server,socket=$TMP/out.sock,socket-abstract=no", "domain": "d0"}],
  "nfs": $nfs,
  "chains": [{"name": "c", "match": {"in_port": "in"}, "services": $svc, "egress": "out"}] }
JSON
}

# Starts the core (and the NF) and waits until its ports run. Sets CPID, NPID.
start() { # $1 = poll, $2 = with NF
  core_cfg "$1" "$2"
  rm -f "$TMP"/*.sock
  "$BIN/netvm-core" "$TMP/core.json" --summary "$TMP/sum.json" > "$TMP/core.out" 2> "$TMP/core.err" &
  CPID=$!
  PIDS+=("$CPID")
  NPID=
  while [ ! -S "$TMP/run/control.sock" ]; do
    kill -0 "$CPID" 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05
  done
  if [ "$2" = 1 ]; then
    local region
    region=$(ls /dev/hugepages/netvm-d0.$CPID.region 2>/dev/null || ls /dev/shm/netvm-d0.$CPID.region)
    taskset -c $GCPU "$BIN/l2fwd" --region "$region" --nf fwd1 --dst-mac 02:00:00:00:00:02 > "$TMP/nf.out" 2>&1 &
    NPID=$!
    PIDS+=("$NPID")
  fi
  until ctl '{"cmd":"status"}' | grep -q '"running": *true'; do
    kill -0 "$CPID" 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05
  done
}

stop() {
  ctl '{"cmd":"shutdown"}' > /dev/null || true
  wait "$CPID" 2>/dev/null || true
  if [ -n "$NPID" ]; then kill "$NPID" 2>/dev/null || true; wait "$NPID" 2>/dev/null || true; fi
}

ctl() { python3 - "$TMP/run/control.sock" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d: break
    buf += d
print(buf.decode().strip())
PY
}

# Worker threads: the core's threads named netvm-core (worker 0 is the main thread; further
# workers are unnamed threads that inherit the name). Prints "ns_on_cpu ticks" summed.
worker_cpu_time() { # $1 = pid
  local ns=0 ticks=0 t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm")" = netvm-core ] || continue
    ns=$((ns + $(awk '{print $1}' "$t/schedstat")))
    ticks=$((ticks + $(awk '{print $14 + $15}' "$t/stat")))
  done
  echo "$ns $ticks"
}

sleeps() { ctl '{"cmd":"stats"}' | python3 -c 'import json,sys; r=json.load(sys.stdin)["stats"]; print(sum(w["sleeps"] for w in r["workers"]))'; }

idle_point() { # $1 = poll
  start "$1" 1
  sleep 1 # settle: links, NF attach, first backoff
  read -r ns0 t0 < <(worker_cpu_time "$CPID")
  local n0; n0=$(sleeps)
  local w0; w0=$(date +%s%N)
  sleep "$SECS"
  read -r ns1 t1 < <(worker_cpu_time "$CPID")
  local w1; w1=$(date +%s%N)
  local n1; n1=$(sleeps)
  local nfcpu=0
  if [ -n "$NPID" ]; then nfcpu=$(awk '{print $1}' /proc/"$NPID"/schedstat); fi
  stop
  python3 -c "
wall=($w1-$w0)/1e9; ns=($ns1-$ns0); ticks=($t1-$t0); hz=$(getconf CLK_TCK)
print(f'{\"$1\":<14} worker CPU {ns/1e9:7.3f} s of {wall:5.2f} s = {100*ns/1e9/wall:6.2f}% '
      f'(stat: {100*ticks/hz/wall:6.2f}%)   sleeps/s {($n1-$n0)/wall:8.0f}')"
}

lat_point() { # $1 = poll, $2 = with NF, $3 = rate
  start "$1" "$2"
  local n0; n0=$(sleeps)
  taskset -c $GCPU "$BIN/netvm-pktgen" \
    --dev "net_memif0,role=client,socket=$TMP/in.sock,socket-abstract=no" \
    --rx-dev "net_memif1,role=client,socket=$TMP/out.sock,socket-abstract=no" \
    --size 64 --flows 16 --rate "$3" --duration "$LSECS" --drain 1 --cpu $GCPU \
    --link-timeout 30 "${NOHUGE[@]}" --json "$TMP/pg.json" > "$TMP/pg.out" 2>&1 ||
    { tail -5 "$TMP/pg.out" >&2; stop; return; }
  local n1; n1=$(sleeps)
  stop
  python3 - "$TMP/pg.json" "$TMP/sum.json" "$1" "$2" "$3" "$((n1 - n0))" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
poll, nf, rate, sl = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
l = p["latency"]
path = "port->l2fwd->port" if nf == "1" else "port->port"
print(f'{path:<18} {rate:>5} {poll:<14} p50 {l["p50_ns"]/1e3:8.1f} us  p99 {l["p99_ns"]/1e3:8.1f} us'
      f'  max {l["max_ns"]/1e3:8.1f} us  sent {p["sent"]:>7} lost {p["lost"]:>4}'
      f'  worker sleeps {sl:>6}  accounting {s["accounting_ok"]} pools_full {s["pools_full"]}')
PY
}

echo "machine: $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "placement: core worker on CPU $WCPU; l2fwd NF and netvm-pktgen on CPU $GCPU"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo
echo "== idle instance (memif ports without a peer, one l2fwd NF), ${SECS} s =="
idle_point busy
idle_point adaptive
idle_point adaptive:500
idle_point adaptive:250
echo
echo "== round-trip latency, 64 B, 16 flows, ${LSECS} s per point =="
for nf in 0 1; do
  for rate in 10k 100k; do
    lat_point busy "$nf" "$rate"
    lat_point adaptive "$nf" "$rate"
  done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
