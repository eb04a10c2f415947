//! Integration tests: the real binary against the rig (a real MariaDB GTID pair, local
//! Cloudflare and Telegram stand-ins, a systemctl shim). One test binary, so the rig's
//! one-time setup (the MariaDB template data directory) is shared.

mod cli;
mod failover;
mod promote_now;
mod smoke;
mod support;
