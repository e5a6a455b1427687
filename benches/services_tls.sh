#!/usr/bin/env bash
# TLS services benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the stand-in
# router image, a release build of vansite), the cost of TLS at the router: one router, one plain
# connector to one echo server, and two listeners on it, one plain and one TLS (certificate issued
# by vansite from the site's skupper-service-ca), each behind its forwarder:
#   - throughput of one echo connection, 64 KiB blocks in lockstep, TLS against plain;
#   - connect + 64-byte echo + close (the TLS handshake included), median, TLS against plain.
# The two listeners alternate so that both see the same moments of a noisy machine. TLS here is
# the stand-in's (rustls), not the real router's (OpenSSL): the ratio tells what vansite's
# configuration costs on the stand-in, not what the real router's TLS costs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
T=$root/tests/testhost/testhost.sh
host=tlsbench
megabytes=${MEGABYTES:-64}
runs=${RUNS:-300}
rounds=${ROUNDS:-3}
image=localhost/skupper-router-standin:test

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
"$T" load-image "$host" "$tar" localhost/skupper-router-standin:test --change 'CMD ["/home/skrouterd/bin/skrouterd"]' --change 'USER 10000' >/dev/null
v() { "$T" run "$host" -- "$vansite" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

v init --router-image "$image" >/dev/null
client="ip netns exec vst-$host /usr/bin/python3 $root/benches/services_client.py"
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
tput_plain=$(median "${plain[@]}")
tput_tls=$(median "${tls[@]}")
read -r lat_plain lat_tls < <($client latency 8080 "$runs" 8443:tls)

echo "throughput, one echo connection ($megabytes MB each way in 64 KiB blocks, median of $rounds alternated rounds):"
echo "  plain listener:                   $tput_plain Mbit/s"
echo "  TLS listener:                     $tput_tls Mbit/s"
echo "  ratio TLS / plain:                $(ratio "$tput_tls" "$tput_plain")"
echo "connect + echo + close (median of $runs, the two listeners interleaved; TLS with its handshake):"
echo "  plain listener:                   $lat_plain µs"
echo "  TLS listener:                     $lat_tls µs"
echo "  ratio TLS / plain:                $(ratio "$lat_tls" "$lat_plain")"
echo "(router image: $image)"
