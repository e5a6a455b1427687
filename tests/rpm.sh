#!/usr/bin/env bash
# The RPM: builds it once (packaging/build-rpm.sh: source tarball from git, vendored crates,
# offline rpmbuild), then checks the package's metadata (`rpm -qip`, its requirements) and its
# file list (`rpm -qlp`): the program, a man page for every page in man/ (so for every command),
# the three completions, the licence, and nothing anywhere else (no file in a home directory).
# Run by tests/run.sh; prints "rpm: N passed, M failed". VANSITE_RPM=FILE checks a package built
# before instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

rpm_file=${VANSITE_RPM:-}
if [[ -z $rpm_file ]]; then
    out=${CARGO_TARGET_DIR:-$PWD/target}/rpm-test
    rpm_file=$(packaging/build-rpm.sh "$out" | grep -v -- '-debug' | head -n 1)
fi
[[ -n $rpm_file && -e $rpm_file ]] || { echo "rpm: no package ($rpm_file)" >&2; exit 1; }

passed=0 failed=0
check() { # DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "rpm: FAILED: $what" >&2
        return 1
    fi
}

info=$(rpm -qip "$rpm_file")
version=$(awk -F'"' '/^\[package\]/ {p = 1} p && /^version *=/ {print $2; exit}' Cargo.toml)
field() { grep -E "^$1 *: " <<<"$info" | head -n 1 | sed -E 's/^[^:]*: *//'; }
# (`check` returns the check's status; `|| true` where the script goes on regardless.)
check "Name is vansite" test "$(field Name)" = vansite || true
check "Version is Cargo.toml's $version" test "$(field Version)" = "$version" || true
check "License is Apache-2.0" test "$(field License)" = Apache-2.0 || true
check "Summary is set" test -n "$(field Summary)" || true
check "requires podman >= 4.4" grep -qx 'podman >= 4.4' <(rpm -qp --requires "$rpm_file") || true

expected=$(
    {
        echo /usr/bin/vansite
        for page in man/*.1; do echo "/usr/share/man/man1/$(basename "$page")"; done
        echo /usr/share/bash-completion/completions/vansite
        echo /usr/share/zsh/site-functions/_vansite
        echo /usr/share/fish/vendor_completions.d/vansite.fish
        echo /usr/share/licenses/vansite
        echo /usr/share/licenses/vansite/LICENSE
        echo /usr/share/doc/vansite
        echo /usr/share/doc/vansite/README.md
    } | sort
)
# What differs between rpm's set-ups is left out of the comparison: compressed man pages
# (brp-compress), doc and licence directories named NAME-VERSION (older %_docdir_fmt), and the
# /usr/lib/.build-id links to the program.
listed=$(rpm -qlp "$rpm_file" | grep -v '^/usr/lib/\.build-id' |
    sed -E -e 's/\.(gz|bz2|xz|zst)$//' -e "s#^/usr/share/(doc|licenses)/vansite-$version#/usr/share/\1/vansite#" |
    sort)
if ! check "rpm -qlp lists exactly the expected files" test "$listed" = "$expected"; then
    diff <(echo "$expected") <(echo "$listed") >&2 || true
fi
check "the licence is marked %license" grep -Eqx "/usr/share/licenses/vansite(-$version)?/LICENSE" \
    <(rpm -qp --licensefiles "$rpm_file") || true
check "no file in a home directory" test -z "$(rpm -qlp "$rpm_file" | grep -E '^/(home|root)(/|$)')" || true

# The packaged program runs, and its completion for bash names the commands.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rpm2archive - <"$rpm_file" | tar -xzf - -C "$work"
check "the packaged vansite prints its version" grep -q "vansite $version" <("$work/usr/bin/vansite" --version) || true
check "the bash completion knows doctor" grep -q doctor "$work/usr/share/bash-completion/completions/vansite" || true

echo "rpm: $passed passed, $failed failed"
((failed == 0))
