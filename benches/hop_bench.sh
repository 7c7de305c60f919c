#!/usr/bin/env bash
# The hop, measured fairly against the peers (issue 14). Every system gets the same traffic
# source and sink INSIDE the switch process — net_null RX (SIZE bytes, copy=1) and net_null TX
# (no-rx) — so no generator shares a CPU with an NF. Switch on the last CPU, every NF on CPU 0.
#   netvm        : netvm-core, chain of K l2fwd NF processes (one domain: zero-copy)
#   memif-copy   : testpmd switch (io, chained ports) + K testpmd NFs (mac fwd) over memif
#   memif-zc     : the same, NF memif clients in zero-copy mode
#   vhost        : testpmd switch with net_vhost ports + K testpmd NFs over virtio-user
#   ovs          : OVS-DPDK 3.1 (netdev bridge, PMD on the switch CPU, net_null ports as `dpdk`
#                  interfaces) + one testpmd NF over vhost-user (dpdkvhostuserclient); chain 1
#                  only, and only where installed (benches/setup-ovs.sh)
#   p2p          : netvm port->port and testpmd io-fwd null->null (the ceilings); testpmd twice:
#                  with its native mbuf pool and with --mp-alloc=xbuf (pinned external data
#                  buffers: netvm's model, headers private, data in the shared region)
# Points run in interleaved rounds (round r runs every point once, in a rotated order), and the
# table gives each point's median and range, with the switch's busy cycles per frame (a frame
# of a K-NF chain crosses the switch K + 1 times) and the first NF's busy cycles per packet:
# netvm's from its report (worker_cycles_per_packet, the NF's cycles_per_packet), testpmd's
# from --record-core-cycles (its per-stream figure times K + 1), OVS's from
# dpif-netdev/pmd-stats-show (processing cycles over the measured interval / frames out).
# Usage: benches/hop_bench.sh [SECONDS] [ROUNDS] [SIZES] [CHAINS] [SYSTEMS]
#   e.g. benches/hop_bench.sh 5 5 "64 256 1518" "1 2 3" "netvm memif-copy memif-zc vhost ovs"
# With HOP_OUT=DIR the raw runs (runs.txt) and one SVG per size (hop_<SIZE>.svg: median bars,
# min-max whiskers) are written there.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
ROUNDS=${2:-3}
SIZES=${3:-64}
CHAINS=${4:-"1 3"}
# OVS-DPDK joins where installed (benches/setup-ovs.sh); chain 1 only.
OVS_DEFAULT=""
if [ "$(readlink -f "$(command -v ovs-vswitchd 2>/dev/null || echo /nonexistent)")" = /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]; then
  OVS_DEFAULT=" ovs"
