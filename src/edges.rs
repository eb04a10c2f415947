//! Everything a command acts through, built once from the validated config: the state
//! directory, the scrubber (every configured secret), the alerter with its delivery
//! workers, the MariaDB servers (this host's, the peer's, the old primary's), Cloudflare,
//! and the stop signal. The daemon and the commands that change things take one
//! [`Edges`]; nothing builds a second database handle or scrubber on the side.

use std::time::Duration;

use crate::alert::{Alerter, Undelivered};
use crate::cloudflare::Cloudflare;
use crate::config::Config;
use crate::mariadb::Server;
use crate::secret::Scrubber;
use crate::shutdown::Shutdown;
use crate::store::StateDir;

/// The longest a one-shot command waits for its alerts, all of them together, so a dead
/// Telegram cannot hold an operator's terminal.
pub const COMMAND_ALERT_WAIT: Duration = Duration::from_secs(10);

/// The edges of one process.
#[derive(Clone)]
pub struct Edges {
    pub config: Config,
    pub store: StateDir,
    /// Every secret of the config: whatever leaves us (a journal's step detail, an
    /// alert, a log line of outside text) goes through it.
    pub scrubber: Scrubber,
    pub alerter: Alerter,
    /// This host's own MariaDB, through the `[replica]` account.
    pub own: Server,
    /// The peer's MariaDB (`[peer]`), when configured.
    pub peer: Option<Server>,
    /// The old primary's MariaDB as a promotion fences it (the first `mysql` check's
    /// account), when there is one.
    pub old_primary: Option<Server>,
    pub cloudflare: Cloudflare,
    /// Asked for on SIGTERM or SIGINT.
    pub shutdown: Shutdown,
}

impl Edges {
    /// The daemon's edges: alerts are delivered in the background for as long as it runs.
    pub fn daemon(config: &Config, shutdown: Shutdown) -> anyhow::Result<Edges> {
        Edges::build(config, shutdown, None)
    }

    /// A one-shot command's edges: every wait for an alert together stays within
    /// [`COMMAND_ALERT_WAIT`].
    pub fn command(config: &Config, shutdown: Shutdown) -> anyhow::Result<Edges> {
        Edges::build(config, shutdown, Some(COMMAND_ALERT_WAIT))
    }

    fn build(
        config: &Config,
        shutdown: Shutdown,
        wait_budget: Option<Duration>,
    ) -> anyhow::Result<Edges> {
        let scrubber = Scrubber::new(config.secrets());
        let mut alerter = Alerter::start(&config.node.name, config, scrubber.clone())?;
        if let Some(budget) = wait_budget {
            alerter = alerter.with_wait_budget(budget);
        }
        let cloudflare = Cloudflare::new(
            config.dns.api_base.clone(),
            config.dns.api_token.clone(),
            scrubber.clone(),
        )?;
        Ok(Edges {
            store: StateDir::new(config.state_dir()),
            own: Server::own(config),
            peer: Server::peer(config),
            old_primary: Server::old_primary(config),
            config: config.clone(),
            scrubber,
            alerter,
            cloudflare,
            shutdown,
        })
    }

    /// Waits (within the alerter's budget) for queued alerts; a command says on stderr
    /// what was not delivered.
    pub async fn flush_alerts(&self) -> Undelivered {
        let undelivered = self.alerter.flush(COMMAND_ALERT_WAIT).await;
        if !undelivered.none() {
            eprintln!("warning: {undelivered}");
        }
        undelivered
    }
}
