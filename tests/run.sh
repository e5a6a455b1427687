#!/usr/bin/env bash
# vansite's whole test suite, on a fresh Debian 12 machine, as root: installs Rust (rustup) if
# missing, what the test hosts need (tests/testhost/testhost.sh setup) and rpmbuild, builds the
# stand-in router image, then runs every test of the workspace, then builds the RPM and checks
# it (tests/rpm.sh, a release build: only for the whole suite). Extra arguments go to
# `cargo test` and skip the RPM.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
    echo "tests/run.sh: run as root: it creates test users, each with its own systemd --user" >&2
    exit 1
fi
# A fresh machine gets the stable Rust toolchain from rustup (Debian's cargo is older than the
# crates need), and the C/C++ compilers that crates and the fuzzer's libFuzzer build with.
if ! command -v cargo >/dev/null && [[ ! -x $HOME/.cargo/bin/cargo ]]; then
    echo "tests/run.sh: installing the Rust toolchain (rustup, stable)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl ca-certificates gcc g++ >/dev/null
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
fi
export PATH=$PATH:$HOME/.cargo/bin

tests/testhost/testhost.sh setup
# Test hosts run the built binaries as their own users: the target directory must be reachable
# by them. A checkout under a private directory (e.g. /root) builds elsewhere.
if [[ -z ${CARGO_TARGET_DIR:-} ]] && ! setpriv --reuid=nobody --regid=nogroup --clear-groups test -x "$PWD"; then
    export CARGO_TARGET_DIR=/var/tmp/vansite-target
    mkdir -p "$CARGO_TARGET_DIR" && chmod 755 "$CARGO_TARGET_DIR"
    echo "tests/run.sh: $PWD is private to root; building in $CARGO_TARGET_DIR" >&2
fi
if ! command -v rpmbuild >/dev/null; then
    echo "tests/run.sh: installing rpm (rpmbuild, for the package test)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rpm >/dev/null
fi
if ! command -v chromium >/dev/null; then
    echo "tests/run.sh: installing chromium (the console's browser test runs it headless)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
tests/testhost/build-standin-image.sh >/dev/null
# Whatever a failed test left up is brought down at the end (test hosts only: users vst-*).
trap 'tests/testhost/testhost.sh down >/dev/null 2>&1 || true' EXIT
# The token and link parsers under libFuzzer, briefly (FUZZ_SECONDS=0 skips it); first, so that
# the test runner's summary closes the output.
fuzz_status=0
if [[ ${FUZZ_SECONDS:-30} != 0 ]]; then
    fuzz/run.sh "${FUZZ_SECONDS:-30}" || fuzz_status=$?
fi
cargo test --workspace --no-fail-fast "$@"
if ((fuzz_status)); then
    echo "tests/run.sh: the fuzz target failed (see above; its input is in fuzz/artifacts/)" >&2
    exit "$fuzz_status"
fi
if (($# == 0)); then
    tests/rpm.sh
fi
