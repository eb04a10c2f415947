#!/usr/bin/env bash
# Installs what the tests and the rehearsal need: MariaDB server and client from
# Debian's packages (when missing), systemd-analyze for checking the units, promtool
# (Debian package prometheus) for the metrics tests, iproute2 and nftables for the
# network fault campaign, and for the package test
# (scripts/package-test.sh) lintian, man-db and cargo-deb.
set -euo pipefail

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The network fault campaign (examples/campaign.rs): namespaces, veths, nftables rules.
PATH="$PATH:/usr/sbin:/sbin" command -v ip >/dev/null 2>&1 || need+=(iproute2)
PATH="$PATH:/usr/sbin:/sbin" command -v nft >/dev/null 2>&1 || need+=(nftables)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  # policy-rc.d keeps the package from starting its own server; the tests start theirs.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Fail, not skip, when the server cannot be found after the install.
PATH="$PATH:/usr/sbin" mariadbd --version
promtool --version 2>&1 | sed -n 1p
PATH="$PATH:/usr/sbin:/sbin" nft --version

# cargo-deb builds the Debian package; it is a crate, not a Debian package.
if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing: cargo-deb"
  cargo install cargo-deb --locked
fi
cargo deb --version
