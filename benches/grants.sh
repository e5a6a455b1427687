#!/usr/bin/env bash
# Grant server redemptions per second on loopback, with concurrent clients, against a baseline
# measured in the same run on the same server: the same clients sending GET (answered 405 with
# no work), i.e. a TLS 1.3 handshake and one HTTP exchange per connection. The ratio says what a
# redemption (grant lock, state write, the link's own CA and client certificate issued, the
# router told to trust that CA before the answer goes, the YAML answer) costs on top of the
# connection, and holds on a noisy machine where the absolute figure does not. Concurrent
# redemptions share one trust renewal.
#
# Runs as root on a machine set up for the test hosts (tests/testhost/testhost.sh setup); the
# site runs on test host `grbench` (its own systemd --user and network namespace) and curl runs
# inside it against 127.0.0.1. Every connection is new (Connection: close), as redeeming sites'
# are. Bounded: REQUESTS requests per measurement (default 2000), CLIENTS at once (default 8).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

REQUESTS=${REQUESTS:-2000}
CLIENTS=${CLIENTS:-8}
HOST=grbench
[[ $(id -u) == 0 ]] || { echo "run as root (test hosts)" >&2; exit 2; }

bench_prepare
bench_up "$HOST"
trap '"$T" down "$HOST" >/dev/null 2>&1 || true' EXIT
bench_load_image "$HOST"
bench_describe_image "$HOST"
on_host() { "$T" run "$HOST" -- "$@"; }

on_host "$vansite" init --name bench --enable-link-access --host 127.0.0.1 \
    --router-image "$router_image" --timeout 120 >/dev/null
on_host "$vansite" token issue bench.token --redemptions 1000000 --expiration-window 1h >/dev/null
url=$(on_host sed -n 's/^  url: //p' bench.token)
code=$(on_host sed -n 's/^  code: //p' bench.token)
on_host sh -c 'cp .local/share/vansite/default/runtime/issuers/skupper-grant-server-ca/tls.crt ca.crt'

# Runs REQUESTS requests with METHOD, CLIENTS at a time; prints "<seconds> <count of STATUS>".
measure() { # METHOD STATUS
    local start end count
    start=$(date +%s.%N)
    count=$(on_host curl --silent --parallel --parallel-max "$CLIENTS" --tlsv1.3 --cacert ca.crt \
        -X "$1" -H 'Connection: close' -H 'name: bench-link' -H 'subject: bench' \
        --data-binary "$code" -o /dev/null -w '%{http_code}\n' "$url?n=[1-$REQUESTS]" 2>/dev/null |
        grep -c "^$2\$" || true)
    end=$(date +%s.%N)
    echo "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }') $count"
}

measure POST 200 >/dev/null # warm-up: the socket starts the server, caches fill
read -r base_s base_n < <(measure GET 405)
read -r redeem_s redeem_n < <(measure POST 200)
read -r base2_s base2_n < <(measure GET 405)
[[ $redeem_n == "$REQUESTS" && $base_n == "$REQUESTS" && $base2_n == "$REQUESTS" ]] || {
    echo "unexpected answers: $redeem_n redemptions, $base_n/$base2_n baseline (of $REQUESTS)" >&2
    exit 1
}
base_rate=$(awk -v n="$REQUESTS" -v a="$base_s" -v b="$base2_s" 'BEGIN { print 2 * n / (a + b) }')
redeem_rate=$(awk -v n="$REQUESTS" -v s="$redeem_s" 'BEGIN { print n / s }')
printf 'grant server, %d clients, new TLS 1.3 connection per request, loopback:\n' "$CLIENTS"
printf '  redemptions (200, Secret + Link):   %8.0f /s\n' "$redeem_rate"
printf '  baseline (handshake + 405):          %8.0f /s\n' "$base_rate"
printf '  ratio redemptions / baseline:        %8.2f\n' "$(awk -v r="$redeem_rate" -v b="$base_rate" 'BEGIN { print r / b }')"

# Hostile clients (benches/grants_hostile.py, persistent: each connection the server closes is
# opened again): SLOW ones that send a redemption's head and never its body, and IDLE TCP ones,
# together more than the server's descriptors would hold without its caps. One redemption at a
# time, median over LATENCY_RUNS, without and with them.
latency() {
    for _ in $(seq "${LATENCY_RUNS:-20}"); do
        on_host curl --silent --max-time 60 --tlsv1.3 --cacert ca.crt -H 'name: bench-link' \
            -H 'subject: bench' --data-binary "$code" -o /dev/null \
            -w '%{http_code} %{time_total}\n' "$url" 2>/dev/null || true
    done | awk '$1 == 200 { print $2 }' | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)], NR; else print "none", 0 }'
}
SLOW=${SLOW:-1100}
IDLE=${IDLE:-1100}
port=$(sed -E 's|^https://[^/]*:([0-9]+)/.*|\1|' <<<"$url")
path=/${url##*/}
attack=$(mktemp)
trap 'on_host pkill -TERM -f grants_hostile.py >/dev/null 2>&1 || true; rm -f "$attack"; "$T" down "$HOST" >/dev/null 2>&1 || true' EXIT
read -r calm_s calm_n < <(latency)
on_host python3 "$bench_root/benches/grants_hostile.py" --port "$port" --path "$path" --ca ca.crt \
    --slow "$SLOW" --idle "$IDLE" >"$attack" 2>&1 &
for _ in $(seq 600); do grep -q ready "$attack" && break; sleep 0.5; done
grep -q ready "$attack" || { echo "the hostile clients did not start:" >&2; cat "$attack" >&2; exit 1; }
read -r hostile_s hostile_n < <(latency)
on_host pkill -TERM -f grants_hostile.py || true
wait
read -r opened closed < <(tail -n 1 "$attack")
printf 'with %d slow + %d idle hostile clients (each reopened when closed):\n' "$SLOW" "$IDLE"
printf '  redemption alone, median:            %8s s (%d of %d answered 200)\n' "$calm_s" "$calm_n" "${LATENCY_RUNS:-20}"
printf '  redemption under attack, median:     %8s s (%d of %d answered 200)\n' "$hostile_s" "$hostile_n" "${LATENCY_RUNS:-20}"
printf '  hostile connections opened / closed by the server: %d / %d\n' "$opened" "$closed"
goal redemptions/baseline "$(awk -v r="$redeem_rate" -v b="$base_rate" 'BEGIN { printf "%.2f", r / b }')"
goal 'redemption under attack/alone' \
    "$(awk -v h="$hostile_s" -v c="$calm_s" -v n="$hostile_n" 'BEGIN { if (n == 0) print "none-answered"; else printf "%.1f", h / c }')" '<=' 10
ratios_line
