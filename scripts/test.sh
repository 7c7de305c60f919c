#!/usr/bin/env bash
# Sets everything up (system packages, hugepages) and runs every test of the workspace.
# Usage (as root): scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TERM_COLOR=never

echo "== build"
cargo build --workspace --all-targets
echo "== clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests"
cargo test --workspace 2>&1 | tee target/test.log
if [ -x scripts/test-extra.sh ]; then
  echo "== extra tests"
  bash scripts/test-extra.sh
fi
echo "== leftovers"
left=$(ls /dev/hugepages/ /dev/shm/ 2>/dev/null | grep -c '^netvm' || true)
[ "$left" -eq 0 ] || { echo "tests left $left netvm files in /dev/hugepages or /dev/shm" >&2; ls /dev/hugepages /dev/shm; exit 1; }
echo "all tests passed"
