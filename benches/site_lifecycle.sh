#!/usr/bin/env bash
# Site lifecycle benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the stand-in
# router image):
#   - `vansite status` wall time against `systemctl --user is-active` of the same unit;
#   - `vansite init` until the router answers management, against a plain `podman run` of the same
#     image with the same configuration until its management port accepts connections;
# each as a median over several runs and as a ratio. Ratios, not absolute times, are the figures
# to compare between runs: the machine is shared and noisy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
T=$root/tests/testhost/testhost.sh
host=benchlife
runs=${RUNS:-15}
init_runs=${INIT_RUNS:-5}
image=localhost/skupper-router-standin:test

"$T" setup >/dev/null
(cd "$root" && cargo build --quiet --release -p vansite)
vansite=${CARGO_TARGET_DIR:-$root/target}/release/vansite
tar=$("$root/tests/testhost/build-standin-image.sh")
trap '"$T" down "$host" >/dev/null 2>&1 || true' EXIT
"$T" up "$host" --netns >/dev/null
"$T" load-image "$host" "$tar" "$image" --change 'CMD ["/home/skrouterd/bin/skrouterd"]' --change 'USER 10000' >/dev/null

# Everything is timed inside the host, so that entering it (nsenter) is not counted.
"$T" run "$host" -- bash -s "$vansite" "$image" "$runs" "$init_runs" <<'INNER'
set -euo pipefail
vansite=$1 image=$2 runs=$3 init_runs=$4
unit=vansite-default-router.service
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
time_runs() { # N CMD... -> one duration (ns) per line
    local n=$1 i t0; shift
    for ((i = 0; i < n; i++)); do t0=$(now); "$@" >/dev/null 2>&1 || true; echo $(($(now) - t0)); done
}
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f ms", ns / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

"$vansite" init --router-image "$image" >/dev/null
status=$(time_runs "$runs" "$vansite" status | median)
active=$(time_runs "$runs" systemctl --user is-active "$unit" | median)

wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep 0.01; done; }
port=$("$vansite" status --output json | sed -n 's/.*"managementPort": \([0-9]*\).*/\1/p')
site=$HOME/.local/share/vansite/default
plain_start() {
    podman run -d --rm --name plain-router --network host --userns keep-id --user "$(id -u):$(id -g)" \
        -v "$site/runtime/router:/etc/skupper-router/config:z" -v "$site/runtime/certs:/etc/skupper-router/runtime/certs:z" \
        -e QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json -e SSL_PROFILE_BASE_PATH=/etc/skupper-router "$image"
    wait_port "$port"
}
systemctl --user stop "$unit"
plain=$(for ((i = 0; i < init_runs; i++)); do
    t0=$(now); plain_start >/dev/null; echo $(($(now) - t0)); podman rm -f plain-router >/dev/null
done | median)
init=$(for ((i = 0; i < init_runs; i++)); do
    "$vansite" delete >/dev/null
    t0=$(now); "$vansite" init --router-image "$image" >/dev/null; echo $(($(now) - t0))
done | median)
"$vansite" delete >/dev/null

echo "vansite status:                     $(ms "$status") (median of $runs)"
echo "systemctl --user is-active:         $(ms "$active") (median of $runs)"
echo "  ratio status / is-active:         $(ratio "$status" "$active")"
echo "vansite init until router answers:  $(ms "$init") (median of $init_runs, from no site)"
echo "podman run until port accepts:      $(ms "$plain") (median of $init_runs, same image and files)"
echo "  ratio init / podman run:          $(ratio "$init" "$plain")"
INNER
