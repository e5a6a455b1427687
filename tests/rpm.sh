#!/usr/bin/env bash
# The RPM: builds it once (packaging/build-rpm.sh: source tarball from git, vendored crates,
# offline rpmbuild), then checks the package's metadata (`rpm -qip`, its requirements) and its
# file list (`rpm -qlp`): the program, a man page for every page in man/ (so for every command),
# the three completions, the licence, and nothing anywhere else (no file in a home directory).
# Run by tests/run.sh; prints "rpm: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."

out=${CARGO_TARGET_DIR:-$PWD/target}/rpm-test
rpm_file=$(packaging/build-rpm.sh "$out" | grep -v -- '-debug' | head -n 1)
[[ -n $rpm_file && -e $rpm_file ]] || { echo "rpm: no package built in $out" >&2; exit 1; }

passed=0 failed=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "rpm: FAILED: $what" >&2
    fi
}

info=$(rpm -qip "$rpm_file")
version=$(awk -F'"' '/^\[package\]/ {p = 1} p && /^version *=/ {print $2; exit}' Cargo.toml)
field() { grep -E "^$1 *: " <<<"$info" | head -n 1 | sed -E 's/^[^:]*: *//'; }
check "Name is vansite" test "$(field Name)" = vansite
check "Version is Cargo.toml's $version" test "$(field Version)" = "$version"
check "License is Apache-2.0" test "$(field License)" = Apache-2.0
check "Summary is set" test -n "$(field Summary)"
check "requires podman >= 4.4" grep -qx 'podman >= 4.4' <(rpm -qp --requires "$rpm_file")

expected=$(
    {
        echo /usr/bin/vansite
        for page in man/*.1; do echo "/usr/share/man/man1/$(basename "$page")"; done
        echo /usr/share/bash-completion/completions/vansite
        echo /usr/share/zsh/site-functions/_vansite
        echo /usr/share/fish/vendor_completions.d/vansite.fish
        echo /usr/share/licenses/vansite/LICENSE
        echo /usr/share/doc/vansite/README.md
    } | sort
)
# Man pages may be compressed by the build (brp-compress): compare without the suffix.
listed=$(rpm -qlp "$rpm_file" | sed -E 's/\.(gz|bz2|xz|zst)$//' | sort)
if ! check "rpm -qlp lists exactly the expected files" test "$listed" = "$expected"; then
    diff <(echo "$expected") <(echo "$listed") >&2 || true
fi
check "the licence is marked %license" grep -qx /usr/share/licenses/vansite/LICENSE <(rpm -qp --licensefiles "$rpm_file")

# The packaged program runs, and its completion for bash names the commands.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rpm2archive <"$rpm_file" | tar -xzf - -C "$work"
check "the packaged vansite prints its version" grep -q "vansite $version" <("$work/usr/bin/vansite" --version)
check "the bash completion knows doctor" grep -q doctor "$work/usr/share/bash-completion/completions/vansite"

echo "rpm: $passed passed, $failed failed"
((failed == 0))
