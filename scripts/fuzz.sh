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
mkdir -p "$corpus/config_parse" "$corpus/desc_validation"
# Valid configs seed the config corpus (random bytes are almost never JSON).
for f in "$root"/examples/*.json; do
    [ -e "$f" ] && cp -f "$f" "$corpus/config_parse/"
done
cargo build --release --offline --target-dir "$root/fuzz/target"
for t in desc_validation config_parse; do
    echo "== $t for ${secs}s"
    "$root/fuzz/target/release/$t" --secs "$secs" --corpus "$corpus/$t" --seed "$RANDOM"
done
