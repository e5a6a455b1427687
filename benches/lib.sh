# Shared by the benchmarks in benches/ (sourced, as root, on a machine prepared by tests/run.sh or
# testhost.sh setup): the router image they run, vansite's release build, timing helpers, and
# ratios recorded with their goals and printed as one final line.
#
# The router image, from the environment:
#   ROUTER_TAR            a rootfs tar to import into each test host (podman import);
#   ROUTER_IMAGE          its reference; without ROUTER_TAR, an image already in the test host's
#                         podman storage (`testhost.sh load-image` keeps images across runs);
#   ROUTER_IMAGE_CHANGES  `|`-separated `podman import --change` lines for ROUTER_TAR, e.g.
#                         'CMD ["/home/skrouterd/bin/launch.sh"]|USER 10000'.
# Neither ROUTER_TAR nor ROUTER_IMAGE: the stand-in router, built from tests/standin-router.
#
# Helpers that scripts run inside a test host need too (now, median, ms, ratio, goal, ...) go
# there with `bench_in_host HOST ARGS... <<'INNER'`: their definitions precede the script.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$bench_root/tests/testhost/testhost.sh
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$bench_root/target}
vansite=$CARGO_TARGET_DIR/release/vansite

standin_image=localhost/skupper-router-standin:test
standin_changes='CMD ["/home/skrouterd/bin/skrouterd"]|USER 10000'
if [[ -n ${ROUTER_TAR:-} ]]; then
    router_tar=$ROUTER_TAR
    router_image=${ROUTER_IMAGE:-localhost/bench-router:test}
    router_changes=${ROUTER_IMAGE_CHANGES:-}
elif [[ -n ${ROUTER_IMAGE:-} ]]; then
    router_tar=
    router_image=$ROUTER_IMAGE
    router_changes=
else
    router_tar= # built by bench_prepare
    router_image=$standin_image
    router_changes=${ROUTER_IMAGE_CHANGES:-$standin_changes}
fi

# The test host machinery, a release build of vansite and, for the stand-in, its image tar.
bench_prepare() {
    "$T" setup >/dev/null
    (cd "$bench_root" && cargo build --quiet --release -p vansite)
    if [[ -z $router_tar && -z ${ROUTER_IMAGE:-} ]]; then
        router_tar=$("$bench_root/tests/testhost/build-standin-image.sh")
    fi
    [[ -z $router_tar || -r $router_tar ]] || { echo "ROUTER_TAR: cannot read $router_tar" >&2; exit 2; }
}

# Fresh test hosts with their own network namespaces: one left up by an earlier run keeps its
# home (and its site), and `up` would take it as it is.
bench_up() { # HOST...
    local host
    "$T" down "$@" >/dev/null 2>&1 || true
    for host in "$@"; do "$T" up "$host" --netns >/dev/null; done
}

# Makes the router image available on test host HOST (which must be up).
bench_load_image() { # HOST
    if [[ -n $router_tar ]]; then
        local changes=() lines line
        IFS='|' read -r -a lines <<<"$router_changes"
        for line in "${lines[@]}"; do [[ -n $line ]] && changes+=(--change "$line"); done
        "$T" load-image "$1" "$router_tar" "$router_image" "${changes[@]}" >/dev/null
    elif ! "$T" run "$1" -- podman image exists "$router_image"; then
        echo "ROUTER_IMAGE $router_image is not in test host $1's podman storage; give ROUTER_TAR to import it" >&2
        exit 2
    fi
}

# One line saying which router image the benchmark runs, for HOST's copy of it.
bench_describe_image() { # HOST
    local id
    id=$("$T" run "$1" -- podman image inspect --format '{{.Id}}' "$router_image" | cut -c1-12)
    if [[ -n $router_tar ]]; then
        echo "router image: $router_image (image $id), from $router_tar (sha256 $(sha256sum <"$router_tar" | cut -d' ' -f1))${router_changes:+, changes: $router_changes}"
    else
        echo "router image: $router_image (image $id, already on the host)"
    fi
}

# Runs the script on stdin inside HOST as its user (bash -s ARGS...), after the helpers below.
bench_in_host() { # HOST ARGS...
    local host=$1
    shift
    { declare -f now median time_runs ms ratio goal ratios_line; cat; } | "$T" run "$host" -- bash -s "$@"
}

now() { date +%s%N; }

# The median of the numbers on stdin, one per line (printf: mawk prints a computed number past
# 2^31 in exponent form, e.g. 2.241e+09, which bash arithmetic refuses).
median() { sort -n | awk '{a[NR] = $1} END {printf "%.15g\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# Runs CMD... N times; prints each run's duration (ns), one per line.
time_runs() { # N CMD...
    local n=$1 i t0
    shift
    for ((i = 0; i < n; i++)); do t0=$(now); "$@" >/dev/null 2>&1 || true; echo $(($(now) - t0)); done
}

ms() { awk -v ns="$1" 'BEGIN {printf "%.1f ms", ns / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

# Records a figure with its goal for ratios_line: NAME VALUE, then OP TARGET [UNIT] where OP is
# <=, >= or < ; without OP, a figure that has no goal. A VALUE that is not a number (e.g.
# "none-answered") does not meet its goal.
bench_goals=()
goal() { # NAME VALUE [OP TARGET [UNIT]]
    local name=$1 value=$2 op=${3:-} target=${4:-} unit=${5:-} verdict shown
    if [[ -z $op ]]; then
        bench_goals+=("$name $value (no goal)")
        return
    fi
    verdict=$(awk -v v="$value" -v t="$target" -v op="$op" 'BEGIN {
        if (v !~ /^-?[0-9]+(\.[0-9]*)?$/) ok = 0
        else ok = (op == "<=") ? v + 0 <= t + 0 : (op == ">=") ? v + 0 >= t + 0 : (op == "<") ? v + 0 < t + 0 : -1
        print (ok == 1) ? "met" : (ok == 0) ? "NOT met" : "bad operator " op }')
    shown=${op/<=/≤}
    shown=${shown/>=/≥}
    bench_goals+=("$name $value${unit:+ $unit} (goal $shown $target${unit:+ $unit}, $verdict)")
}

# The benchmark's last line: every recorded figure against its goal.
ratios_line() {
    local line="ratios:" sep=" " g
    for g in "${bench_goals[@]}"; do line+="$sep$g" sep=" · "; done
    echo "$line"
}
