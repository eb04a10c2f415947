#!/usr/bin/env bash
# The test command: installs what the tests need, then runs formatting, lint, the unit
# and integration tests (a real MariaDB pair, Cloudflare and Telegram stand-ins, a
# systemctl shim), the network fault campaign's CI seeds, checks the systemd units, and
# builds, lints, installs and purges the Debian package (scripts/package-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# The layout's promises, checked by the build's own facts. No import circles between
# the files of either crate (scripts/import-cycles.py says how a file imports another).
python3 scripts/import-cycles.py src core/src
# The core crate's dependencies are data crates only: no async runtime, no database
# driver, no HTTP client, no system calls beyond std's. A new one must be added here,
# knowingly.
core_deps=$(cargo tree --locked -p failover-watchdog-core -e normal --prefix none --format '{p}' \
  | awk '{print $1}' | sort -u | tr '\n' ' ')
allowed="failover-watchdog-core humantime jiff jiff-core proc-macro2 quote serde serde_core serde_derive syn thiserror thiserror-impl unicode-ident "
if [ "$core_deps" != "$allowed" ]; then
  echo "FAIL: the core crate's dependencies changed: $core_deps" >&2
  echo "      allowed (data crates only): $allowed" >&2
  exit 1
fi
echo "the core crate depends on data crates only"
cargo build --locked --bins

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$(pwd)/target/debug/failover-watchdog
if [ -n "${CARGO_TARGET_DIR:-}" ]; then bin=$CARGO_TARGET_DIR/debug/failover-watchdog; fi

# No test seam in a normal build. The binary just built has no `test-seams` feature
# (only the dev-dependency turns it on, for `cargo test`), so it must run straight past
# the crash point it is told to die at: its first step fails on an unreachable replica
# (exit 1) instead of the process being killed there.
cat > "$work/config.toml" <<'TOML'
[node]
name = "no-test-seam"
state_dir = "state"

[probe]
interval = "60s"
failures_before_promotion = 3
timeout = "1s"

[[probe.checks]]
type = "tcp"
address = "127.0.0.1:9"

[replica]
host = "127.0.0.1"
port = 9
user = "nobody"
password_file = "password"
apply_timeout = "1s"

[dns]
api_token_file = "password"
api_base = "http://127.0.0.1:9"
zone_id = "zone"

[[dns.records]]
name = "app.example.com"
content = "192.0.2.1"
TOML
echo unused > "$work/password"
chmod 600 "$work/password"
code=0
FAILOVER_WATCHDOG_TEST_CRASH_AT=before:stop_replica \
  "$bin" --config "$work/config.toml" --promote-now --yes > "$work/seam.log" 2>&1 || code=$?
if [ "$code" -ne 1 ] || ! grep -q "step stop_replica failed" "$work/seam.log"; then
  echo "FAIL: a build without the test-seams feature obeyed FAILOVER_WATCHDOG_TEST_CRASH_AT (exit $code):" >&2
  cat "$work/seam.log" >&2
  exit 1
fi
echo "a normal build ignores the crash points"

cargo test --workspace --locked 2>&1 | tee "$work/test.log"

# The network fault campaign's fixed seeds: every fault kind once, then every kind that
# must never promote once more at the suspect cadence (the shipped defaults scaled down
# by ten; about 75 s of the run), on namespaces made here (needs root). It fails, never
# skips, where namespaces cannot be made.
cargo run --locked --example campaign -- --ci

# systemd-analyze wants ExecStart= to exist: verify a copy that points at this build.
unit_dir=$work/units
mkdir "$unit_dir"
for unit in systemd/*.service systemd/*.timer; do
  [ -e "$unit" ] || continue
  sed "s|/usr/bin/failover-watchdog|$bin|g" "$unit" > "$unit_dir/$(basename "$unit")"
done
systemd-analyze verify "$unit_dir"/*
echo "systemd units verified"

bash scripts/package-test.sh

# One closing line for the whole run: cargo's last "test result" is the doc tests' (0).
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$work/test.log"