fi
SYSTEMS=${5:-"netvm memif-copy memif-zc vhost$OVS_DEFAULT"}
NCPU=$(nproc)
SW=$((NCPU - 1))
NFCPU=0
cargo build --release -q -p netvm-core -p netvm-nfs
BIN=$PWD/target/release
TMP=$(mktemp -d /tmp/netvm-hop.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP" /var/run/dpdk/hop$$-*; }
trap cleanup EXIT
RES="$TMP/results.txt"
: > "$RES"

# testpmd's per-second Tx-pps of its last port (the null sink), median of the last SECS-1.
tp_rate() { # $1 = log, $2 = sink port id
  python3 - "$1" "$2" <<'PY'
import re, statistics, sys
text = open(sys.argv[1], errors="replace").read()
port = sys.argv[2]
vals = [float(m.group(1)) for m in re.finditer(
    r"NIC statistics for port " + port + r"\s.*?Tx-pps:\s+(\d+)", text, re.S)]
vals = [v for v in vals if v > 0]
print(f"{statistics.median(vals[-4:]) / 1e6:.2f}" if vals else "0")
PY
}

tp_cycles() { # $1 = log: testpmd's "CPU cycles/packet=…" (first figure)
  grep -o 'CPU cycles/packet=[0-9.]*' "$1" | head -1 | cut -d= -f2 || true
}

testpmd_switch() { # $1 = system, $2 = chain length, $3 = size; prints "Mpps cycles nfcycles"
  local sys=$1 k=$2 size=$3 pfx="hop$$-$RANDOM" vdevs=() i
  vdevs+=(--vdev "net_null0,size=$size,copy=1")
  for i in $(seq 1 "$k"); do
    if [ "$sys" = vhost ]; then vdevs+=(--vdev "net_vhost$i,iface=$TMP/s$i.sock")
    else vdevs+=(--vdev "net_memif$i,role=server,socket=$TMP/s$i.sock,socket-abstract=no"); fi
  done
  vdevs+=(--vdev "net_null$((k + 1)),no-rx=1")
  rm -f "$TMP"/s*.sock
  timeout -s INT $((SECS + 6)) dpdk-testpmd --lcores="0@$SW,1@$SW" --main-lcore=0 --no-pci \
    --in-memory --no-telemetry --file-prefix="$pfx" "${vdevs[@]}" -- --forward-mode=io \
    --port-topology=chained --nb-cores=1 --stats-period=1 --no-lsc-interrupt \
    --total-num-mbufs=32768 --record-core-cycles > "$TMP/switch.log" 2>&1 &
  local swpid=$! nfpids=()
  PIDS+=("$swpid")
  for i in $(seq 1 "$k"); do
    local t=0
    while [ ! -S "$TMP/s$i.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
    local dev extra=()
    case $sys in
      vhost) dev="net_virtio_user0,path=$TMP/s$i.sock"; extra=(--single-file-segments) ;;
      memif-zc) dev="net_memif0,role=client,socket=$TMP/s$i.sock,socket-abstract=no,zero-copy=yes"; extra=(--single-file-segments) ;;
      *) dev="net_memif0,role=client,socket=$TMP/s$i.sock,socket-abstract=no" ;;
    esac
    timeout -s INT $((SECS + 5)) dpdk-testpmd "${extra[@]}" --lcores="0@$NFCPU,1@$NFCPU" \
      --main-lcore=0 --no-pci --in-memory --no-telemetry --file-prefix="$pfx-nf$i" \
      --vdev "$dev" -- --forward-mode=mac --port-topology=loop --nb-cores=1 \
      --stats-period=3600 --no-lsc-interrupt --total-num-mbufs=16384 --record-core-cycles \
      > "$TMP/nf$i.log" 2>&1 &
    nfpids+=($!)
    PIDS+=($!)
  done
  wait "$swpid" || true
  for p in "${nfpids[@]}"; do wait "$p" 2>/dev/null || true; done
  # testpmd's cycles/packet are per forwarding stream; a frame crosses k + 1 of them.
  local swc
  swc=$(tp_cycles "$TMP/switch.log")
  [ -n "$swc" ] && swc=$(awk -v c="$swc" -v n=$((k + 1)) 'BEGIN {printf "%.1f", c * n}')
  echo "$(tp_rate "$TMP/switch.log" $((k + 1))) ${swc:--} $(tp_cycles "$TMP/nf1.log")"
}

