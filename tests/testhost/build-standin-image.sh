#!/usr/bin/env bash
# Builds the stand-in router image's rootfs as a tar, ready for `testhost.sh load-image`.
#
# The image mirrors the skupper-router image contract (../../shared/reference/skupper-router.md):
# the router at /home/skrouterd/bin, config from $QDROUTERD_CONF, certificates under
# /etc/skupper-router. The binary is static (crt-static), so the rootfs needs nothing else
# and runs whatever the host's glibc. Output: $CARGO_TARGET_DIR/standin-image/standin-image.tar
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
out=$target/standin-image
triple=x86_64-unknown-linux-gnu

# A separate target dir: different RUSTFLAGS would otherwise rebuild the normal debug tree.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$target/static \
    cargo build --quiet --release -p skrouterd-standin --bin skrouterd-standin --target $triple
binary=$target/static/$triple/release/skrouterd-standin

# A private work dir, so that concurrent builds never see each other's half-made rootfs.
mkdir -p "$out"
work=$(mktemp -d "$out/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs/home/skrouterd/bin" "$rootfs/etc/skupper-router/config" \
    "$rootfs/etc/skupper-router/runtime/certs" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs/home/skrouterd/bin/skrouterd"
# Same bytes for the same binary, so load-image can skip an unchanged image.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/standin-image.tar" .
mv "$work/standin-image.tar" "$out/standin-image.tar"
echo "$out/standin-image.tar"
