#!/usr/bin/env bash
# The forwarder's per-connection ownership check (one NETLINK_SOCK_DIAG lookup of the socket
# that accepted the connection): loopback connect + accept + close with and without it, as
# any user. Prints both, the check's cost in µs, and the ratio; the ratio is what compares
# between runs (the machine is shared and noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --quiet --bench owner_check 2>/dev/null
