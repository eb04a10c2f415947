#!/usr/bin/env bash
# The local rehearsal: a MariaDB primary and replica, Cloudflare and Telegram stand-ins,
# the daemon at a 1 s interval; the primary is killed and the promotion timeline printed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --bin failover-watchdog --example rehearsal
target_dir=${CARGO_TARGET_DIR:-target}
exec "$target_dir/debug/examples/rehearsal"