ovs_run() { # $1 = chain length (1 only), $2 = size; prints "Mpps cycles-per-frame -"
  local k=$1 size=$2 d="$TMP/ovs" pfx="hop$$-$RANDOM" br="hopbr$RANDOM"
  rm -rf "$d"; mkdir -p "$d"
  export OVS_RUNDIR="$d" OVS_DBDIR="$d" OVS_LOGDIR="$d" OVS_SYSCONFDIR="$d"
  local db="unix:$d/db.sock" vs=(ovs-vsctl "--db=unix:$d/db.sock" --timeout=60)
  ovsdb-tool create "$d/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ovsdb-server "$d/conf.db" --remote="punix:$d/db.sock" --pidfile="$d/db.pid" \
    --unixctl="$d/db.ctl" > "$d/ovsdb.log" 2>&1 &
  local dbpid=$!; PIDS+=("$dbpid")
  local t=0; while [ ! -S "$d/db.sock" ] && [ $t -lt 200 ]; do sleep 0.05; t=$((t + 1)); done
  "${vs[@]}" --no-wait init -- set Open_vSwitch . other_config:dpdk-init=true \
    "other_config:dpdk-lcore-mask=0x$(printf %x $((1 << SW)))" \
    "other_config:pmd-cpu-mask=0x$(printf %x $((1 << SW)))" other_config:per-port-memory=true \
    "other_config:dpdk-extra=\"--in-memory --file-prefix=$pfx --no-pci --no-telemetry\""
  # The NF: the same testpmd mac forwarder as the vhost peer's, as the vhost-user server.
  timeout -s INT $((SECS + 30)) dpdk-testpmd --single-file-segments --lcores="0@$NFCPU,1@$NFCPU" \
    --main-lcore=0 --no-pci --in-memory --no-telemetry --file-prefix="$pfx-nf1" \
    --vdev "net_virtio_user0,path=$d/nf1.sock,server=1" -- --forward-mode=mac \
    --port-topology=loop --nb-cores=1 --stats-period=3600 --no-lsc-interrupt \
    --total-num-mbufs=16384 > "$TMP/nf1.log" 2>&1 &
  local nfpid=$!; PIDS+=("$nfpid")
  t=0; while [ ! -S "$d/nf1.sock" ] && [ $t -lt 200 ]; do sleep 0.05; t=$((t + 1)); done
  ovs-vswitchd "$db" --pidfile="$d/vs.pid" --unixctl="$d/vs.ctl" > "$d/vswitchd.log" 2>&1 &
  local vspid=$!; PIDS+=("$vspid")
  "${vs[@]}" add-br "$br" -- set bridge "$br" datapath_type=netdev \
    -- add-port "$br" in -- set Interface in type=dpdk "options:dpdk-devargs=net_null0,size=$size,copy=1" ofport_request=1 \
    -- add-port "$br" out -- set Interface out type=dpdk "options:dpdk-devargs=net_null1,no-rx=1" ofport_request=2 \
    -- add-port "$br" nf1 -- set Interface nf1 type=dpdkvhostuserclient "options:vhost-server-path=$d/nf1.sock" ofport_request=3 \
    > "$d/vsctl.log" 2>&1 || { tail -20 "$d/vswitchd.log" >&2; }
  local mg="unix:$d/$br.mgmt"
  ovs-ofctl del-flows "$mg"
  ovs-ofctl add-flow "$mg" "in_port=1,actions=output:3"
  ovs-ofctl add-flow "$mg" "in_port=3,actions=output:2"
  sleep 1 # warm-up (links up, PMD running), not measured
  local tx0 c0 t0 tx1 c1 t1
  read -r tx0 c0 t0 < <(ovs_sample "$d" "$br")
  sleep $((SECS - 1))
  read -r tx1 c1 t1 < <(ovs_sample "$d" "$br")
  kill "$vspid" "$nfpid" "$dbpid" 2>/dev/null || true
  wait "$vspid" "$nfpid" "$dbpid" 2>/dev/null || true
  unset OVS_RUNDIR OVS_DBDIR OVS_LOGDIR OVS_SYSCONFDIR
  python3 -c "
tx=$tx1-$tx0; dt=$t1-$t0; cyc=$c1-$c0
print(f'{tx/dt/1e6:.2f} {cyc/tx:.1f} -' if tx > 0 and dt > 0 else '0 - -')"
}

