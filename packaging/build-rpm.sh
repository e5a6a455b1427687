#!/usr/bin/env bash
# Builds vansite's binary RPM from this git tree with packaging/vansite.spec:
#   1. Source0: `git archive` of HEAD, plus uncommitted changes to tracked files (git stash
#      create; untracked files are not included);
#   2. Source1: every crate Cargo.lock names, vendored (`cargo vendor`), offline from the local
#      registry cache when that has them all, else fetched from crates.io;
#   3. rpmbuild -bb in a private topdir: the build itself needs no network (cargo --frozen).
# Prints the path of each RPM built.
#
#   packaging/build-rpm.sh [OUTDIR]        default OUTDIR: target/rpm
#
# Needs git, cargo and rpmbuild (Debian/Ubuntu: the `rpm` package). Where rpm is not the system's
# package manager (Debian), the build dependencies are not checked (--nodeps) and no debuginfo
# package is made.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=${1:-$root/target/rpm}

die() { echo "build-rpm: $*" >&2; exit 1; }
command -v rpmbuild >/dev/null || die "rpmbuild not found: install rpm-build (Fedora/RHEL) or rpm (Debian/Ubuntu)"

spec=packaging/vansite.spec
version=$(sed -n 's/^Version: *//p' "$spec")
cargo_version=$(awk -F'"' '/^\[package\]/ {p = 1} p && /^version *=/ {print $2; exit}' Cargo.toml)
[[ $version == "$cargo_version" ]] ||
    die "$spec has Version $version but Cargo.toml has $cargo_version: make them equal"

top=$out/rpmbuild
rm -rf "$top"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS} "$out"
name=vansite-$version

# 1. The source tree.
tree=$(git stash create)
git archive --format=tar.gz --prefix="$name/" -o "$top/SOURCES/$name.tar.gz" "${tree:-HEAD}"

# 2. The vendored crates, made from the archived tree's own Cargo.lock.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -C "$work" -xzf "$top/SOURCES/$name.tar.gz"
if ! (cd "$work/$name" && cargo vendor --locked --offline vendor >/dev/null 2>"$work/vendor.log"); then
    echo "build-rpm: the local registry cache lacks some crates; fetching them from crates.io" >&2
    (cd "$work/$name" && cargo vendor --locked vendor >/dev/null)
fi
tar -C "$work/$name" -czf "$top/SOURCES/$name-vendor.tar.gz" vendor

# 3. The package.
defines=(--define "_topdir $top")
nodeps=()
if [[ -e /etc/debian_version ]]; then
    nodeps=(--nodeps)
    defines+=(--define "debug_package %{nil}")
fi
cp "$spec" "$top/SPECS/"
# The build runs release cargo from scratch; its log is kept for failures.
if ! env -u CARGO_TARGET_DIR -u RUSTFLAGS rpmbuild -bb "${nodeps[@]}" "${defines[@]}" \
    "$top/SPECS/vansite.spec" >"$out/rpmbuild.log" 2>&1; then
    tail -n 40 "$out/rpmbuild.log" >&2
    die "rpmbuild failed; the whole log: $out/rpmbuild.log"
fi
find "$top/RPMS" -name '*.rpm' -exec mv -t "$out" {} +
find "$out" -maxdepth 1 -name "$name-*.rpm"
