//! Integration tests: the real binary against the rig (a real MariaDB GTID pair, local
//! Cloudflare and Telegram stand-ins, a systemctl shim). One test binary, so the rig's
//! one-time setup (the MariaDB template data directory) is shared.

mod alerts;
mod bounded;
mod channel;
mod cli;
mod cycle;
mod decision;
mod double_failure;
mod failback;
mod failover;
mod failure_paths;
mod fencing;
mod flood;
mod hostile;
mod metrics;
mod one_promoter;
mod pair;
mod promote_now;
mod rejoin;
mod resume;
mod shutdown;
mod smoke;
mod supervision;
mod support;
mod switchover;
mod tls;
mod witness;
