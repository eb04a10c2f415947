//! The test rig for failover-watchdog: real parts where we can run them, faithful
//! stand-ins where we cannot.
//!
//! - [`mariadb`]: a real MariaDB primary/replica pair with GTID replication, in a
//!   temporary directory on free loopback ports.
//! - [`cloudflare`]: a local HTTP server that follows Cloudflare's v4 DNS API.
//! - [`telegram`]: a local HTTP server that follows the Telegram Bot API.
//! - [`webhook`]: a local HTTP server that takes alert webhooks (JSON, Slack,
//!   Alertmanager, PagerDuty) and records them.
//! - [`systemctl`]: a `systemctl` shim to put first on `PATH`.
//! - [`health`]: an HTTP health endpoint whose answers a test scripts.
//! - [`hostile`]: answers no honest server gives (an endless body, a redirect to another
//!   port) for the stand-ins' hostile modes, and the [`hostile::Trap`] a redirect points
//!   at, which counts whatever reaches it.
//! - [`panel`]: a local HTTP server standing in for the standby's own endpoints.
//! - [`link`]: a TCP relay a test can cut, for a partition between two parts.
//! - [`netns`]: a network of namespaces (primary, standby, two witnesses) whose links
//!   drop packets on demand (`nftables`), a relay that adds delay, jitter and loss, and
//!   a stage that runs the pair, the daemon and the witnesses on it.
//! - [`stage`]: all of the above plus a config pointing the real binary at them.
//! - [`writer`]: an application's writes to whichever server of the pair takes them,
//!   each acknowledged one recorded (server, time), for zero-loss and refused-time checks.
//!
//! Used by the integration tests, the local rehearsal and the benchmark, so the rig is
//! written once.

pub mod cloudflare;
pub mod health;
pub mod hostile;
mod http;
pub mod link;
pub mod mariadb;
pub mod netns;
pub mod panel;
pub mod stage;
pub mod systemctl;
pub mod telegram;
pub mod webhook;
pub mod writer;