ovs_sample() { # $1 = dir, $2 = bridge: "frames-out pmd_busy_cycles seconds"
  local tx cyc
  # Frames out: the packet count of the flow that outputs to `out` (OVS reads net_null's port
  # statistics as 0), fresh after a revalidation round.
  ovs-appctl -t "$1/vs.ctl" revalidator/wait > /dev/null 2>&1 || true
  tx=$(ovs-ofctl dump-flows "unix:$1/$2.mgmt" 2>/dev/null \
    | awk '/in_port=3/ {for (i = 1; i <= NF; i++) if ($i ~ /^n_packets=/) {sub(/n_packets=/, "", $i); sub(/,/, "", $i); print $i}}')
  # The PMD's processing (busy) cycles so far.
  cyc=$(ovs-appctl -t "$1/vs.ctl" dpif-netdev/pmd-stats-show 2>/dev/null \
    | awk '/processing cycles:/ {gsub(/[^0-9]/, "", $3); s += $3} END {print s + 0}')
  echo "${tx:-0} $cyc $(date +%s.%N)"
}

testpmd_p2p() { # $1 = size, $2 = mbuf pool (native | xbuf: pinned external buffers, netvm's model)
  local pfx="hop$$-$RANDOM"
  timeout -s INT $((SECS + 4)) dpdk-testpmd --lcores="0@$SW,1@$SW" --main-lcore=0 --no-pci \
    --in-memory --no-telemetry --file-prefix="$pfx" --vdev "net_null0,size=$1,copy=1" \
    --vdev net_null1,no-rx=1 -- --forward-mode=io --nb-cores=1 --stats-period=1 \
    --no-lsc-interrupt --record-core-cycles "--mp-alloc=${2:-native}" > "$TMP/p2p.log" 2>&1 || true
  echo "$(tp_rate "$TMP/p2p.log" 1) $(tp_cycles "$TMP/p2p.log") -"
}

netvm_run() { # $1 = chain length (0: port->port), $2 = size; prints "Mpps cycles nfcycles"
  local k=$1 size=$2 nfs="" svcs="" i
  for i in $(seq 1 "$k"); do
    nfs="$nfs${nfs:+, }{\"name\": \"nf$i\", \"service\": \"s$i\", \"domain\": \"d0\"}"
    svcs="$svcs${svcs:+, }\"s$i\""
  done
  cat > "$TMP/core.json" <<JSON
{ "name": "hop", "run_dir": "$TMP/run", "workers": [{"cpu": $SW}],
  "domains": [{"name": "d0", "buffers": 32768}],
  "ports": [{"name": "in", "device": "net_null0,size=$size,copy=1", "domain": "d0"},
            {"name": "out", "device": "net_null1,no-rx=1", "domain": "d0"}],
  "nfs": [$nfs],
  "chains": [{"name": "c", "match": {"in_port": "in"}, "services": [$svcs], "egress": "out"}] }
JSON
  rm -rf "$TMP/run"
  "$BIN/netvm-core" "$TMP/core.json" --duration "$SECS" --summary "$TMP/sum.json" > "$TMP/core.out" 2> "$TMP/core.err" &
  local cpid=$! nfpids=()
  PIDS+=("$cpid")
  if [ "$k" -gt 0 ]; then
    while [ ! -S "$TMP/run/control.sock" ]; do kill -0 $cpid 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05; done
    local region
    region=$(ls /dev/hugepages/netvm-d0.$cpid.region 2>/dev/null || ls /dev/shm/netvm-d0.$cpid.region)
    for i in $(seq 1 "$k"); do
      taskset -c $NFCPU "$BIN/l2fwd" --region "$region" --nf "nf$i" --dst-mac 02:00:00:00:00:02 > "$TMP/nf$i.out" 2>&1 &
      nfpids+=($!)
      PIDS+=($!)
    done
  fi
  wait $cpid || { cat "$TMP/core.err" >&2; exit 1; }
  for p in "${nfpids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  python3 - "$TMP/sum.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
tx = sum(p["tx"] for p in s["ports"])
ok = s["accounting_ok"] and s["pools_full"]
cyc = s.get("worker_cycles_per_packet")
nfc = (s.get("nfs") or [{}])[0].get("cycles_per_packet")
print(f'{tx / s["uptime_s"] / 1e6:.2f}{"" if ok else "!"} {cyc if cyc else "-"} {nfc if nfc else "-"}')
PY
}

