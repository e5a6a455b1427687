#!/usr/bin/env bash
# Services benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the router
# image chosen as benches/lib.sh says, the stand-in by default, a release build of vansite):
#   - throughput of one echo connection through a listener's forwarder against straight to the
#     router's loopback tcpListener behind it (same router, same connector, same echo server);
#   - connect + 64-byte echo + close, median, the same two ways, and the forwarder's cost per
#     connection; with HAProxy installed (or REFERENCE_PROXY naming its executable), also through
#     HAProxy (one thread, TCP mode) in front of the same tcpListener, interleaved with the other
#     two: the cost of a well-tuned user-space hop on this machine, to read the forwarder's against;
#   - the forwarder's CPU time per connection (its scheduler run time, to the nanosecond), and the
#     time it waited for a CPU meanwhile;
#   - the forwarder's CPU time against the router's while it carries the same bytes;
#   - the forwarder's resident memory per service (VmRSS, and RssAnon: what is not shared);
#   - time to add a service live (`vansite connector create` + `vansite listener create`, until the
#     new listener serves) against a restart of the router (until the listener serves again).
# Ratios, not absolute figures, are what compares between runs: the machine is shared and noisy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
host=svbench
megabytes=${MEGABYTES:-256}
runs=${RUNS:-1000}
rounds=${ROUNDS:-3}
client="ip netns exec vst-$host /usr/bin/python3 $bench_root/benches/services_client.py"

bench_prepare
reference_proxy=${REFERENCE_PROXY:-$(command -v haproxy || true)}
reference_dir=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    [ -s "$reference_dir/pid" ] && kill "$(cat "$reference_dir/pid")" 2>/dev/null
    rm -rf "$reference_dir"
    "$T" down "$host" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_up "$host"
bench_load_image "$host"
bench_describe_image "$host"
v() { "$T" run "$host" -- "$vansite" "$@"; }
wait_serving() { until $client latency "$1" 1 >/dev/null 2>&1; do sleep 0.02; done; }

v init --router-image "$router_image" >/dev/null
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
pid=$("$T" run "$host" -- pgrep -u "vst-$host" -f '[v]ansite forward' | head -1)
router_pid=$("$T" run "$host" -- pgrep -u "vst-$host" -x skrouterd | head -1)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system
# Alternated rounds and interleaved connections: both paths see the same moments of a noisy machine.
fwd=() direct=() fwd_cpu=0 router_cpu=0
for _ in $(seq "$rounds"); do
    f0=$(cpu_ticks "$pid") r0=$(cpu_ticks "$router_pid")
    fwd+=("$($client throughput 8080 "$megabytes")")
    fwd_cpu=$((fwd_cpu + $(cpu_ticks "$pid") - f0)) router_cpu=$((router_cpu + $(cpu_ticks "$router_pid") - r0))
    direct+=("$($client throughput "$router_port" "$megabytes")")
done
tput_fwd=$(printf '%s\n' "${fwd[@]}" | median)
tput_direct=$(printf '%s\n' "${direct[@]}" | median)

# The reference hop: HAProxy on port 8081 of the test host's network, to the same tcpListener.
reference_ports=()
if [[ -n $reference_proxy ]]; then
    cat >"$reference_dir/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen reference
    bind 127.0.0.1:8081
    server router 127.0.0.1:$router_port
EOF
    ip netns exec "vst-$host" "$reference_proxy" -q -D -f "$reference_dir/haproxy.cfg" -p "$reference_dir/pid"
    wait_serving 8081
    reference_ports=(8081)
fi
# Scheduler statistics of every thread of PID (/proc/PID/task/*/schedstat): run time, then time
# waiting for a CPU, in ns (printf: mawk prints sums past 2^31 as 3.2e+09).
sched_ns() { cat /proc/"$1"/task/*/schedstat | awk '{run += $1; wait += $2} END {printf "%.0f %.0f\n", run, wait}'; }
read -r run0 wait0 < <(sched_ns "$pid")
read -r lat_fwd lat_direct lat_reference < <($client latency 8080 "$runs" "$router_port" "${reference_ports[@]}")
read -r run1 wait1 < <(sched_ns "$pid")
# The latency client makes two connections per counted one.
fwd_run_us=$(((run1 - run0) / (2 * runs) / 1000)) fwd_wait_us=$(((wait1 - wait0) / (2 * runs) / 1000))
rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
anon_kb=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")

echo "throughput, one echo connection ($megabytes MB each way, median of $rounds alternated rounds):"
echo "  through the forwarder:            $tput_fwd Mbit/s"
echo "  straight to the router:           $tput_direct Mbit/s"
echo "  ratio forwarder / straight:       $(ratio "$tput_fwd" "$tput_direct") (goal ≥ 0.85)"
echo "  CPU through the forwarder:        forwarder $(ratio "$fwd_cpu" "$router_cpu") of the router's"
echo "connect + echo + close (median of $runs, the paths interleaved):"
echo "  through the forwarder:            $lat_fwd µs"
echo "  straight to the router:           $lat_direct µs"
echo "  forwarder's cost per connection:  $((lat_fwd - lat_direct)) µs (goal < 50 µs)"
echo "  forwarder's CPU per connection:   $fwd_run_us µs running, $fwd_wait_us µs waiting for a CPU"
if [[ -n $reference_proxy ]]; then
    echo "  through HAProxy (reference hop):  $lat_reference µs, a cost of $((lat_reference - lat_direct)) µs ($("$reference_proxy" -v | sed -n '1s/ - .*//p'))"
fi
mb() { echo "$(($1 / 1024)).$((($1 % 1024) * 10 / 1024)) MB"; }
echo "forwarder memory per service:       VmRSS $(mb "$rss_kb"), of which $(mb "$anon_kb") its own"
echo "  (the rest is the binary and libc, mapped from the page cache and shared by every forwarder)"
echo "add a service live, until it serves: $(ms "$add")"
echo "router restart, until it serves:    $(ms "$restart")"
echo "  ratio live add / restart:         $(ratio "$add" "$restart")"
goal forwarder/straight "$(ratio "$tput_fwd" "$tput_direct")" '>=' 0.85
goal 'connect+echo+close forwarder-straight' "$((lat_fwd - lat_direct))" '<' 50 µs
goal 'live add/restart' "$(ratio "$add" "$restart")" '<=' 0.5
if [[ -n $reference_proxy ]]; then
    goal 'connect+echo+close haproxy-straight' "$((lat_reference - lat_direct)) µs"
fi
goal 'forwarder CPU/router' "$(ratio "$fwd_cpu" "$router_cpu")"
ratios_line
