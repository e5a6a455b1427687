#!/usr/bin/env bash
# Services benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the stand-in
# router image, a release build of vansite):
#   - throughput of one echo connection through a listener's forwarder against straight to the
#     router's loopback tcpListener behind it (same router, same connector, same echo server);
#   - connect + 64-byte echo + close, median, the same two ways, and the forwarder's cost per
#     connection;
#   - the forwarder's resident memory (VmRSS) per service;
#   - time to add a service live (`vansite connector create` + `vansite listener create`, until the
#     new listener serves) against a restart of the router (until the listener serves again).
# Ratios, not absolute figures, are what compares between runs: the machine is shared and noisy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
T=$root/tests/testhost/testhost.sh
host=svbench
megabytes=${MEGABYTES:-256}
runs=${RUNS:-300}
image=localhost/skupper-router-standin:test
client="ip netns exec vst-$host /usr/bin/python3 $root/benches/services_client.py"

"$T" setup >/dev/null
(cd "$root" && cargo build --quiet --release -p vansite)
vansite=${CARGO_TARGET_DIR:-$root/target}/release/vansite
tar=$("$root/tests/testhost/build-standin-image.sh")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    "$T" down "$host" >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$T" up "$host" --netns >/dev/null
"$T" load-image "$host" "$tar" "$image" --change 'CMD ["/home/skrouterd/bin/skrouterd"]' --change 'USER 10000' >/dev/null
v() { "$T" run "$host" -- "$vansite" "$@"; }
now() { date +%s%N; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.0f ms", ns / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
wait_serving() { until $client latency "$1" 1 >/dev/null 2>&1; do sleep 0.02; done; }

v init --router-image "$image" >/dev/null
$client server 9100 & server_pid=$!
sleep 0.3

# Adding a service live (both ends: the connector, then the listener and its forwarder).
t0=$(now)
v connector create echo 9100 --host 127.0.0.1 >/dev/null
v listener create echo 8080 --host 127.0.0.1 >/dev/null
wait_serving 8080
add=$(($(now) - t0))
router_port=$(v listener list -o json | sed -n 's/.*"routerPort": \([0-9]*\).*/\1/p')

# A router restart, until the same listener serves again.
t0=$(now)
"$T" run "$host" -- systemctl --user restart vansite-default-router.service
wait_serving "$router_port"
restart=$(($(now) - t0))

$client throughput 8080 16 >/dev/null # warm-up
tput_fwd=$($client throughput 8080 "$megabytes")
tput_direct=$($client throughput "$router_port" "$megabytes")
lat_fwd=$($client latency 8080 "$runs")
lat_direct=$($client latency "$router_port" "$runs")
pid=$("$T" run "$host" -- pgrep -u "vst-$host" -f '[v]ansite forward' | head -1)
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")

echo "throughput, one echo connection ($megabytes MB each way):"
echo "  through the forwarder:            $tput_fwd Mbit/s"
echo "  straight to the router:           $tput_direct Mbit/s"
echo "  ratio forwarder / straight:       $(ratio "$tput_fwd" "$tput_direct") (goal ≥ 0.90)"
echo "connect + echo + close (median of $runs):"
echo "  through the forwarder:            $lat_fwd µs"
echo "  straight to the router:           $lat_direct µs"
echo "  forwarder's cost per connection:  $((lat_fwd - lat_direct)) µs (goal < 50 µs)"
echo "forwarder memory (VmRSS):           $((rss_kb / 1024)).$(((rss_kb % 1024) * 10 / 1024)) MB per service"
echo "add a service live, until it serves: $(ms "$add")"
echo "router restart, until it serves:    $(ms "$restart")"
echo "  ratio live add / restart:         $(ratio "$add" "$restart")"