POINTS=()
for size in $SIZES; do
  POINTS+=("p2p-netvm 0 $size" "p2p-testpmd 0 $size" "p2p-testpmd-xbuf 0 $size")
  for k in $CHAINS; do
    for sys in $SYSTEMS; do
      [ "$sys" = ovs ] && [ "$k" != 1 ] && continue
      POINTS+=("$sys $k $size")
    done
  done
done
echo "machine: $NCPU CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run: ${SECS}s per point, $ROUNDS interleaved rounds, sizes: $SIZES, chains: $CHAINS; switch CPU $SW, NFs CPU $NFCPU"
np=${#POINTS[@]}
for r in $(seq 1 "$ROUNDS"); do
  for j in $(seq 0 $((np - 1))); do
    read -r sys k size <<< "${POINTS[$(( (j + r) % np ))]}"
    case $sys in
      p2p-netvm) out=$(netvm_run 0 "$size") ;;
      p2p-testpmd) out=$(testpmd_p2p "$size" native) ;;
      p2p-testpmd-xbuf) out=$(testpmd_p2p "$size" xbuf) ;;
      netvm) out=$(netvm_run "$k" "$size") ;;
      ovs) out=$(ovs_run "$k" "$size") ;;
      *) out=$(testpmd_switch "$sys" "$k" "$size") ;;
    esac
    echo "$sys $k $size $out" >> "$RES"
    echo "  round $r: $sys chain=$k ${size}B -> $out" >&2
  done
done
python3 - "$RES" "${HOP_OUT:-}" <<'PY'
import os, shutil, statistics, sys
from collections import defaultdict
runs = defaultdict(list); cyc = defaultdict(list); nfc = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 4: continue
    key = (f[0], int(f[1]), int(f[2]))
    runs[key].append(float(f[3].rstrip("!")))
    if len(f) > 4 and f[4] not in ("-", ""):
        try: cyc[key].append(float(f[4]))
        except ValueError: pass
    if len(f) > 5 and f[5] not in ("-", ""):
        try: nfc[key].append(float(f[5]))
        except ValueError: pass
print(f"{'system':<12} {'chain':>5} {'size':>5}  {'median':>7} {'min':>6} {'max':>6}  {'sw cyc/frm':>10} {'NF cyc/pkt':>10}  runs (Mpps)")
for key in sorted(runs, key=lambda k: (k[2], k[1], k[0])):
    v = runs[key]
    c = f"{statistics.median(cyc[key]):.1f}" if cyc[key] else "-"
    n = f"{statistics.median(nfc[key]):.1f}" if nfc[key] else "-"
    print(f"{key[0]:<12} {key[1]:>5} {key[2]:>5}  {statistics.median(v):7.2f} {min(v):6.2f} {max(v):6.2f}  {c:>10} {n:>10}  {' '.join(f'{x:.2f}' for x in v)}")
