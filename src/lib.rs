//! failover-watchdog: watches a MariaDB primary from its standby and promotes the standby
//! when the primary dies.
//!
//! The crate is a library with a thin binary (`src/main.rs`). ARCHITECTURE.md has the
//! codemap and the invariants; in short:
//!
//! - pure core, no I/O: [`decide`] (every decision of the daemon, events in, actions
//!   out), [`detect`] (counting failed rounds), [`verdict`] (a round's verdict),
//!   [`journal`] (the promotion's steps and their states), [`state`] and [`status`] (what
//!   `status` derives);
//! - edges, one per outside system: [`probe`] (the primary), [`replica`] (the standby's
//!   MariaDB), [`systemd`], [`cloudflare`], [`alert`] (Telegram), [`store`] (`state_dir`);
//! - [`mysql`]: how every connection to a MariaDB is made; [`http_client`]: how every
//!   HTTP client is made (no redirects, timeouts) and every answer's body read (capped);
//! - [`careful_read`]: how every file is read on an operator's behalf (config, secrets,
//!   state files): regular files only, size-capped, never blocking;
//! - one retry owner: [`retry`];
//! - drivers: [`promote`] (runs the steps) and [`daemon`] (the probe loop);
//! - [`metrics`]: the opt-in Prometheus endpoint of the daemon and the witness, a sink
//!   of plain values;
//! - [`serve`]: the HTTP serving the witness and the metrics endpoint share (their
//!   limits, TLS, the token check);
//! - [`smoke`]: the standby's readiness checks (`smoke-test`), read-only;
//! - [`witness`]: the witness on a third host (`witness`), and the standby's client of it;
//! - [`cli`] and [`cmd`]: the command line; [`assets`]: the man pages and completions
//!   generated from it.

// No function over 80 lines (clippy.toml sets the limit): a long one is split.
#![warn(clippy::too_many_lines)]

pub mod alert;
pub mod assets;
pub mod careful_read;
pub mod cli;
pub mod cloudflare;
pub mod cmd;
pub mod config;
pub mod crashpoint;
pub mod daemon;
pub mod edges;
pub mod error;
pub mod fence;
pub mod http_client;
pub mod mariadb;
pub mod metrics;
pub mod pair;
pub mod peer;
pub mod probe;
pub mod procedure;
pub mod promote;
pub mod rejoin;
pub mod retry;
pub mod secret;
pub mod serve;
pub mod shell;
pub mod shutdown;
pub mod smoke;
pub mod status;
pub mod store;
pub mod switchover;
pub mod systemd;
pub mod takeover;
pub mod witness;

// The pure core (core/, a crate of its own with no I/O), re-exported under the paths
// the edges and drivers name it by.
pub use failover_watchdog_core::{
    cadence, decide, detect, gtid, journal, readiness, replication, report, role, state, verdict,
};
