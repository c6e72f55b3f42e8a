#!/usr/bin/env bash
# Profile-guided build of the `ctxtrack` binary, then `ctxtrack bench sim` with it.
#
# The simulator's hot loop is an interpreter (one indirect call per entry-code step), which is
# what profile-guided block layout and inlining help most. Training runs the default messaging
# simulation and `compare` (every design), so the profile covers all designs, not only the
# benchmarked one. Usage: scripts/pgo-bench.sh [bench sim options, e.g. --repeat 5]
set -euo pipefail
cd "$(dirname "$0")/.."
rustup component add llvm-tools >/dev/null
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$sysroot/lib/rustlib/$host/bin/llvm-profdata"
dir="$PWD/target/pgo"
rm -rf "$dir/profiles" "$dir/merged.profdata"
echo "pgo: instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$dir/profiles" \
    cargo build --release -q -p ctxtrack --target-dir "$dir/gen"
echo "pgo: training (run messaging, compare)" >&2
"$dir/gen/release/ctxtrack" run messaging >/dev/null
"$dir/gen/release/ctxtrack" compare >/dev/null
"$profdata" merge -o "$dir/merged.profdata" "$dir/profiles"
echo "pgo: optimized build" >&2
RUSTFLAGS="-Cprofile-use=$dir/merged.profdata" \
    cargo build --release -q -p ctxtrack --target-dir "$dir/use"
echo "pgo: binary at target/pgo/use/release/ctxtrack" >&2
"$dir/use/release/ctxtrack" bench sim "$@"
