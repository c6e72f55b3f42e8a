#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine that has a Rust toolchain (rustup) and root:
# installs what the tests need, then runs every test. The README's second command; CI calls it.
#
#   bash scripts/test-all.sh
#
# What it adds to a plain `cargo test --workspace` (which needs nothing but Rust):
#   - the x86_64-unknown-none target (rustup) for the no_std core and the bare-metal kernel;
#   - QEMU (Debian's qemu-system-x86, through apt-get) for the kernels booted by the tests;
#   - the core's no_std build, the loom model of the RCU counter protocol, the host backend without
#     its static-keys feature, the CLI tests that boot QEMU, and the kernel crate's own tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

say() { echo "test-all: $*" >&2; }
die() { echo "test-all: error: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found: install a Rust toolchain with rustup (https://rustup.rs) and retry"

# 1. The bare-metal target.
if ! rustc --print sysroot >/dev/null 2>&1; then die "rustc does not run"; fi
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    command -v rustup >/dev/null ||
        die "the x86_64-unknown-none target is missing and rustup is not installed to add it"
    say "adding the x86_64-unknown-none target (rustup)"
    rustup target add x86_64-unknown-none
fi

# 2. QEMU, from the distribution's packages.
if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"
    else die "qemu-system-x86_64 is missing and installing it needs root: run
    sudo apt-get update && sudo apt-get install -y qemu-system-x86
and run this script again"
    fi
    command -v apt-get >/dev/null ||
        die "qemu-system-x86_64 is missing and this is not a Debian/Ubuntu machine (no apt-get): install QEMU for x86-64 with your package manager and run this script again"
    say "installing QEMU (apt-get install qemu-system-x86)"
    $SUDO apt-get update -qq || die "apt-get update failed (see above)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-system-x86 >/dev/null ||
        die "apt-get install qemu-system-x86 failed (see above)"
    command -v qemu-system-x86_64 >/dev/null ||
        die "qemu-system-x86 is installed but qemu-system-x86_64 is not on PATH"
fi

# 3. The core always builds for a bare-metal target: no_std can never silently break.
say "no_std build of the core"
cargo build -q -p ctxtrack-core --target x86_64-unknown-none

# 4. The RCU counter protocol under loom, on the core's own atomics (own target dir: other
#    RUSTFLAGS, so the main build is not invalidated).
say "loom"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -q -p ctxtrack-core --test loom --release

# 5. The host backend with its atomic-bool fallback only (no static-keys crate).
say "host backend without static-keys"
cargo test -q -p ctxtrack-host --no-default-features --release

# 6. The CLI tests that boot the bare-metal kernel under QEMU (ignored by a plain cargo test).
say "CLI tests that boot QEMU"
cargo test -q -p ctxtrack --test cli -- --ignored

# 7. The workspace, then the test kernels booted under QEMU: last, so the log closes with them.
say "workspace tests, then the kernel's"
cargo test --workspace
(cd kernel && cargo test)
