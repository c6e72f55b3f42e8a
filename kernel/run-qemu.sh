#!/bin/bash
# Cargo runner for the test kernels (`cd kernel && cargo test`): boots an ELF under QEMU TCG (PVH
# entry) with the serial port captured, maps isa-debug-exit's code back (the kernel writes 0x10
# on success; QEMU exits (0x10<<1)|1 = 33), then replays the trace the kernel dumped with
# `ctxtrack replay`, the same code that checks real Linux traces: a violation fails the test.
set -u -o pipefail
kernel="$1"; shift
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v qemu-system-x86_64 >/dev/null; then
    echo "qemu-system-x86_64 not found: install it with 'apt-get install -y qemu-system-x86'" >&2
    exit 2
fi
# Each test kernel's machine: CPUs and command line (the environment overrides, for `ctxtrack
# kernel`).
name="$(basename "$kernel")"; name="${name%-*}"
case "$name" in
    syscalls) smp=2; append="nohz_full=1 ct=on" ;;
    nohz) smp=3; append="nohz_full=1-2 ct=on" ;;
    messaging) smp=4; append="nohz_full=1-3 ct=on" ;;
    ct_work) smp=3; append="nohz_full=1-2 ct=on ct_work=on" ;;
    *) smp=2; append="nohz_full=1 ct=on" ;;
esac
smp="${CTXTRACK_SMP:-$smp}"
append="${CTXTRACK_CMDLINE:-$append}"
nohz="$(sed -n 's/.*nohz_full=\([0-9,-]*\).*/\1/p' <<<"$append")"
out="$(mktemp)"
trap 'rm -f "$out" "$out.trace"' EXIT
timeout "${CTXTRACK_QEMU_TIMEOUT:-60}" qemu-system-x86_64 -accel tcg -m 256 \
    -smp "$smp" -display none -serial "file:$out" -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$kernel" -append "$append" "$@"
code=$?
# The log without the trace body.
sed '/^# tracer: nop/,/^# end of trace/d' "$out"
if [ "$code" -ne 33 ]; then
    echo "kernel failed: QEMU exit code $code" >&2
    exit 1
fi
sed -n '/^# tracer: nop/,/^# end of trace/p' "$out" > "$out.trace"
if [ -s "$out.trace" ]; then
    bin="${CTXTRACK_BIN:-$here/../target/release/ctxtrack}"
    if [ ! -x "$bin" ]; then
        cargo build --release -q --manifest-path "$here/../Cargo.toml" -p ctxtrack || exit 1
    fi
    echo "replaying the kernel's trace ($(grep -vc '^#' "$out.trace") events) with ctxtrack replay:"
    "$bin" replay "$out.trace" ${nohz:+--nohz-full "$nohz"} | grep -E "^(verdict|  CPU)" || exit 1
fi
