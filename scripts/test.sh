#!/usr/bin/env bash
# The test command: installs what the tests need, then runs formatting, lint, the unit
# and integration tests (a real MariaDB pair, Cloudflare and Telegram stand-ins, a
# systemctl shim), and checks the systemd unit.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked --bins
cargo test --workspace --locked

# systemd-analyze wants ExecStart= to exist: verify a copy that points at this build.
unit_dir=$(mktemp -d)
trap 'rm -rf "$unit_dir"' EXIT
bin=$(pwd)/target/debug/failover-watchdog
if [ -n "${CARGO_TARGET_DIR:-}" ]; then bin=$CARGO_TARGET_DIR/debug/failover-watchdog; fi
for unit in systemd/*.service systemd/*.timer; do
  [ -e "$unit" ] || continue
  sed "s|/usr/local/bin/failover-watchdog|$bin|g" "$unit" > "$unit_dir/$(basename "$unit")"
done
systemd-analyze verify "$unit_dir"/*
echo "systemd units verified"
