#!/usr/bin/env bash
# Tells whether a QEMU binary has everything netvm needs from stock QEMU:
#   1. the ivshmem-plain device,
#   2. memory-backend-file with share=on (the guest's BAR is the host's region file, shared),
#   3. both together on a real machine: QEMU starts with a power-of-two shared file as an
#      ivshmem-plain BAR (a 64 KiB boot ROM that exits at once through isa-debug-exit).
# Usage: qemu-patches/check-qemu.sh [QEMU_BINARY]   (default: qemu-system-x86_64)
# Exit status 0 when everything is there, 1 otherwise; one line per check.
set -uo pipefail
qemu=${1:-qemu-system-x86_64}
fail=0
ok()  { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

if ! command -v "$qemu" >/dev/null 2>&1; then
  echo "FAIL $qemu not found (apt-get install qemu-system-x86)"; exit 1
fi
echo "qemu: $(command -v "$qemu"): $("$qemu" --version | head -n 1)"

if "$qemu" -device help 2>/dev/null | grep -q '"ivshmem-plain"'; then
  ok "device ivshmem-plain"
else
  bad "device ivshmem-plain missing (QEMU older than 2.6, or built without CONFIG_IVSHMEM_DEVICE)"
fi

props=$("$qemu" -object memory-backend-file,help 2>/dev/null)
if grep -q 'share=' <<<"$props" && grep -q 'mem-path=' <<<"$props"; then
  ok "memory-backend-file with mem-path= and share="
else
  bad "memory-backend-file lacks mem-path= or share= (QEMU older than 2.1?)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Reset vector at 0xffff0 of a 64 KiB BIOS: mov al,1; out 0xf4,al; hlt  -> QEMU exits with 3.
python3 - "$tmp/probe.rom" <<'PY' 2>/dev/null || printf '' > "$tmp/probe.rom"
import sys
b = bytearray(b'\xf4' * 65536)
code = bytes([0xb0, 0x01, 0xe6, 0xf4, 0xf4])
b[0xfff0:0xfff0 + len(code)] = code
open(sys.argv[1], 'wb').write(b)
PY
truncate -s 2M "$tmp/region"
timeout 30 "$qemu" -accel tcg -nodefaults -no-user-config -display none -monitor none \
  -serial none -m 16 -bios "$tmp/probe.rom" -device isa-debug-exit,iobase=0xf4,iosize=1 \
  -object memory-backend-file,id=r,mem-path="$tmp/region",size=2M,share=on \
  -device ivshmem-plain,memdev=r >"$tmp/log" 2>&1
rc=$?
if [ "$rc" -eq 3 ]; then
  ok "a guest starts with a shared 2 MiB file as an ivshmem-plain BAR"
else
  bad "QEMU would not start with the netvm device set (exit $rc): $(tail -n 1 "$tmp/log")"
fi
# Non-power-of-two sizes are what the manager refuses; show that QEMU would too.
truncate -s 3M "$tmp/region3"
if { timeout 30 "$qemu" -accel tcg -nodefaults -no-user-config -display none -monitor none \
  -serial none -m 16 -bios "$tmp/probe.rom" -device isa-debug-exit,iobase=0xf4,iosize=1 \
  -object memory-backend-file,id=r,mem-path="$tmp/region3",size=3M,share=on \
  -device ivshmem-plain,memdev=r >"$tmp/log3" 2>&1; } 2>/dev/null; [ $? -eq 3 ]; then
  echo "note this QEMU accepts a 3 MiB ivshmem BAR (rounded up); netvm still requires powers of two"
else
  ok "non-power-of-two BAR refused by QEMU too: $(grep -m1 -i 'power\|size' "$tmp/log3" || tail -n 1 "$tmp/log3")"
fi
[ "$fail" -eq 0 ] && echo "this QEMU has everything netvm needs: no patch required"
exit "$fail"
