#!/usr/bin/env bash
# Runs each netvm fuzz target for a bounded time (default 60 s each).
#   scripts/fuzz.sh [SECONDS]
# The targets in fuzz/ are plain stable-Rust harnesses (corpus + seeded random mutation): this
# environment has no cargo-fuzz and no registry access for libfuzzer-sys. Each target is a
# `fn(&[u8])` that drops into `libfuzzer_sys::fuzz_target!` unchanged.
set -euo pipefail
secs="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
corpus="$root/fuzz/corpus"
mkdir -p "$corpus/config_parse" "$corpus/desc_validation" "$corpus/control_request"
# Valid configs seed the config corpus (random bytes are almost never JSON).
for f in "$root"/examples/*.json; do
    [ -e "$f" ] && cp -f "$f" "$corpus/config_parse/"
done
# One line of every control command seeds the request corpus.
i=0
for r in '{"cmd":"status"}' '{"cmd":"stats"}' '{"cmd":"shutdown"}' '{"cmd":"detach","nf":"fw1"}' \
    '{"cmd":"attach","nf":"fw1"}' '{"cmd":"gone","nf":"fw1"}' \
    '{"cmd":"set_chains","chains":[{"name":"c","services":["fw"],"egress":"out","match":{"in_port":"in","dst":"10.0.0.0/8","proto":"udp","dst_port":"53-60"}}]}' \
    '{"cmd":"capture_start","at":"port:in:rx","filter":{"proto":"udp","dst_port":"53"},"snaplen":96,"count":10}' \
    '{"cmd":"capture_read","max":64}' '{"cmd":"capture_stop"}'; do
    printf '%s\n' "$r" > "$corpus/control_request/seed$i.json"
    i=$((i + 1))
done
cargo build --release --offline --target-dir "$root/fuzz/target"
for t in desc_validation config_parse control_request; do
    echo "== $t for ${secs}s"
    "$root/fuzz/target/release/$t" --secs "$secs" --corpus "$corpus/$t" --seed "$RANDOM"
done
