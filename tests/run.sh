#!/usr/bin/env bash
# vansite's whole test suite, on a fresh Debian 12 machine, as root: installs what the test
# hosts need (tests/testhost/testhost.sh setup), builds the stand-in router image, then runs
# every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) != 0 ]]; then
    echo "tests/run.sh: run as root: it creates test users, each with its own systemd --user" >&2
    exit 1
fi
command -v cargo >/dev/null || {
    echo "tests/run.sh: cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
}

tests/testhost/testhost.sh setup
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
