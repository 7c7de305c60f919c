#!/usr/bin/env bash
# Tests that need a different build: the loom model of the shared-memory ring.
# Called by scripts/test.sh; its own target dir keeps the normal build's artifacts intact.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p netvm-shm --release --test loom
