#!/usr/bin/env bash
# testhost.sh — isolated "hosts" for vansite's tests: each host is a Linux user vst-NAME with its
# own `systemd --user` manager, its own D-Bus session bus and rootless podman (4.3.1 on Debian 12,
# plus the quadlet 5.4.2 generator from Debian 13), optionally in its own network namespace.
#
# The recipe and the reasons behind most steps are in /work/shared/notes/test-host.md (kept in
# the repo's shared notes); README.md next to this file summarises commands and pitfalls.
#
#   testhost.sh setup                      install packages/quadlet/config (root, no-op if done)
#   testhost.sh up NAME [--netns]          bring up host NAME ([a-z0-9]+)
#   testhost.sh run NAME [--] CMD ARGS...  run CMD as vst-NAME inside the host's namespaces
#   testhost.sh load-image NAME TAR REF [--change INSTR]...   podman import TAR as REF (skipped if unchanged)
#   testhost.sh addr NAME                  the host's address (127.0.0.1 without --netns)
#   testhost.sh cut NAME | heal NAME       take the host's link down / up again
#   testhost.sh hide NAME DIR...           hide DIRs from host NAME only (an empty tmpfs over each)
#   testhost.sh down [NAME...]             tear down (all hosts when no NAME given)
#   testhost.sh status                     list hosts that are up
#
# Everything must run as root. Only users named vst-* (and their subordinate uid ranges) are ever
# touched; on a machine whose PID 1 is systemd (a real desktop), `up` and `setup` refuse unless
# VANSITE_TESTHOST_ALLOW_SYSTEMD_HOST=1 (see the clearly marked branch below).
set -euo pipefail