print()
for size in sorted({k[2] for k in runs}):
    get = lambda s, k: runs.get((s, k, size), [])
    nv1 = get("netvm", 1)
    peers = {s: max(get(s, 1)) for s in ("memif-copy", "memif-zc", "vhost", "ovs") if get(s, 1)}
    if nv1 and peers:
        best = max(peers, key=peers.get)
        print(f"{size} B: netvm 1-NF median {statistics.median(nv1):.2f} / best peer at its best ({best}) {peers[best]:.2f} = {statistics.median(nv1) / peers[best]:.2f}  (goal >= 1.5)")
    p2p = get("p2p-netvm", 0)
    if nv1 and p2p:
        print(f"{size} B: netvm 1-NF median / netvm port->port median = {statistics.median(nv1) / statistics.median(p2p):.2f}  (goal >= 0.6)")
    nv3 = get("netvm", 3)
    if nv1 and nv3:
        print(f"{size} B: netvm 3-NF / 1-NF (medians) = {statistics.median(nv3) / statistics.median(nv1):.2f}  (goal >= 0.5; NFs share CPU {0})")
    for k in sorted({k[1] for k in runs if k[2] == size and k[1] > 0}):
        nc = cyc.get(("netvm", k, size), [])
        for s in ("memif-copy", "memif-zc"):
            pc = cyc.get((s, k, size), [])
            if nc and pc:
                print(f"{size} B, {k} NF: switch cycles/frame netvm {statistics.median(nc):.0f} vs testpmd {s} switch {statistics.median(pc):.0f} (medians; goal: netvm <=)")
    tp = get("p2p-testpmd", 0)
    if p2p and tp:
        print(f"{size} B: netvm port->port / testpmd io-fwd (medians) = {statistics.median(p2p) / statistics.median(tp):.2f}  (goal >= 0.85)")
    tx = get("p2p-testpmd-xbuf", 0)
    if p2p and tx:
        print(f"{size} B: netvm port->port / testpmd io-fwd with pinned external buffers (--mp-alloc=xbuf, netvm's buffer model) = {statistics.median(p2p) / statistics.median(tx):.2f}")
out = sys.argv[2] if len(sys.argv) > 2 else ""
if out:
    os.makedirs(out, exist_ok=True)
    shutil.copy(sys.argv[1], os.path.join(out, "runs.txt"))
    colors = {"p2p-netvm": "#1f77b4", "p2p-testpmd": "#7f7f7f", "p2p-testpmd-xbuf": "#bcbd22", "netvm": "#1f77b4",
              "memif-copy": "#ff7f0e", "memif-zc": "#2ca02c", "vhost": "#d62728", "ovs": "#9467bd"}
    for size in sorted({k[2] for k in runs}):
        keys = sorted([k for k in runs if k[2] == size], key=lambda k: (k[1], k[0]))
        groups = sorted({k[1] for k in keys})
        top = max(max(runs[k]) for k in keys) * 1.1 or 1
        W, H, L, B, T = 760, 420, 60, 60, 40
        gw = (W - L - 20) / len(groups)
        svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
               f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">The hop, {size} B: Mpps (median, min-max over rounds)</text>']
        y = lambda v: H - B - (H - B - T) * v / top
        for i in range(6):
            v = top * i / 5
            svg.append(f'<line x1="{L}" x2="{W-20}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/><text x="{L-5}" y="{y(v)+4:.1f}" text-anchor="end">{v:.1f}</text>')
        for gi, g in enumerate(groups):
            ks = [k for k in keys if k[1] == g]
            bw = gw * 0.8 / len(ks)
            x0 = L + gi * gw + gw * 0.1
            label = "port\u2192port" if g == 0 else f"{g} NF" + ("s" if g > 1 else "")
            svg.append(f'<text x="{x0 + gw*0.4:.1f}" y="{H-B+30}" text-anchor="middle">{label}</text>')
            for j, k in enumerate(ks):
                v = runs[k]; m = statistics.median(v)
                x = x0 + j * bw
                c = colors.get(k[0], "#999")
                svg.append(f'<rect x="{x:.1f}" y="{y(m):.1f}" width="{bw*0.9:.1f}" height="{H-B-y(m):.1f}" fill="{c}"><title>{k[0]}: median {m:.2f}, {min(v):.2f}-{max(v):.2f}</title></rect>')
                xm = x + bw * 0.45
                svg.append(f'<line x1="{xm:.1f}" x2="{xm:.1f}" y1="{y(min(v)):.1f}" y2="{y(max(v)):.1f}" stroke="#000"/>')
                svg.append(f'<text x="{xm:.1f}" y="{H-B+14}" text-anchor="middle" font-size="9">{k[0]}</text>')
        svg.append(f'<line x1="{L}" x2="{W-20}" y1="{H-B}" y2="{H-B}" stroke="#000"/>')
        svg.append('</svg>')
        open(os.path.join(out, f"hop_{size}.svg"), "w").write("\n".join(svg) + "\n")
PY
