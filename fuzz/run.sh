#!/usr/bin/env bash
# Fuzzes vansite's parsers of untrusted input briefly: `fuzz/run.sh [SECONDS]` (default 30),
# SECONDS in all, shared equally by the targets below.
#
# cargo fuzz (libFuzzer) on the stable toolchain with `--sanitizer none`: the machines this
# project runs on have one toolchain, stable, and cargo fuzz needs nightly only for its
# sanitizers (-Zsanitizer). Without them libFuzzer still guides inputs by coverage, and what it
# looks for in safe Rust, a panic or a hang, needs no sanitizer. cargo-fuzz comes from
# crates.io when missing. A crash leaves its input in fuzz/artifacts/<target>/ and fails the
# script (after the other targets have run).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-30}

# One line a target: fuzz_targets/<target>.rs (a [[bin]] in Cargo.toml), seeds in seeds/<target>/.
targets=(
    token_parse     # token and link files (`link create`), grant and claims servers' answers
    resource_stream # YAML resource streams (`apply -f`, `delete -f`) and the checks across them
    grant_request   # what a client sends the grant server: its HTTP layer and the redemption protocol
)

each=$((seconds / ${#targets[@]}))
((each > 0)) || each=1
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
status=0
for target in "${targets[@]}"; do
    echo "fuzz/run.sh: $target for ${each}s"
    mkdir -p "corpus/$target"
    cp "seeds/$target"/* "corpus/$target/"
    cargo +stable fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$each" -timeout=10 -print_final_stats=1 2>&1 | tail -n 12 ||
        status=$?
done
exit "$status"