STATE_ROOT=/run/vansite-testhost
SELF=$(readlink -f "${BASH_SOURCE[0]}")
SANE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "testhost: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# run: first and lean, because tests call it many times per second. Only builtins until exec.
# ---------------------------------------------------------------------------------------------
cmd_run() {
    local name=${1:-}; shift || true
    [[ $name =~ ^[a-z0-9]+$ ]] || die "usage: testhost.sh run NAME [--] CMD ARGS..."
    [[ ${1:-} == -- ]] && shift
    (($#)) || die "run: no command given"
    local d=$STATE_ROOT/$name
    [[ -r $d/env ]] || die "host $name is not up (no $d/env); run: testhost.sh up $name"
    # shellcheck source=/dev/null
    source "$d/env"   # TH_USER TH_UID TH_HOME TH_NETNS TH_ADDR TH_VETH TH_MODE TH_RUNCG (by up)
    local envs=(HOME="$TH_HOME" USER="$TH_USER" LOGNAME="$TH_USER" SHELL=/bin/bash
        PATH="$SANE_PATH" LANG=C.UTF-8
        XDG_RUNTIME_DIR="/run/user/$TH_UID"
        DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$TH_UID/bus")
    local v
    for v in ${TESTHOST_PASS_ENV:-}; do
        [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "TESTHOST_PASS_ENV: bad name '$v'"
        [[ -n ${!v+x} ]] && envs+=("$v=${!v}")
    done
    local as_user=(setpriv --reuid="$TH_USER" --regid="$TH_USER" --init-groups
        env -i -C "$TH_HOME" "${envs[@]}" "$@")
    if [[ $TH_MODE == systemd ]]; then
        exec "${as_user[@]}"     # opt-in systemd-PID1 machine: no namespaces of our own
    fi
    local pid
    read -r pid <"$d/systemd.pid" || die "host $name: no systemd.pid"
    # Into the host's cgroup for commands (see cmd_inner); only this process, before exec.
    if [[ -n $TH_RUNCG ]]; then echo $$ 2>/dev/null >"$TH_RUNCG/cgroup.procs" || true; fi
    [[ -d /proc/$pid ]] || die "host $name: systemd --user (pid $pid) is gone; run: testhost.sh up $name"
    if [[ -n $TH_NETNS ]]; then
        exec nsenter -t "$pid" -m -n "${as_user[@]}"
    else
        exec nsenter -t "$pid" -m "${as_user[@]}"
    fi
}

if [[ ${1:-} == run ]]; then shift; cmd_run "$@"; fi

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
need_root() { [[ $(id -u) == 0 ]] || die "must run as root"; }

check_name() { [[ ${1:-} =~ ^[a-z0-9]+$ ]] || die "bad host name '${1:-}' (want [a-z0-9]+)"; }

systemd_is_pid1() { [[ $(cat /proc/1/comm) == systemd ]]; }

# A real desktop/server with systemd as PID 1: never touch anybody's session unless opted in.
guard_systemd_host() {
    if systemd_is_pid1 && [[ ${VANSITE_TESTHOST_ALLOW_SYSTEMD_HOST:-} != 1 ]]; then
        die "PID 1 is systemd (a real machine with real sessions): refusing '$1'.
  This script is meant for CI containers/VMs without systemd. To use it here anyway (test users
  vst-* only, via loginctl enable-linger + user@UID.service) set VANSITE_TESTHOST_ALLOW_SYSTEMD_HOST=1."
    fi
}

# Serialise changes to shared state (useradd, /etc/sub[ug]id, address map, bridge): `up`s may run
# concurrently and useradd fails outright when /etc/passwd is locked by another useradd.
with_lock() {
    mkdir -p "$STATE_ROOT"
    (
        flock 9
        "$@"
    ) 9>"$STATE_ROOT/.lock"
}

load_state() { # NAME -> TH_* variables, SYSTEMD_PID, DBUS_PID (empty when unknown)
    local d=$STATE_ROOT/$1
    TH_USER="" TH_UID="" TH_GID="" TH_HOME="" TH_NETNS="" TH_ADDR="" TH_VETH="" TH_MODE="" TH_RUNCG=""
    SYSTEMD_PID="" DBUS_PID=""
    [[ -r $d/env ]] || return 1
    # shellcheck source=/dev/null
    source "$d/env"
    [[ -r $d/systemd.pid ]] && read -r SYSTEMD_PID <"$d/systemd.pid"
    [[ -r $d/dbus.pid ]] && read -r DBUS_PID <"$d/dbus.pid"
    return 0
}

alive() { # PID: exists and is not a zombie (killed orphans linger as zombies, see kill_user_procs)
    [[ -n ${1:-} && -r /proc/$1/stat ]] || return 1
    local st
    st=$(<"/proc/$1/stat") 2>/dev/null || return 1
    st=${st##*) }
    [[ ${st:0:1} != Z ]]
}

# ---------------------------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------------------------
# socat and procps for the tests; curl, openssl and python3 for the benchmarks (benches/).
APT_PKGS=(podman runc uidmap slirp4netns fuse-overlayfs dbus dbus-user-session busybox-static
    socat iproute2 procps curl openssl python3)
QUADLET=/usr/libexec/podman/quadlet
QUADLET_GEN=/usr/lib/systemd/user-generators/podman-user-generator
CONTAINERS_CONF=/etc/containers/containers.conf

# Add `line` (key = value) to [section] of a TOML file unless `key` is already set somewhere in
# it (we never override a value somebody chose deliberately; we only fill in what is missing).
toml_ensure() {
    local file=$1 section=$2 key=$3 line=$4
    if grep -Eq "^[[:space:]]*${key}[[:space:]]*=" "$file"; then
        grep -Fxq "$line" "$file" ||
            echo "setup: WARNING: $file sets $key differently from '$line'; leaving it" >&2
        return 0
    fi
    if grep -Eq "^[[:space:]]*\[$section\][[:space:]]*$" "$file"; then
        sed -i -E "0,/^[[:space:]]*\[$section\][[:space:]]*$/s//&\n$line/" "$file"
    else
        printf '\n[%s]\n%s\n' "$section" "$line" >>"$file"
    fi
    echo "setup: $file: added '$line' to [$section]"
}

cmd_setup() {
    need_root
    guard_systemd_host setup
    command -v apt-get >/dev/null || die "setup supports Debian (apt) only"
    local updated=0 p missing=()
    apt_update() { ((updated)) || { apt-get update -qq; updated=1; }; }

    # 1. Debian 12 packages. One dpkg-query for all (fast); only missing ones trigger apt.
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${APT_PKGS[@]}" 2>/dev/null || true)
    for p in "${APT_PKGS[@]}"; do
        grep -Eq "^$p ii" <<<"$installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}"
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi

    # 2. quadlet generator from Debian 13's podman (Debian 12's podman 4.3.1 has none; the 5.x
    #    podman binary itself needs glibc 2.38, but the quadlet binary links only libc).
    if [[ ! -x $QUADLET ]]; then
        echo "setup: installing quadlet from Debian 13 (trixie) podman"
        if [[ ! -e /etc/apt/sources.list.d/vansite-trixie.sources ]]; then
            cat >/etc/apt/sources.list.d/vansite-trixie.sources <<'EOF'
# Added by vansite tests/testhost/testhost.sh: only to fetch the quadlet binary from podman/trixie.
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
            # Priority 50 (< 100): never installed or upgraded from unless asked for explicitly.
            cat >/etc/apt/preferences.d/vansite-trixie <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 50
EOF
            updated=0
        fi
        apt_update
        local tmp
        tmp=$(mktemp -d)
        # apt downloads as _apt when it can write the directory (else: "unsandboxed" warning)
        chown _apt "$tmp" 2>/dev/null || true
        (cd "$tmp" && apt-get download -qq podman/trixie && dpkg -x podman_*.deb x)
        install -D -m 755 "$tmp/x/usr/libexec/podman/quadlet" "$QUADLET"
        rm -rf "$tmp"
        echo "setup: $($QUADLET -version)"
    fi
    if [[ $(readlink "$QUADLET_GEN" 2>/dev/null) != "$QUADLET" ]]; then
        echo "setup: linking $QUADLET_GEN -> $QUADLET"
        mkdir -p "$(dirname "$QUADLET_GEN")"
        ln -sfn "$QUADLET" "$QUADLET_GEN"
    fi

    # 3. containers.conf: runc (crun 1.8 rejects hybrid cgroups) and ulimits that need no
    #    CAP_SYS_RESOURCE (podman's defaults raise nofile/nproc to the max and fail here).
    if [[ ! -e $CONTAINERS_CONF ]]; then
        echo "setup: writing $CONTAINERS_CONF"
        mkdir -p /etc/containers
        cat >"$CONTAINERS_CONF" <<'EOF'
# Written by vansite tests/testhost/testhost.sh (see its README for why).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
EOF
    else
        toml_ensure "$CONTAINERS_CONF" containers default_ulimits \
            'default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]'
        toml_ensure "$CONTAINERS_CONF" engine runtime 'runtime = "runc"'
    fi

    # 4. /dev/net/tun is 600 on these machines; slirp4netns (rootless networking) needs 666.
    if [[ -e /dev/net/tun && $(stat -c %a /dev/net/tun) != 666 ]]; then
        echo "setup: chmod 666 /dev/net/tun"
        chmod 666 /dev/net/tun
    fi
}

# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------
NET_PREFIX=198.18.0   # RFC 2544 benchmarking range: never routed anywhere real
BRIDGE=vstbr0
ADDR_MAP=$STATE_ROOT/addresses   # "NAME N" lines: host NAME is $NET_PREFIX.N, veth vstvN

ensure_user() { # NAME  (under lock)
    local user=vst-$1
    if ! getent passwd "$user" >/dev/null; then
        echo "up: creating user $user"
        useradd -m -s /bin/bash -c "vansite test host $1" "$user"
    fi
    # Subordinate ids for rootless podman. useradd adds them only when it feels like it (e.g.
    # not when /etc/subuid is missing); allocate a fresh 65536 range above every existing one.
    local f
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        grep -q "^$user:" "$f" && continue
        local start
        start=$(awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}' /etc/subuid /etc/subgid)
        if [[ $f == /etc/subuid ]]; then
            usermod --add-subuids "$start-$((start + 65535))" "$user"
        else
            usermod --add-subgids "$start-$((start + 65535))" "$user"
        fi
        echo "up: $f: $user:$start:65536"
    done
}

alloc_addr() { # NAME -> prints N  (under lock). Stable per NAME until reboot.
    touch "$ADDR_MAP"
    local n
    n=$(awk -v h="$1" '$1==h {print $2}' "$ADDR_MAP")
    if [[ -z $n ]]; then
        for ((n = 2; n < 255; n++)); do
            awk -v n="$n" '$2==n {f=1} END{exit !f}' "$ADDR_MAP" || break
        done
        ((n < 255)) || die "no free address in $NET_PREFIX.0/24 (see $ADDR_MAP)"
        echo "$1 $n" >>"$ADDR_MAP"
    fi
    echo "$n"
}

setup_netns() { # NAME N  (under lock)
    local ns=vst-$1 n=$2 veth=vstv$2
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$NET_PREFIX.1/24" dev "$BRIDGE"
        ip link set "$BRIDGE" up
    fi
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$veth" 2>/dev/null || true
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$BRIDGE" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$NET_PREFIX.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    # Deliberately no default route: from inside, only 198.18.0.0/24 and loopback are reachable.
}

# Runs as root inside the fresh private mount namespace (and the host's netns, if any); ends by
# exec'ing systemd --user, so this process's pid is the manager's pid. Inputs come via env.
cmd_inner() {
    local d=$STATE_ROOT/$TH_NAME rt=/run/user/$TH_UID
    # Leave every v1 hierarchy for its root: podman's --cgroups=split (quadlet's default)
    # otherwise tries to mkdir below our v1 cgroups, which the user cannot write.
    local f
    for f in /sys/fs/cgroup/*/cgroup.procs; do echo $$ >"$f" 2>/dev/null || true; done
    # Only cgroup2 on /sys/fs/cgroup: systemd and podman see a pure v2 system (quadlet needs v2).
    umount -R /sys/fs/cgroup
    # In a netns, a fresh sysfs shows that netns's devices (/sys/class/net). (In the root netns
    # the kernel would hand back the same sysfs superblock: "already mounted", EBUSY.)
    [[ -n $TH_NETNS ]] && mount -t sysfs sysfs /sys
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    # Delegated cgroup, as user@UID.service would get from systemd (else systemd --user: EACCES).
    local slice=/sys/fs/cgroup/user.slice/user-$TH_UID.slice
    local cg=$slice/user@$TH_UID.service
    mkdir -p "$cg" "$slice/testhost-run"
    chown -R "$TH_UID:$TH_GID" "$cg" "$slice/testhost-run"
    # `run` puts its commands into testhost-run (like a login session's scope). When podman
    # asks the manager for a scope (e.g. its pause process), the manager moves the process out
    # of there, which needs write access to the common ancestor's cgroup.procs. A real host's
    # user manager falls back to asking PID 1 (AttachProcessesToUnit); here there is none, the
    # scope fails ("Result: resources") and the manager is "degraded". So the user owns that.
    chown "$TH_UID:$TH_GID" "$slice/cgroup.procs"
    echo $$ >"$cg/cgroup.procs"
    # systemd --user refuses to run unless /run/systemd/system exists ("not booted with systemd").
    mkdir -p /run/systemd
    mount -t tmpfs -o mode=755 tmpfs /run/systemd
    mkdir /run/systemd/system
    # Where systemd builds a sandboxed unit's mount namespace (ProtectHome=, BindPaths=...).
    # PID 1 makes it (root-owned) the first time it starts such a system service, as every
    # distribution does at boot; a user manager cannot, and its sandboxed units (the
    # forwarders) fail with status 226/NAMESPACE without it.
    mkdir -m 0700 /run/systemd/unit-root
    # Shared propagation inside our namespace (new peer groups, not linked to the root
    # namespace, which stays untouched): rootless podman warns '"/" is not a shared mount'.
    mount --make-rshared /

    local as_user=(setpriv --reuid="$TH_USER" --regid="$TH_USER" --init-groups)
    local envs=(HOME="$TH_HOME" USER="$TH_USER" LOGNAME="$TH_USER" SHELL=/bin/bash
        PATH="$SANE_PATH" LANG=C.UTF-8 XDG_RUNTIME_DIR="$rt"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$rt/bus")
    # The session bus. With dbus-user-session installed (setup installs it) the user manager has
    # dbus.socket on $XDG_RUNTIME_DIR/bus and starts dbus-daemon on first use, as on any real
    # host. A dbus-daemon started by hand beforehand (as in the original recipe) is useless then:
    # systemd unlinks its socket path and binds its own, leaving that daemon orphaned. Start one
    # by hand only when there is no dbus.socket user unit.
    if [[ ! -e /usr/lib/systemd/user/dbus.socket ]]; then
        "${as_user[@]}" env -i -C "$TH_HOME" "${envs[@]}" dbus-daemon --session \
            --address="unix:path=$rt/bus" --nofork --nopidfile >"$d/dbus.log" 2>&1 &
        echo $! >"$d/dbus.pid"
        local i
        for ((i = 0; i < 100; i++)); do [[ -S $rt/bus ]] && break; sleep 0.05; done
    fi
    echo $$ >"$d/systemd.pid"
    # No journald here: log to stderr (→ systemd.log in the state dir).
    exec "${as_user[@]}" env -i -C "$TH_HOME" "${envs[@]}" SYSTEMD_LOG_TARGET=console \
        /lib/systemd/systemd --user
}

# The manager's state as seen over the session bus (what vansite uses), not via systemctl,
# which talks to the manager's private socket and would succeed even without a bus.
bus_state() { # NAME TIMEOUT
    local out
    out=$(timeout "$2" "$SELF" run "$1" busctl --user get-property org.freedesktop.systemd1 \
        /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager SystemState 2>/dev/null) || true
    out=${out#s \"}
    echo "${out%\"}"
}

# Healthy = manager alive and answering on its bus (running, or degraded if some unit failed).
host_healthy() { # NAME
    load_state "$1" || return 1
    [[ $TH_MODE == systemd ]] || alive "$SYSTEMD_PID" || return 1
    local s
    s=$(bus_state "$1" 5)
    [[ $s == running || $s == degraded ]]
}

# A host starts like a fresh machine: nothing from an earlier run may survive in the home
# directory (a quadlet left in ~/.config/containers/systemd with WantedBy=default.target would
# even start by itself). Only podman's storage stays, so that load-image finds its images.
# TESTHOST_KEEP_HOME=1 keeps everything.
reset_home() { # NAME HOME
    [[ ${TESTHOST_KEEP_HOME:-} == 1 ]] && return 0
    [[ $2 == */vst-$1 && -d $2 ]] || { echo "up: home $2 looks odd, not resetting it" >&2; return 0; }
    find "$2" -mindepth 1 -maxdepth 1 ! -name .local -exec rm -rf {} +
    [[ -d $2/.local ]] && find "$2/.local" -mindepth 1 -maxdepth 1 ! -name share -exec rm -rf {} +
    [[ -d $2/.local/share ]] && find "$2/.local/share" -mindepth 1 -maxdepth 1 ! -name containers -exec rm -rf {} +
    # (No chown -R here: podman's storage holds files owned by the user's subordinate uids.)
    setpriv --reuid="vst-$1" --regid="vst-$1" --init-groups cp -rT /etc/skel "$2" 2>/dev/null || true
    return 0
}

# Everything podman keeps in the user's storage except images: containers, pods, volumes,
# secrets, networks. Runs inside the host's environment.
podman_reset() { # NAME
    timeout 60 "$SELF" run "$1" sh -c 'podman rm -af -t 0; podman pod rm -af; podman volume rm -af
        podman secret rm -a; podman network prune -f' >/dev/null 2>&1 || true
}

write_dropins() { # as root, for user $TH_USER
    # Quadlet 5.x units + podman 4.3.1: the --cidfile is never removed, so a unit starts only
    # once ("container id file exists" on every restart). Remove it before each start.
    local dir=$TH_HOME/.config/systemd/user/service.d
    setpriv --reuid="$TH_USER" --regid="$TH_USER" --init-groups mkdir -p "$dir"
    setpriv --reuid="$TH_USER" --regid="$TH_USER" --init-groups tee "$dir/10-cidfile.conf" >/dev/null <<'EOF'
# Installed by vansite tests/testhost/testhost.sh: podman 4.3.1 never deletes quadlet's --cidfile.
[Service]
ExecStartPre=-/bin/rm -f %t/%N.cid
EOF
}

cmd_up() {
    need_root
    local name="" netns=0 a
    for a in "$@"; do
        case $a in
            --netns) netns=1 ;;
            -*) die "up: unknown option $a" ;;
            *) [[ -z $name ]] || die "usage: testhost.sh up NAME [--netns]"; name=$a ;;
        esac
    done
    check_name "$name"
    guard_systemd_host up
    local d=$STATE_ROOT/$name t0=$SECONDS
    if [[ -e $d/env ]]; then
        if host_healthy "$name"; then
            if { [[ -n $TH_NETNS ]] && ((!netns)); } || { [[ -z $TH_NETNS ]] && ((netns)); }; then
                die "host $name is already up $([[ -n $TH_NETNS ]] && echo with || echo without) --netns; run: testhost.sh down $name"
            fi
            echo "up: $name already up (systemd --user pid $SYSTEMD_PID, address $(cmd_addr "$name"))"
            return 0
        fi
        echo "up: $name: stale state, cleaning up first"
        cmd_down "$name"
    fi

    with_lock ensure_user "$name"
    local user=vst-$name uid gid home
    uid=$(id -u "$user") gid=$(id -g "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    ((uid >= 1000)) || die "$user has uid $uid < 1000: not a user this script created"

    if systemd_is_pid1; then
        ((!netns)) || die "--netns is not supported when PID 1 is systemd"
        up_systemd_host "$name" "$user" "$uid" "$home"
        return
    fi

    # Leftovers of an earlier session (processes, runtime dir): processes of a vst-* user are
    # ours by definition. A stale $XDG_RUNTIME_DIR/libpod or /containers makes podman fail
    # with "invalid internal status, try resetting the pause process", so start from empty.
    kill_user_procs "$user" "$uid"
    reset_home "$name" "$home"
    rm -rf "/run/user/$uid"
    mkdir -p "/run/user/$uid"
    chown "$uid:$gid" "/run/user/$uid"
    chmod 700 "/run/user/$uid"
    rm_user_cgroup "$uid"

    rm -rf "$d"
    mkdir -p "$d"
    local n="" addr="" veth="" ns=""
    if ((netns)); then
        n=$(with_lock alloc_addr "$name")
        ns=vst-$name veth=vstv$n addr=$NET_PREFIX.$n
        with_lock setup_netns "$name" "$n"
    fi
    cat >"$d/env" <<EOF
TH_NAME=$name
TH_USER=$user
TH_UID=$uid
TH_GID=$gid
TH_HOME=$home
TH_NETNS=$ns
TH_ADDR=$addr
TH_VETH=$veth
TH_MODE=ns
TH_RUNCG=$(v2_root)/user.slice/user-$uid.slice/testhost-run
EOF
    load_state "$name"
    write_dropins

    local pre=()
    [[ -n $ns ]] && pre=(nsenter --net="/run/netns/$ns")
    # setsid: own session, detached from our terminal. Background children of a non-interactive
    # shell are not process group leaders, so setsid, nsenter and unshare all exec without
    # forking, and $! is the pid that ends up as systemd --user.
    env -i PATH="$SANE_PATH" TH_NAME="$name" TH_USER="$user" TH_UID="$uid" TH_GID="$gid" \
        TH_HOME="$home" TH_NETNS="$ns" setsid "${pre[@]}" unshare -m --propagation private \
        "$SELF" __inner </dev/null >>"$d/systemd.log" 2>&1 &
    local pid=$!
    disown

    # Wait until the manager answers on its bus (running, or degraded if some unit failed).
    local i s=""
    for ((i = 0; i < 300; i++)); do
        alive "$pid" || break
        if [[ -r $d/systemd.pid ]]; then
            read -r SYSTEMD_PID <"$d/systemd.pid"
            [[ $SYSTEMD_PID == "$pid" ]] || die "up $name: unexpected pid $SYSTEMD_PID != $pid"
            s=$(bus_state "$name" 2)
            [[ $s == running || $s == degraded ]] && break
        fi
        sleep 0.1
    done
    if [[ $s != running && $s != degraded ]]; then
        echo "up: $name: systemd --user did not come up (state '${s:-none}'). Logs:" >&2
        tail -n 30 "$d/systemd.log" "$d/dbus.log" >&2 2>/dev/null || true
        die "up $name failed; clean up with: testhost.sh down $name"
    fi
    podman_reset "$name"
    [[ -e $d/dbus.pid ]] || "$SELF" run "$name" systemctl --user show -p MainPID --value \
        dbus.service >"$d/dbus.pid"
    read -r DBUS_PID <"$d/dbus.pid"
    echo "up: $name is $s (user $user uid $uid, systemd --user pid $SYSTEMD_PID, dbus-daemon pid $DBUS_PID, address $(cmd_addr "$name"), $((SECONDS - t0))s)"
}

# ---- NOT EXERCISED BY CI: machines whose PID 1 is systemd, opt-in only --------------------
# Uses the system's own mechanism for the TEST user only: linger + user@UID.service. No private
# namespaces, no --netns; `run` is plain setpriv with the user's runtime dir and bus.
up_systemd_host() { # NAME USER UID HOME
    local name=$1 user=$2 uid=$3 home=$4 d=$STATE_ROOT/$1
    loginctl enable-linger "$user"
    systemctl start "user@$uid.service"
    mkdir -p "$d"
    printf 'TH_NAME=%s\nTH_USER=%s\nTH_UID=%s\nTH_GID=%s\nTH_HOME=%s\nTH_NETNS=\nTH_ADDR=\nTH_VETH=\nTH_MODE=systemd\nTH_RUNCG=\n' \
        "$name" "$user" "$uid" "$(id -g "$user")" "$home" >"$d/env"
    systemctl show -p MainPID --value "user@$uid.service" >"$d/systemd.pid"
    load_state "$name"
    write_dropins
    "$SELF" run "$name" systemctl --user daemon-reload
    "$SELF" run "$name" systemctl --user show -p MainPID --value dbus.service >"$d/dbus.pid" || true
    echo "up: $name via user@$uid.service (systemd PID 1 opt-in mode)"
}
down_systemd_host() { # NAME (state loaded)
    timeout 30 "$SELF" run "$1" podman rm -af -t 0 >/dev/null 2>&1 || true
    systemctl stop "user@$TH_UID.service" || true
    loginctl disable-linger "$TH_USER" || true
    kill_user_procs "$TH_USER" "$TH_UID"
    rm -rf "${STATE_ROOT:?}/$1"
    echo "down: $1"
}
# ---- end of the systemd-PID1 branch -------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------
# "pid state" lines for processes whose real or effective uid is the user's uid or in its
# subordinate uid ranges (container processes of a rootless user run as subuids).
user_pids() { # USER UID
    local ranges
    ranges=$(awk -F: -v u="$1" '$1==u {printf "%s %s ", $2, $2+$3-1}' /etc/subuid)
    ps -e -o pid=,ruid=,euid=,stat= | awk -v uid="$2" -v r="$ranges" -v self=$$ '
        BEGIN { n = split(r, a, " ") }
        function ours(x,   i) {
            if (x == uid) return 1
            for (i = 1; i < n; i += 2) if (x >= a[i] && x <= a[i+1]) return 1
            return 0
        }
        $1 != self && (ours($2) || ours($3)) { print $1, $4 }'
}

# Kill, then wait until the processes are gone from the process table. They are orphans (the
# `up` that started them has exited), so PID 1 has to reap them; on the CI machines PID 1 is not
# an init and reaps only every second or so, and until then `pgrep -u vst-NAME` still lists the
# zombies. Hence the wait of up to 10 s.
kill_user_procs() { # USER UID
    [[ $1 == vst-* ]] || die "refusing to kill processes of $1"
    local i list live
    for ((i = 0; i < 100; i++)); do
        list=$(user_pids "$1" "$2")
        [[ -z $list ]] && return 0
        live=$(awk '$2 !~ /^Z/ {print $1}' <<<"$list")
        # shellcheck disable=SC2086
        [[ -z $live ]] || kill -KILL $live 2>/dev/null || true
        sleep 0.1
    done
    echo "down: WARNING: processes of $1 survive: $(user_pids "$1" "$2" | tr '\n' ' ')" >&2
}

# The delegated cgroup subtree lives in the shared v2 hierarchy (/sys/fs/cgroup/unified here).
v2_root() {
    if [[ $(stat -f -c %T /sys/fs/cgroup) == cgroup2fs ]]; then echo /sys/fs/cgroup
    elif [[ -d /sys/fs/cgroup/unified ]]; then echo /sys/fs/cgroup/unified
    fi
}
rm_user_cgroup() { # UID
    local root cg
    root=$(v2_root) || true
    [[ -n $root ]] || return 0
    cg=$root/user.slice/user-$1.slice
    [[ -d $cg ]] || return 0
    # cgroup.kill kills every process in the subtree at once (kernel >= 5.14).
    [[ -e $cg/cgroup.kill ]] && echo 1 >"$cg/cgroup.kill" 2>/dev/null || true
    local i
    for ((i = 0; i < 20; i++)); do
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
        rmdir "$root/user.slice" 2>/dev/null || true
        [[ -d $cg ]] || return 0
        sleep 0.1
    done
    echo "down: WARNING: could not remove cgroup $cg" >&2
}

down_one() { # NAME
    local name=$1 d=$STATE_ROOT/$1
    if ! load_state "$name"; then
        # No state: still clean up after a crashed `up` if the user exists.
        getent passwd "vst-$name" >/dev/null || { rm -rf "$d"; return 0; }
        TH_USER=vst-$name TH_UID=$(id -u "vst-$name") TH_MODE=ns
    fi
    if [[ $TH_MODE == systemd ]]; then down_systemd_host "$name"; return; fi
    if alive "$SYSTEMD_PID"; then
        # Remove containers etc. while podman still has its environment (storage is in $HOME).
        podman_reset "$name"
        kill -KILL "$SYSTEMD_PID" 2>/dev/null || true
    fi
    alive "$DBUS_PID" && kill -KILL "$DBUS_PID" 2>/dev/null || true
    local rt=/run/user/$TH_UID pp
    # A pause process would keep the user namespace (and its stale cgroup view) alive.
    if [[ -r $rt/libpod/tmp/pause.pid ]]; then
        read -r pp <"$rt/libpod/tmp/pause.pid" || true
        if alive "$pp" && [[ $(stat -c %u "/proc/$pp") == "$TH_UID" ]]; then kill -KILL "$pp" || true; fi
    fi
    rm_user_cgroup "$TH_UID"
    kill_user_procs "$TH_USER" "$TH_UID"
    if [[ -n $TH_NETNS ]]; then
        with_lock teardown_netns "$name"
    fi
    rm -rf "$rt" "$d"
    echo "down: $name"
}

teardown_netns() { # NAME (under lock; state loaded)
    ip netns del "$TH_NETNS" 2>/dev/null || true
    ip link del "$TH_VETH" 2>/dev/null || true
    # Drop the bridge once no port is left on it. (Its ports, not the state files, tell: a
    # concurrent `up --netns` attaches its veth under the lock but writes its state later.)
    local ports=("/sys/class/net/$BRIDGE/brif/"*)
    [[ -e ${ports[0]} ]] || ip link del "$BRIDGE" 2>/dev/null || true
}

cmd_down() {
    need_root
    local names=("$@") e
    if ((!${#names[@]})); then
        for e in "$STATE_ROOT"/*/; do
            [[ -d $e ]] && names+=("$(basename "$e")")
        done
    fi
    local n pids=() rc=0
    for n in "${names[@]}"; do check_name "$n"; done
    # In parallel: most of the time goes into waiting for PID 1 to reap the killed processes.
    for n in "${names[@]}"; do
        down_one "$n" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    return $rc
}

# ---------------------------------------------------------------------------------------------
# small commands
# ---------------------------------------------------------------------------------------------
cmd_addr() {
    check_name "${1:-}"
    load_state "$1" || die "host $1 is not up"
    echo "${TH_ADDR:-127.0.0.1}"
}

cmd_link() { # up|down NAME
    need_root
    check_name "${2:-}"
    load_state "$2" || die "host $2 is not up"
    [[ -n $TH_VETH ]] || die "host $2 has no network namespace (up it with --netns)"
    ip link set "$TH_VETH" "$1"
    [[ $1 == up ]] || return 0
    # Usable when heal returns: wait for carrier, and forget neighbour entries that went FAILED
    # while the link was cut (else connects fail with "No route to host" for a few seconds).
    local i
    for ((i = 0; i < 100; i++)); do
        [[ $(<"/sys/class/net/$TH_VETH/operstate") == up ]] && break
        sleep 0.02
    done
    ip neigh flush dev "$BRIDGE" to "$TH_ADDR" 2>/dev/null || true
    ip -n "$TH_NETNS" neigh flush dev eth0 2>/dev/null || true
    local e ns
    for e in "$STATE_ROOT"/*/env; do   # the other hosts' entries for this address
        ns=$(sed -n 's/^TH_NETNS=//p' "$e" 2>/dev/null) || continue
        [[ -n $ns && $ns != "$TH_NETNS" ]] || continue
        ip -n "$ns" neigh flush dev eth0 to "$TH_ADDR" 2>/dev/null || true
    done
}

# An empty read-only tmpfs over each directory, in the host's own mount namespace only (the
# namespace `up` made private, so nothing propagates to the machine or to other hosts): for
# tests of what vansite does on a host that lacks something installed system-wide, e.g. the
# quadlet generator. Gone with the host (`down`).
cmd_hide() { # NAME DIR...
    need_root
    local name=${1:-}
    check_name "$name"
    shift
    (($#)) || die "usage: testhost.sh hide NAME DIR..."
    load_state "$name" || die "host $name is not up"
    [[ $TH_MODE == ns ]] || die "hide needs the host's own mount namespace (not when PID 1 is systemd)"
    alive "$SYSTEMD_PID" || die "host $name: systemd --user (pid $SYSTEMD_PID) is gone"
    local dir
    for dir in "$@"; do
        [[ $dir == /* ]] || die "hide: '$dir' is not an absolute path"
        nsenter -t "$SYSTEMD_PID" -m -- test -d "$dir" || die "hide: no directory $dir on host $name"
        nsenter -t "$SYSTEMD_PID" -m -- mount -t tmpfs -o ro,mode=755,size=16k vansite-hidden "$dir"
    done
}

cmd_status() {
    local e name
    for e in "$STATE_ROOT"/*/env; do
        [[ -e $e ]] || continue
        name=$(basename "$(dirname "$e")")
        load_state "$name"
        local st=dead
        alive "$SYSTEMD_PID" && st=alive
        printf '%-8s user=%-10s uid=%-6s systemd=%s(%s) dbus=%s addr=%s%s\n' "$name" "$TH_USER" \
            "$TH_UID" "$SYSTEMD_PID" "$st" "${DBUS_PID:--}" "${TH_ADDR:-127.0.0.1}" \
            "${TH_NETNS:+ netns=$TH_NETNS veth=$TH_VETH}"
    done
}

cmd_load_image() { # NAME TAR REF [--change INSTRUCTION]...
    (($# >= 3)) || die "usage: testhost.sh load-image NAME TARFILE REF [--change INSTRUCTION]..."
    local name=$1 tar=$2 ref=$3 sum have
    shift 3
    local changes=("$@")
    check_name "$name"
    [[ -r $tar ]] || die "load-image: cannot read $tar"
    # The checksum covers the tar and the image settings (--change: CMD, ENV, USER ...).
    sum=$( { sha256sum <"$tar"; printf '%s\n' "${changes[@]}"; } | sha256sum | cut -d' ' -f1)
    # It is kept as a label on the image: same REF + same label = nothing to do.
    have=$("$SELF" run "$name" podman image inspect --format \
        '{{index .Config.Labels "vansite.testhost.sha256"}}' "$ref" 2>/dev/null || true)
    if [[ $have == "$sum" ]]; then
        echo "load-image: $ref up to date"
        return 0
    fi
    # Stream the tar through stdin: the test user need not be able to read the file.
    "$SELF" run "$name" podman import --quiet --change "LABEL vansite.testhost.sha256=$sum" \
        "${changes[@]}" - "$ref" <"$tar" >/dev/null
    echo "load-image: imported $ref (sha256 $sum)"
}

usage() { sed -n '2,/^set -euo/p' "$SELF" | sed -n '/^#   testhost/p' | sed 's/^# *//'; }

case ${1:-} in
    setup) shift; cmd_setup "$@" ;;
    up) shift; cmd_up "$@" ;;
    down) shift; cmd_down "$@" ;;
    load-image) shift; cmd_load_image "$@" ;;
    addr) shift; cmd_addr "$@" ;;
    cut) shift; cmd_link down "$@" ;;
    heal) shift; cmd_link up "$@" ;;
    hide) shift; cmd_hide "$@" ;;
    status) shift; cmd_status ;;
    __inner) shift; cmd_inner ;;   # internal: the process that becomes systemd --user
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
