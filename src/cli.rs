//! The command line, as the SPEC defines it (clap derive). Parsing only: the commands
//! live in [`crate::cmd`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;

/// `--version`: the package version and the commit it was built from (`build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FAILOVER_WATCHDOG_COMMIT"),
    ")"
);

/// Watches a MariaDB primary from its standby and promotes the standby when the primary
/// dies: stop the replica once applied, make it writable, start the application, point
/// DNS at it, tell the team.
#[derive(Debug, Parser)]
#[command(name = "failover-watchdog", version = VERSION)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "FAILOVER_WATCHDOG_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Log format on stderr (`RUST_LOG` filters, default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Promote this standby now, skipping detection (same steps as the daemon).
    #[arg(long)]
    pub promote_now: bool,

    /// With --promote-now: do not ask for confirmation.
    #[arg(long, requires = "promote_now")]
    pub yes: bool,

    /// With --promote-now: print the plan, run read-only checks, change nothing.
    #[arg(long, requires = "promote_now")]
    pub dry_run: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Run,
    /// Parse and validate the config; print the effective config, secrets redacted.
    CheckConfig {
        /// The config is a witness's (`failover-watchdog witness`), not a standby's.
        #[arg(long)]
        witness: bool,
    },
    /// Show the state, failure count, last probe and promotion journal.
    Status {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prove a takeover would work now: the standby's readiness checks, read-only.
    /// Exit 1 when a check fails.
    SmokeTest {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Do not post the summary to Telegram.
        #[arg(long)]
        no_notify: bool,
    },
    /// Stop automatic promotion (probing and alerts go on; --promote-now still works).
    Pause {
        /// How long, e.g. "2h"; until `resume` when left out.
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<humantime::Duration>,
        /// Why, shown in `status`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Turn automatic promotion back on.
    Resume,
    /// Run as a witness on a third host: answer the standby, with the token, whether
    /// this host can reach the primary. `--config` names the witness's own small config.
    Witness {
        /// Address and port to listen on, e.g. 127.0.0.1:7979 behind a TLS proxy, or a
        /// private-network address.
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
    /// On the standby, in a quiet window: make it the primary with nothing lost. Fences the
    /// primary (read-only, writes drained, clients cut), waits until this host applied its
    /// final position (else undoes the fence: exit 1, nothing changed), promotes this
    /// host, and makes the old primary replicate from it. Refused (exit 3) when a
    /// pre-check fails; a killed switchover resumes when run again.
    Switchover {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Print the plan and run the read-only pre-checks; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// After a failback: clear the finished promotion so the daemon guards the primary
    /// again (the journal is kept beside it). Refused while the daemon runs.
    Reset {
        /// Confirm: the journal is moved aside.
        #[arg(long)]
        yes: bool,
    },
    /// On the old primary once it is repaired: become the peer's caught-up replica. Checks
    /// that the peer is the writable primary and that this host has no transaction the
    /// peer lacks (else refused, exit 3, naming them); then stops the application units,
    /// sets read_only, replicates from the peer with GTID, waits until caught up, archives
    /// this host's promotion and alerts. Journalled: a killed rejoin resumes when run again.
    Rejoin {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Print the plan after the read-only checks; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
