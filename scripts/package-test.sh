#!/usr/bin/env bash
# The Debian package, tested end to end: generate the man pages and completions from the
# CLI, build the .deb with `cargo deb`, check it with lintian (errors and warnings fail;
# justified overrides live in debian/failover-watchdog.lintian-overrides), then install,
# remove and purge it on this machine, checking what each step must leave behind. Every
# failed step fails the script. Run as root (it installs a package); called from
# scripts/test.sh.
#
# To keep CI time low the package is cut from the debug binary the caller already built
# (no release build of every dependency): it is copied where `cargo deb --no-build` looks
# for a release binary. A release package is `cargo run --release --example gen-assets
# && cargo deb`.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

fail() {
  echo "FAIL: package test: $*" >&2
  exit 1
}

bash scripts/install-deps.sh

target=${CARGO_TARGET_DIR:-$(pwd)/target}
bin=$target/debug/failover-watchdog
cargo build --locked --bins
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || fail "no version in Cargo.toml"

work=$(mktemp -d)
installed_by_us=no
cleanup() {
  if [ "$installed_by_us" = yes ]; then dpkg -P failover-watchdog >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if dpkg-query -W -f='${Status}' failover-watchdog 2>/dev/null | grep -q installed; then
  fail "failover-watchdog is already installed here; purge it first (dpkg -P failover-watchdog)"
fi
if [ -e /etc/failover-watchdog ]; then
  fail "/etc/failover-watchdog exists without the package; move it aside to run this test"
fi

# 1. The generated assets, where [package.metadata.deb] names them.
cargo run --locked --quiet --example gen-assets -- target/assets >/dev/null

# 2. The package, from the binary already built.
mkdir -p "$work/target/release"
cp "$bin" "$work/target/release/failover-watchdog"
CARGO_TARGET_DIR=$work/target cargo deb --no-build --locked --fast --output "$work/" >/dev/null
deb=$(ls "$work"/failover-watchdog_"$version"-*_*.deb)
echo "package built: $(basename "$deb")"

# 3. lintian: no error, no warning that is not overridden with a reason.
lintian --fail-on error,warning "$deb" || fail "lintian"
echo "lintian passed"

# 4. Install.
dpkg -i "$deb" || fail "dpkg -i"
installed_by_us=yes
[ "$(command -v failover-watchdog)" = /usr/bin/failover-watchdog ] || fail "no /usr/bin/failover-watchdog"
failover-watchdog --version | grep -q "^failover-watchdog $version (commit " ||
  fail "--version: $(failover-watchdog --version)"
man_text=$(MANPAGER=cat MANWIDTH=100 man failover-watchdog 2>&1) || fail "man failover-watchdog: $man_text"
for sub in check-config status smoke-test witness; do
  grep -q -- "$sub" <<<"$man_text" || fail "man failover-watchdog does not mention $sub"
  MANPAGER=cat man "failover-watchdog-$sub" >/dev/null 2>&1 || fail "man failover-watchdog-$sub"
done
bash -c 'source /usr/share/bash-completion/completions/failover-watchdog &&
  complete -p failover-watchdog' >/dev/null || fail "the bash completion does not load"
[ -s /usr/share/zsh/vendor-completions/_failover-watchdog ] || fail "no zsh completion"
[ -s /usr/share/fish/vendor_completions.d/failover-watchdog.fish ] || fail "no fish completion"
for example in config.toml witness.toml pair/nyc1.toml pair/fra1.toml; do
  [ -s "/usr/share/doc/failover-watchdog/examples/$example" ] || fail "no example $example"
done
getent passwd failover-watchdog >/dev/null || fail "no failover-watchdog user"
perms=$(stat -c '%a %U:%G' /etc/failover-watchdog) || fail "no /etc/failover-watchdog"
[ "$perms" = "750 root:failover-watchdog" ] || fail "/etc/failover-watchdog is $perms"
# The units point at the installed binary, and none is enabled until configured.
systemd-analyze verify /usr/lib/systemd/system/failover-watchdog*.service \
  /usr/lib/systemd/system/failover-watchdog*.timer || fail "systemd-analyze verify"
if ls /etc/systemd/system/*.wants/failover-watchdog* >/dev/null 2>&1; then
  fail "a unit was enabled on install: $(ls /etc/systemd/system/*.wants/failover-watchdog*)"
fi
echo "installed: --version, man pages, completions, user, /etc/failover-watchdog, units"

# 5. Remove: the program and units go, the config directory stays.
dpkg -r failover-watchdog || fail "dpkg -r"
[ ! -e /usr/bin/failover-watchdog ] || fail "/usr/bin/failover-watchdog left after dpkg -r"
[ ! -e /usr/lib/systemd/system/failover-watchdog.service ] || fail "unit left after dpkg -r"
[ -d /etc/failover-watchdog ] || fail "dpkg -r removed /etc/failover-watchdog"

# 6. Purge: the empty config directory goes, an operator's file in it is never deleted.
echo secret > /etc/failover-watchdog/operator-file
dpkg -P failover-watchdog || fail "dpkg -P"
installed_by_us=no
[ -f /etc/failover-watchdog/operator-file ] || fail "dpkg -P deleted an operator's file"
rm /etc/failover-watchdog/operator-file
rmdir /etc/failover-watchdog
dpkg -i "$deb" >/dev/null || fail "dpkg -i (reinstall)"
installed_by_us=yes
dpkg -P failover-watchdog >/dev/null || fail "dpkg -P (after reinstall)"
installed_by_us=no
[ ! -e /etc/failover-watchdog ] || fail "/etc/failover-watchdog left after dpkg -P"
if dpkg-query -W failover-watchdog >/dev/null 2>&1; then fail "dpkg still knows the package"; fi
echo "removed and purged cleanly"

echo "package test passed in $((SECONDS - started)) s"
