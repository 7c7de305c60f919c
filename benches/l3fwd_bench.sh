#!/usr/bin/env bash
# IPv4 vs IPv6 forwarding through one l3fwd NF, same run, interleaved (issue: IPv6 routing).
# Traffic: a net_pcap source replaying (infinite_rx) 64-byte UDP frames to 1024 destinations
# -> netvm-core (port fast path) -> l3fwd (routes: ROUTES random prefixes of each family plus
# covering routes, so every frame is routed) -> net_null sink. Core on the last CPU, l3fwd on
# CPU 0. Prints Mpps per round and the medians.
# Usage: benches/l3fwd_bench.sh [SECONDS] [ROUNDS] [ROUTES]   (as root; builds release first)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-4}
ROUNDS=${2:-3}
ROUTES=${3:-1000}
WCPU=$(( $(nproc) - 1 ))
cargo build --release -q -p netvm-core -p netvm-nfs
BIN=target/release
TMP=$(mktemp -d /tmp/netvm-l3bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

python3 - "$TMP" "$ROUTES" <<'PY'
import struct, random, sys
tmp, nroutes = sys.argv[1], int(sys.argv[2])
random.seed(7)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
eth = lambda et: bytes.fromhex('020000000002020000000001') + struct.pack('!H', et)
def v4(i):
    dst = bytes([10, 1, (i >> 8) & 0xff, i & 0xff]); src = bytes([10, 0, 0, 1])
    udp = struct.pack('!HHHH', 1024, 5000, 8 + 18, 0) + bytes(18)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    return eth(0x0800) + ip + udp
def v6(i):
    dst = bytes.fromhex('20010db8') + bytes([0, (i >> 8) & 0xff, i & 0xff]) + bytes(8) + b'\x01'
    src = bytes.fromhex('20010db8ffff') + bytes(9) + b'\x01'
    udp = struct.pack('!HHHH', 1024, 5000, 10, 0) + bytes(2)
    ip = struct.pack('!IHBB', 0x60000000, len(udp), 17, 64) + src + dst
    return eth(0x86dd) + ip + udp
def pcap(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for fr in frames:
            f.write(struct.pack('<IIII', 0, 0, len(fr), len(fr)) + fr)
pcap(f'{tmp}/v4.pcap', [v4(i) for i in range(1024)])
pcap(f'{tmp}/v6.pcap', [v6(i) for i in range(1024)])
with open(f'{tmp}/routes', 'w') as r:
    mac = 'dst-mac 02:00:00:00:00:99'
    r.write(f'10.1.0.0/16 1 {mac}\n2001:db8::/32 1 {mac}\n')
    seen = set()
    while len(seen) < nroutes:
        l = random.choice([16, 20, 24, 24])
        ip = (random.randrange(1, 223) << 24) | random.randrange(1 << 24)
        ip &= (0xffffffff << (32 - l)) & 0xffffffff
        seen.add(f'{ip >> 24}.{(ip >> 16) & 255}.{(ip >> 8) & 255}.{ip & 255}/{l}')
    seen.discard('10.1.0.0/16')
    for p in sorted(seen):
        r.write(f'{p} 1 {mac}\n')
    seen6 = set()
    while len(seen6) < nroutes:
        a, b = random.randrange(0x2000, 0x3fff), random.randrange(1 << 16)
        seen6.add(f'{a:x}:{b:x}::/48' if random.random() < 0.8 else f'{a:x}::/32')
    seen6.discard('2001:db8::/32')
    for p in sorted(seen6):
        r.write(f'{p} 1 {mac}\n')
PY

run() { # $1 = v4|v6
  cat > "$TMP/core.json" <<JSON
{ "name": "l3bench", "run_dir": "$TMP/run", "workers": [{"cpu": $WCPU}],
  "domains": [{"name": "d0", "buffers": 16384}],
  "ports": [{"name": "in", "device": "net_pcap0,rx_pcap=$TMP/$1.pcap,infinite_rx=1", "domain": "d0"},
            {"name": "out", "device": "net_null0,no-rx=1", "domain": "d0"}],
  "nfs": [{"name": "r1", "service": "router", "domain": "d0"}],
  "chains": [{"name": "c", "match": {"in_port": "in"}, "services": ["router"], "egress": "out"}] }
JSON
  "$BIN/netvm-core" "$TMP/core.json" --duration "$SECS" --summary "$TMP/sum.json" > "$TMP/core.out" 2> "$TMP/core.err" &
  local cpid=$!
  PIDS+=("$cpid")
  while [ ! -S "$TMP/run/control.sock" ]; do kill -0 $cpid 2>/dev/null || { cat "$TMP/core.err" >&2; exit 1; }; sleep 0.05; done
  local region
  region=$(ls /dev/hugepages/netvm-d0.$cpid.region 2>/dev/null || ls /dev/shm/netvm-d0.$cpid.region)
  taskset -c 0 "$BIN/l3fwd" --region "$region" --nf r1 --routes "$TMP/routes" > "$TMP/nf.out" 2>&1 &
  local nf=$!
  wait $cpid || { cat "$TMP/core.err" >&2; exit 1; }
  kill $nf 2>/dev/null || true; wait $nf 2>/dev/null || true
  python3 - "$TMP/sum.json" <<'PY'
import json,sys
s=json.load(open(sys.argv[1]))
tx=sum(p["tx"] for p in s["ports"])
print(f'{tx/s["uptime_s"]/1e6:.2f}')
PY
}

echo "l3fwd: $ROUTES random routes per family + covering routes, 64 B UDP, ${SECS}s x $ROUNDS rounds"
V4=(); V6=()
for r in $(seq 1 "$ROUNDS"); do
  V4+=("$(run v4)"); V6+=("$(run v6)")
  echo "round $r: IPv4 ${V4[-1]} Mpps, IPv6 ${V6[-1]} Mpps"
done
python3 -c "
import statistics as s
v4=[$(IFS=,; echo "${V4[*]}")]; v6=[$(IFS=,; echo "${V6[*]}")]
print(f'IPv4 median {s.median(v4):.2f} Mpps (range {min(v4):.2f}-{max(v4):.2f}); IPv6 median {s.median(v6):.2f} Mpps (range {min(v6):.2f}-{max(v6):.2f}); IPv6/IPv4 = {s.median(v6)/s.median(v4):.2f}')
"
