#!/usr/bin/env bash
# Soak test (not in CI): the demo chain (net_pcap infinite_rx -> firewall [edge] -> l3fwd
# [core] -> net_null) at maximum rate for N minutes (default 10). Every 10 s it reads the stats
# over the control socket and checks the accounting invariant (received = transmitted +
# dropped + in flight, in flight = buffers owned by NFs); at the end it checks that every pool
# is full again and prints the RSS growth (VmRSS start -> end) of the core and each NF.
#   scripts/soak.sh [MINUTES]        (as root; release build)
set -euo pipefail
minutes="${1:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
cargo build --release -p netvm-core -p netvm-nfs -p netvm-manager
bin="$root/target/release"
work="$(mktemp -d /tmp/netvm-soak.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin/netvm-manager" gen-pcap "$work/demo.pcap"
cp examples/demo-fw.rules examples/demo.routes "$work/"
sed -e "s#rx_pcap=demo.pcap#rx_pcap=$work/demo.pcap#" examples/demo.json |
    python3 -c 'import json,sys; c=json.load(sys.stdin); c["run_dir"]=sys.argv[1]+"/run"; print(json.dumps(c))' "$work" \
    > "$work/soak.json"
"$bin/netvm-core" "$work/soak.json" --summary "$work/summary.json" >"$work/core.log" 2>&1 &
core=$!; pids+=("$core")
sock="$work/run/control.sock"
ctl() {
    python3 - "$sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2] + "\n").encode())
buf = b""
while not buf.endswith(b"\n"):
    c = s.recv(65536)
    if not c: break
    buf += c
print(buf.decode().strip())
PY
}
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
status="$(ctl '{"cmd":"status"}')"
region() { python3 -c 'import json,sys; print([r["path"] for r in json.loads(sys.argv[1])["regions"] if r["domain"]==sys.argv[2]][0])' "$status" "$1"; }
"$bin/firewall" --region "$(region edge)" --nf fw1 --rules "$work/demo-fw.rules" >"$work/fw1.log" 2>&1 &
pids+=($!)
"$bin/l3fwd" --region "$(region core)" --nf rt1 --routes "$work/demo.routes" >"$work/rt1.log" 2>&1 &
pids+=($!)
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
for _ in $(seq 300); do
    ctl '{"cmd":"status"}' | grep -q '"running":true' && break; sleep 0.1
done
sleep 5 # warm-up: pools, rings and caches reach their working set before the first RSS
declare -A rss0
for p in "${pids[@]}"; do rss0[$p]=$(rss "$p"); done
end=$(( $(date +%s) + minutes * 60 ))
fail=0
while [ "$(date +%s)" -lt "$end" ]; do
    sleep 10
    line="$(ctl '{"cmd":"stats"}')"
    python3 - "$line" <<'PY' || fail=1
import json, sys
s = json.loads(sys.argv[1])["stats"]
ok = s["accounting_ok"]
print(f'{s["uptime_s"]:8.0f} s  rx {s["received"]:>14}  tx {s["transmitted"]:>14}  '
      f'dropped {s["dropped"]:>10}  in flight {s["in_flight"]:>6}  '
      f'{s["received"] / max(s["uptime_s"], 1e-9) / 1e6:6.2f} Mpps  accounting {"ok" if ok else "BROKEN"}')
sys.exit(0 if ok else 1)
PY
done
echo "RSS growth (kB, VmRSS after warm-up -> end):"
for p in "${pids[@]}"; do
    echo "  $(tr '\0' ' ' < "/proc/$p/cmdline" | cut -c1-40): ${rss0[$p]} -> $(rss "$p")"
done
ctl '{"cmd":"shutdown"}' >/dev/null
wait "$core" || fail=1
python3 - "$work/summary.json" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
print(f'final: received {r["received"]} transmitted {r["transmitted"]} dropped {r["dropped"]} '
      f'drops {r["drops"]} accounting_ok {r["accounting_ok"]} pools_full {r["pools_full"]}')
sys.exit(0 if r["accounting_ok"] and r["pools_full"] else 1)
PY
[ "$fail" = 0 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }
