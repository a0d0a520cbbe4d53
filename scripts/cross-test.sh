#!/usr/bin/env bash
# Runs the whole test suite for the ARM boards mppd supports, under qemu-user, and builds the
# static aarch64 binary.
#
#   scripts/cross-test.sh                 install what is missing, test aarch64 and armv7,
#                                         build aarch64-musl
#   scripts/cross-test.sh armv7-unknown-linux-gnueabihf     only the targets named
#
# The linkers and qemu runners of the targets are in scripts/cross-config.toml, which this script
# passes to cargo with `--config`: they must never apply to a native build on a board (cargo uses
# a `[target.<triple>]` runner for native builds too), so they are not in .cargo/config.toml.
# Installs, when missing:
# Debian's cross compilers and C libraries (gcc-aarch64-linux-gnu, gcc-arm-linux-gnueabihf),
# qemu-user, and the Rust standard libraries (rustup target add). The musl build needs no musl
# package: Rust ships musl's C library for that target and the aarch64 gcc only links.
#
# A target whose tools cannot be installed is reported on one line `SKIPPED: <target>: <reason>`
# and the others still run; with CROSS_REQUIRE=1 a skip fails the run. The exit status is
# non-zero when a test or a build failed.
#
# The tests run optimised (`--release`) with overflow checks and debug assertions switched back
# on: emulation is ten to twenty times slower than the host, too slow for the tests that bound
# wall-clock time in debug builds, while overflow checks are what a 32-bit run is for.
#
# Test files that start the `mppd` binary as a child process (CARGO_BIN_EXE_mppd) would fail
# under qemu-user without binfmt: the host kernel refuses to exec an ARM binary (ENOEXEC), and
# qemu turns posix_spawn's vfork into a fork, so the test only sees a child exiting with 127.
# They start it through `mppd_command()` in tests/process/mod.rs, which prefixes the runner this
# script exports in MPPD_TEST_RUNNER (for example "qemu-aarch64 -L /usr/aarch64-linux-gnu";
# unset on the host), so they run here like the others: lifecycle, memory, nginx, record_live,
# replay. A file that spawns the binary without honouring MPPD_TEST_RUNNER is left out with a
# SKIPPED line. tests/nginx.rs runs the host's nginx (natively) in front of the emulated server;
# without nginx its tests pass without running and the summary says so with a SKIPPED line.
#
# Tests run one at a time inside each test binary (CROSS_TEST_THREADS, default 1): two emulated
# test threads compete for the same two cores as the emulated server threads, which makes the
# tests that bound wall-clock time flaky, and it keeps tests that share a scratch directory
# apart.
#
# Everything here is built without default features: boards run one node, and the cluster
# feature (NATS, docs/cluster.md) is tested on the build machine (tests/cluster.rs).
#
# Environment: CROSS_INSTALL=0 installs nothing; CROSS_PROFILE (default: board) is the profile
# of the static binary; CROSS_TEST_THREADS (default 1); CARGO_TEST_ARGS are passed to every
# `cargo test` before `--`.
set -uo pipefail
cd "$(dirname "$0")/.."

TEST_TARGETS_DEFAULT=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)
BUILD_TARGETS_DEFAULT=(aarch64-unknown-linux-musl)
PROFILE="${CROSS_PROFILE:-board}"
INSTALL="${CROSS_INSTALL:-1}"
# Linkers and runners of the cross targets (never read by a native build).
CROSS_CONFIG=scripts/cross-config.toml

if [ "$#" -gt 0 ]; then
    test_targets=()
    build_targets=()
    for t in "$@"; do
        case "$t" in
            *-musl) build_targets+=("$t") ;;
            *) test_targets+=("$t") ;;
        esac
    done
else
    test_targets=("${TEST_TARGETS_DEFAULT[@]}")
    build_targets=("${BUILD_TARGETS_DEFAULT[@]}")
fi

# What each target needs on this machine: "linker runner sysroot debian-packages".
needs() {
    case "$1" in
        aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl)
            echo "aarch64-linux-gnu-gcc qemu-aarch64 /usr/aarch64-linux-gnu gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
            ;;
        armv7-unknown-linux-gnueabihf)
            echo "arm-linux-gnueabihf-gcc qemu-arm /usr/arm-linux-gnueabihf gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user"
            ;;
        *) return 1 ;;
    esac
}

declare -A skipped=()
results=()
failed=0
started=$(date +%s)

section() { printf '\n== cross: %s\n' "$1"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

skip() {
    skipped[$1]="$2"
    echo "SKIPPED: $1: $2"
    results+=("SKIPPED: $1: $2")
}

# ---- install ------------------------------------------------------------------------------

apt_updated=0
apt_install() {
    # apt_install PKG...: installs the packages that are missing; one line per failure.
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$INSTALL" = 0 ]; then
        echo "cross: not installing ${missing[*]} (CROSS_INSTALL=0)"
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null && sudo="sudo -n" || {
            echo "cross: cannot install ${missing[*]}: not root and no sudo"
            return 1
        }
    fi
    if ! command -v apt-get >/dev/null; then
        echo "cross: cannot install ${missing[*]}: no apt-get"
        return 1
    fi
    if [ "$apt_updated" = 0 ]; then
        echo "cross: apt-get update"
        $sudo apt-get update -qq >/tmp/cross-apt-update.log 2>&1 || echo "cross: apt-get update failed (see /tmp/cross-apt-update.log)"
        apt_updated=1
    fi
    echo "cross: apt-get install ${missing[*]}"
    # Recommends stay on: the cross gcc packages recommend their C library.
    if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/tmp/cross-apt.log 2>&1; then
        # One unavailable package must not keep the others out.
        for p in "${missing[@]}"; do
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$p" >>/tmp/cross-apt.log 2>&1 ||
                echo "cross: apt-get install $p failed (see /tmp/cross-apt.log)"
        done
    fi
}

installed_rust_targets=""
rust_target() {
    # rust_target TRIPLE: installs the standard library for TRIPLE if missing.
    [ -z "$installed_rust_targets" ] && installed_rust_targets=$(rustup target list --installed 2>/dev/null)
    grep -qx "$1" <<<"$installed_rust_targets" && return 0
    if [ "$INSTALL" = 0 ]; then
        return 1
    fi
    echo "cross: rustup target add $1"
    rustup target add "$1" >/tmp/cross-rustup-"$1".log 2>&1 || return 1
    installed_rust_targets=$(rustup target list --installed 2>/dev/null)
}

# Checks (installing if allowed) what target $1 needs; prints the reason and fails if not there.
prepare() {
    local t=$1 spec linker runner sysroot
    spec=$(needs "$t") || { echo "unknown target (known: ${TEST_TARGETS_DEFAULT[*]} ${BUILD_TARGETS_DEFAULT[*]})"; return 1; }
    read -r linker runner sysroot pkgs <<<"$spec"
    if ! command -v "$linker" >/dev/null || ! command -v "$runner" >/dev/null || [ ! -d "$sysroot/lib" ]; then
        # shellcheck disable=SC2086
        apt_install $pkgs >&2 || true
    fi
    command -v "$linker" >/dev/null || { echo "linker $linker not found (Debian package ${pkgs%% *})"; return 1; }
    command -v "$runner" >/dev/null || { echo "runner $runner not found (Debian package qemu-user)"; return 1; }
    [ -d "$sysroot/lib" ] || { echo "no C library under $sysroot (Debian package libc6-dev-*-cross)"; return 1; }
    command -v rustup >/dev/null || { echo "rustup not found: cannot add the Rust target"; return 1; }
    if ! rust_target "$t" >&2; then
        if [ "$INSTALL" = 0 ]; then
            echo "the Rust standard library for $t is not installed (CROSS_INSTALL=0)"
        else
            echo "rustup target add $t failed: $(grep -m 1 -A 3 '^error' "/tmp/cross-rustup-$t.log" 2>/dev/null | tr -s ' \n' ' ')"
        fi
        return 1
    fi
}

section "tools"
for t in "${test_targets[@]}" "${build_targets[@]}"; do
    if ! reason=$(prepare "$t"); then
        skip "$t" "$reason"
    fi
done
qemu-aarch64 --version 2>/dev/null | head -n 1
qemu-arm --version 2>/dev/null | head -n 1

# ---- tests under qemu ---------------------------------------------------------------------

# The files a test target is made of: tests/NAME.rs and the modules it declares.
test_files() {
    local f=$1 m
    echo "$f"
    for m in $(sed -n 's/^[[:space:]]*mod[[:space:]]\{1,\}\([a-z_0-9]\{1,\}\);.*/\1/p' "$f"); do
        [ -f "tests/$m/mod.rs" ] && echo "tests/$m/mod.rs"
        [ -f "tests/$m.rs" ] && echo "tests/$m.rs"
    done
}

# Sorts the integration test targets into those that run under the runner and those that
# start the target binary without it.
runnable_tests=()
spawning_tests=()
for f in tests/*.rs; do
    spawns=0
    honours=1
    for g in $(test_files "$f"); do
        if grep -q 'CARGO_BIN_EXE_' "$g"; then
            spawns=1
            grep -q 'MPPD_TEST_RUNNER' "$g" || honours=0
        fi
    done
    if [ "$spawns" = 1 ] && [ "$honours" = 0 ]; then
        spawning_tests+=("$(basename "$f" .rs)")
    else
        runnable_tests+=("$(basename "$f" .rs)")
    fi
done

for t in "${test_targets[@]}"; do
    [ -n "${skipped[$t]+x}" ] && continue
    section "test $t (under qemu-user)"
    t0=$(date +%s)
    read -r _ runner sysroot _ <<<"$(needs "$t")"
    export MPPD_TEST_RUNNER="$runner -L $sysroot"
    for name in "${spawning_tests[@]}"; do
        line="SKIPPED: $t: tests/$name.rs: starts the mppd binary itself, which qemu-user cannot exec without binfmt (ENOEXEC); make it honour MPPD_TEST_RUNNER"
        echo "$line"
        results+=("$line")
        skipped[$t/$name]=1
    done
    if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ] && [ -f tests/nginx.rs ]; then
        line="SKIPPED: $t: tests/nginx.rs: nginx not installed (its tests pass without running)"
        echo "$line"
        results+=("$line")
    fi
    selection=(--lib --bins)
    for name in "${runnable_tests[@]}"; do
        selection+=(--test "$name")
    done
    threads="--test-threads=${CROSS_TEST_THREADS:-1}"
    # shellcheck disable=SC2086
    if CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
        nice cargo test --config "$CROSS_CONFIG" --release --no-default-features --no-fail-fast --target "$t" "${selection[@]}" ${CARGO_TEST_ARGS:-} -- "$threads" &&
        CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
            nice cargo test --config "$CROSS_CONFIG" --release --no-default-features --target "$t" --doc ${CARGO_TEST_ARGS:-} -- "$threads"; then
        results+=("PASSED: $t: cargo test under qemu, ${#runnable_tests[@]} test files ($(elapsed "$t0"))")
    else
        results+=("FAILED: $t: cargo test under qemu ($(elapsed "$t0"))")
        failed=1
    fi
    unset MPPD_TEST_RUNNER
done

# ---- static binaries ----------------------------------------------------------------------

for t in "${build_targets[@]}"; do
    [ -n "${skipped[$t]+x}" ] && continue
    section "build $t (--profile $PROFILE)"
    t0=$(date +%s)
    bin="target/$t/$PROFILE/mppd"
    if ! nice cargo build --config "$CROSS_CONFIG" --profile "$PROFILE" --no-default-features --target "$t" --bin mppd; then
        results+=("FAILED: $t: build ($(elapsed "$t0"))")
        failed=1
        continue
    fi
    # Static means no program interpreter, and it runs without the cross C library (no -L).
    if readelf -l "$bin" 2>/dev/null | grep -q 'Requesting program interpreter'; then
        results+=("FAILED: $t: $bin is dynamically linked")
        failed=1
        continue
    fi
    runner=$(needs "$t" | cut -d' ' -f2)
    if ! "$runner" "$bin" --help >/dev/null; then
        results+=("FAILED: $t: $bin --help does not run under $runner")
        failed=1
        continue
    fi
    size=$(stat -c %s "$bin")
    results+=("PASSED: $t: static $bin, $size bytes, runs ($(elapsed "$t0"))")
done

# ---- summary ------------------------------------------------------------------------------

section "summary ($(elapsed "$started"))"
for line in "${results[@]}"; do
    echo "$line"
done
if [ "${#skipped[@]}" -gt 0 ] && [ "${CROSS_REQUIRE:-0}" = 1 ]; then
    echo "cross: ${#skipped[@]} target(s) skipped and CROSS_REQUIRE=1"
    failed=1
fi
exit "$failed"
