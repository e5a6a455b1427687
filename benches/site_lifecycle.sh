#!/usr/bin/env bash
# Site lifecycle benchmark, as root on a machine prepared by tests/run.sh (or testhost.sh setup).
# Prints, measured in one run on one test host (own systemd --user, rootless podman, the router
# image chosen as benches/lib.sh says, the stand-in by default):
#   - `vansite status` wall time against `systemctl --user is-active` of the same unit;
#   - vansite's peak resident memory for `status`;
#   - `vansite init` until the router answers management, against a plain `podman run` of the same
#     image with the same configuration until its management port accepts connections;
# each as a median over several runs and as a ratio. Ratios, not absolute times, are the figures
# to compare between runs: the machine is shared and noisy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
host=benchlife
runs=${RUNS:-15}
init_runs=${INIT_RUNS:-7}

bench_prepare
trap '"$T" down "$host" >/dev/null 2>&1 || true' EXIT
bench_up "$host"
bench_load_image "$host"
bench_describe_image "$host"

# Everything is timed inside the host, so that entering it (nsenter) is not counted.
bench_in_host "$host" "$vansite" "$router_image" "$runs" "$init_runs" <<'INNER'
set -euo pipefail
vansite=$1 image=$2 runs=$3 init_runs=$4
unit=vansite-default-router.service

"$vansite" init --router-image "$image" >/dev/null
status=$(time_runs "$runs" "$vansite" status | median)
active=$(time_runs "$runs" systemctl --user is-active "$unit" | median)
status_kb=$(for ((i = 0; i < 5; i++)); do /usr/bin/time -f %M "$vansite" status 2>&1 >/dev/null | tail -1; done | median)

wait_port() { until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep 0.01; done; }
port=$("$vansite" status --output json | sed -n 's/.*"managementPort": \([0-9]*\).*/\1/p')
# The site's router files, kept for the plain runs (a delete between inits removes the site's).
files=$HOME/plain-router
rm -rf "$files" && mkdir -p "$files"
cp -a "$HOME/.local/share/vansite/default/runtime/router" "$HOME/.local/share/vansite/default/runtime/certs" "$files/"
# The environment vansite's router unit gives the image (src/render/router_unit.rs).
plain_start() {
    podman run -d --rm --name plain-router --network host --userns keep-id --user "$(id -u):$(id -g)" \
        -v "$files/router:/etc/skupper-router/config:z" -v "$files/certs:/etc/skupper-router/runtime/certs:z" \
        -e APPLICATION_NAME=skupper-router -e QDROUTERD_CONF=/etc/skupper-router/config/skrouterd.json \
        -e QDROUTERD_CONF_TYPE=json -e SSL_PROFILE_BASE_PATH=/etc/skupper-router "$image"
    wait_port "$port"
}
"$vansite" delete >/dev/null
# Taken in turns, so that the machine's load (shared, noisy) weighs on both alike.
plain_runs=() init_times=()
for ((i = 0; i < init_runs; i++)); do
    t0=$(now); plain_start >/dev/null; plain_runs+=($(($(now) - t0))); podman rm -f plain-router >/dev/null
    t0=$(now); "$vansite" init --router-image "$image" >/dev/null; init_times+=($(($(now) - t0)))
    "$vansite" delete >/dev/null
done
plain=$(printf '%s\n' "${plain_runs[@]}" | median)
init=$(printf '%s\n' "${init_times[@]}" | median)

echo "vansite status:                     $(ms "$status") (median of $runs)"
echo "systemctl --user is-active:         $(ms "$active") (median of $runs)"
echo "  ratio status / is-active:         $(ratio "$status" "$active")"
echo "vansite status peak RSS:            $(awk -v kb="$status_kb" 'BEGIN {printf "%.1f MB", kb / 1024}') (median of 5)"
echo "vansite init until router answers:  $(ms "$init") (median of $init_runs, from no site)"
echo "podman run until port accepts:      $(ms "$plain") (median of $init_runs, same image and files)"
echo "  ratio init / podman run:          $(ratio "$init" "$plain")"
goal status/is-active "$(ratio "$status" "$active")" '<=' 3
goal init/podman-run "$(ratio "$init" "$plain")" '<=' 1.3
ratios_line
INNER
