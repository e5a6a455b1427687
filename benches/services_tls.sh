#!/usr/bin/env bash
# TLS services benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the router
# image chosen as benches/lib.sh says, the stand-in by default, a release build of vansite), the
# cost of TLS at the router: one router, one plain connector to one echo server, and two listeners
# on it, one plain and one TLS (certificate issued by vansite from the site's skupper-service-ca),
# each behind its forwarder:
#   - throughput of one echo connection, 64 KiB blocks in lockstep, TLS against plain;
#   - connect + 64-byte echo + close (the TLS handshake included), median, TLS against plain.
# The two listeners alternate so that both see the same moments of a noisy machine. TLS is the
# router's: with the stand-in (rustls) the ratio tells what vansite's configuration costs there,
# not what the real router's TLS (OpenSSL) costs; ROUTER_TAR/ROUTER_IMAGE run it on another image.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
host=tlsbench
megabytes=${MEGABYTES:-64}
runs=${RUNS:-300}
rounds=${ROUNDS:-3}

bench_prepare
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    "$T" down "$host" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_up "$host"
bench_load_image "$host"
bench_describe_image "$host"
v() { "$T" run "$host" -- "$vansite" "$@"; }

v init --router-image "$router_image" >/dev/null
client="ip netns exec vst-$host /usr/bin/python3 $bench_root/benches/services_client.py"
$client server 9100 & server_pid=$!
sleep 0.3
v connector create echo 9100 --host 127.0.0.1 >/dev/null
v listener create plain 8080 --routing-key echo --host 127.0.0.1 >/dev/null
ca=$(v listener create tls 8443 --routing-key echo --host 127.0.0.1 --tls-credentials bench-tls -o json |
    sed -n 's/.*"caFile": "\([^"]*\)".*/\1/p')
export TLS_CA=$ca TLS_NAME=127.0.0.1
until $client latency 8443:tls 1 >/dev/null 2>&1; do sleep 0.05; done
until $client latency 8080 1 >/dev/null 2>&1; do sleep 0.05; done

$client lockstep 8443:tls 8 >/dev/null # warm-up
plain=() tls=()
for _ in $(seq "$rounds"); do
    plain+=("$($client lockstep 8080 "$megabytes")")
    tls+=("$($client lockstep 8443:tls "$megabytes")")
done
tput_plain=$(printf '%s\n' "${plain[@]}" | median)
tput_tls=$(printf '%s\n' "${tls[@]}" | median)
read -r lat_plain lat_tls < <($client latency 8080 "$runs" 8443:tls)

echo "throughput, one echo connection ($megabytes MB each way in 64 KiB blocks, median of $rounds alternated rounds):"
echo "  plain listener:                   $tput_plain Mbit/s"
echo "  TLS listener:                     $tput_tls Mbit/s"
echo "  ratio TLS / plain:                $(ratio "$tput_tls" "$tput_plain")"
echo "connect + echo + close (median of $runs, the two listeners interleaved; TLS with its handshake):"
echo "  plain listener:                   $lat_plain µs"
echo "  TLS listener:                     $lat_tls µs"
echo "  ratio TLS / plain:                $(ratio "$lat_tls" "$lat_plain")"
goal 'TLS/plain throughput' "$(ratio "$tput_tls" "$tput_plain")"
goal 'TLS/plain connect+echo+close' "$(ratio "$lat_tls" "$lat_plain")"
ratios_line
