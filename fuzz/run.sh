#!/usr/bin/env bash
# Fuzzes the token and link parsers briefly: `fuzz/run.sh [SECONDS]` (default 30).
#
# cargo fuzz (libFuzzer) on the stable toolchain with `--sanitizer none`: the machines this
# project runs on have one toolchain, stable, and cargo fuzz needs nightly only for its
# sanitizers (-Zsanitizer). Without them libFuzzer still guides inputs by coverage, and what it
# looks for in safe Rust, a panic or a hang, needs no sanitizer. cargo-fuzz comes from
# crates.io when missing. Seeds: fuzz/seeds (a Link + Secret, a v1 token and claim, an
# AccessToken). A crash leaves its input in fuzz/artifacts/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}

command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
mkdir -p corpus/token_parse
cp seeds/* corpus/token_parse/
cargo +stable fuzz run --sanitizer none token_parse corpus/token_parse -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 | tail -n 12
