//! The stage on a [`Network`]: the primary's MariaDB, the standby's MariaDB with the
//! real daemon, and two real witnesses, each in its own namespace; the Cloudflare and
//! Telegram stand-ins and the `systemctl` shim as in [`crate::stage`].
//!
//! Where things are, and why:
//!
//! - The primary's MariaDB listens on `<primary>:3306`, the standby's on
//!   `<standby>:3306`, each started through `ip netns exec`.
//! - Between them runs the **WAN link**, a [`ShapedLink`] inside the standby's
//!   namespace on `127.0.0.1:3307` to `<primary>:3306`. The standby reaches the primary
//!   only through it: the replica replicates from it and the daemon probes the primary
//!   through it (one `mysql` check: a relay always completes a TCP handshake itself, so
//!   a `tcp` check through it would prove nothing). It relays untouched until a run
//!   gives it a [`crate::netns::shaped::Shape`]; since it connects from the standby's
//!   namespace, every cut between the standby and the primary applies to it.
//! - The witnesses reach the primary directly, from their own namespaces.
//! - The stand-ins are served by the test process in the root namespace, each through
//!   a relay on the controller's address: to the hosts they are "the internet", which
//!   an isolated standby loses too. Simplest: no server code had to change.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::Child;
use tokio::time::Instant;

use super::shaped::ShapedLink;
use super::{Host, Network};
use crate::cloudflare::CloudflareStandIn;
use crate::mariadb::{
    self, MariaDb, MariaDbPair, PRIMARY_SERVER_ID, REPLICA_SERVER_ID, StartOptions,
};
use crate::stage::{
    CF_TOKEN, NODE, OLD_PRIMARY_ADDRESS, Records, STANDBY_ADDRESS, TG_TOKEN, UNITS,
    UNRELATED_ADDRESS, WITNESS_TOKEN, ZONE,
};
use crate::systemctl::SystemctlShim;
use crate::telegram::TelegramStandIn;

/// The MariaDB port on every host.
pub const MARIADB_PORT: u16 = 3306;
/// The WAN link's port on the standby's loopback address.
pub const WAN_PORT: u16 = 3307;
/// The witnesses' port on their hosts.
pub const WITNESS_PORT: u16 = 7000;
/// The witnesses of the stage.
pub const WITNESSES: [Host; 2] = [Host::WitnessA, Host::WitnessB];

/// The daemon's setup on the stage.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub interval: Duration,
    /// `probe.suspect_interval`; `None`: left out (its default).
    pub suspect_interval: Option<Duration>,
    pub failures_before_promotion: u32,
    pub probe_timeout: Duration,
    pub witness_timeout: Duration,
    /// How many of [`WITNESSES`] run and are configured (0 to 2).
    pub witnesses: usize,
    /// The witnesses' own `probe.timeout`; `None`: the standby's probe timeout.
    pub witness_probe_timeout: Option<Duration>,
    /// The replica's `MASTER_HEARTBEAT_PERIOD`; `None`: the rig's (1 s).
    pub heartbeat: Option<Duration>,
}

impl Default for Setup {
    /// Interval 1 s (and so the suspect interval), threshold 3, probe timeout 500 ms,
    /// both witnesses at 900 ms, the rig's 1 s heartbeat.
    fn default() -> Self {
        Setup {
            interval: Duration::from_secs(1),
            suspect_interval: None,
            failures_before_promotion: 3,
            probe_timeout: Duration::from_millis(500),
            witness_timeout: Duration::from_millis(900),
            witnesses: WITNESSES.len(),
            witness_probe_timeout: None,
            heartbeat: None,
        }
    }
}

/// Everything a run on the network needs. Fields drop in order: the processes and
/// relays first, the network last.
pub struct NetStage {
    /// The `failover-watchdog` binary under test.
    pub bin: PathBuf,
    pub setup: Setup,
    pub daemon: Option<NetProcess>,
    pub witnesses: Vec<NetProcess>,
    pub db: MariaDbPair,
    /// The standby's only way to the primary.
    pub wan: ShapedLink,
    pub cloudflare: CloudflareStandIn,
    pub telegram: TelegramStandIn,
    pub systemctl: SystemctlShim,
    pub records: Records,
    links: Vec<ShapedLink>,
    pub dir: tempfile::TempDir,
    pub net: Network,
}

/// A process of the binary running in a namespace, its output in a file.
pub struct NetProcess {
    pub host: Host,
    child: Child,
    log: PathBuf,
}

impl NetProcess {
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it has exited (and its code), without waiting.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// SIGTERM, then waits up to 20 s (then SIGKILL); returns the exit code.
    pub async fn stop(&mut self) -> Option<i32> {
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                None
            }
        }
    }
}

fn host_port(host: impl std::fmt::Display, port: u16) -> String {
    format!("{host}:{port}")
}

impl NetStage {
    /// Makes the network, starts both databases (replicating through the WAN link), the
    /// stand-ins and the witnesses, and writes the daemon's config. The daemon is
    /// started by [`NetStage::spawn_daemon`]. `seed` seeds the WAN link's draws.
    pub async fn start(bin: &Path, setup: Setup, seed: u64) -> anyhow::Result<NetStage> {
        let net = tokio::task::spawn_blocking(Network::create)
            .await
            .context("making the network")??;
        let (db, wan) = Self::start_pair(&net, setup, seed).await?;

        let cloudflare = CloudflareStandIn::start(CF_TOKEN).await?;
        let telegram = TelegramStandIn::start(TG_TOKEN).await?;
        let links = Self::relays(
            &net,
            [
                ("cloudflare", cloudflare.api_base()),
                ("telegram", telegram.api_url()),
            ],
            seed,
        )?;
        let systemctl = SystemctlShim::new(&UNITS)?;
        let records = Records {
            app: cloudflare.add_record(
                ZONE,
                "app.example.com",
                "A",
                OLD_PRIMARY_ADDRESS,
                300,
                true,
            ),
            www: cloudflare.add_record(
                ZONE,
                "www.example.com",
                "A",
                OLD_PRIMARY_ADDRESS,
                120,
                false,
            ),
            unrelated: cloudflare.add_record(
                ZONE,
                "mail.example.com",
                "A",
                UNRELATED_ADDRESS,
                300,
                false,
            ),
        };
        let dir = tempfile::tempdir().context("making the stage's directory")?;
        for (name, secret) in [
            ("replica.password", mariadb::FAILOVER_PASSWORD),
            ("primary.password", mariadb::WATCHDOG_PASSWORD),
            ("cloudflare.token", CF_TOKEN),
            ("telegram.token", TG_TOKEN),
            ("witness.token", WITNESS_TOKEN),
        ] {
            std::fs::write(dir.path().join(name), format!("{secret}\n"))?;
        }
        let mut stage = NetStage {
            bin: bin.to_path_buf(),
            setup,
            daemon: None,
            witnesses: Vec::new(),
            db,
            wan,
            cloudflare,
            telegram,
            systemctl,
            records,
            links,
            dir,
            net,
        };
        for host in stage.witness_hosts() {
            let witness = stage.spawn_witness(host).await?;
            stage.witnesses.push(witness);
        }
        std::fs::write(stage.config_path(), stage.config())?;
        Ok(stage)
    }

    /// The primary and the replica in their namespaces, the replica replicating from
    /// the primary through the WAN link (with [`Setup::heartbeat`]), caught up.
    async fn start_pair(
        net: &Network,
        setup: Setup,
        seed: u64,
    ) -> anyhow::Result<(MariaDbPair, ShapedLink)> {
        let options = |host: Host| StartOptions {
            command_prefix: net.exec_prefix(host),
            host: Some(net.address(host).to_string()),
            port: Some(MARIADB_PORT),
            ..StartOptions::default()
        };
        let (primary, replica) = tokio::try_join!(
            MariaDb::start_with("primary", PRIMARY_SERVER_ID, false, options(Host::Primary)),
            MariaDb::start_with("replica", REPLICA_SERVER_ID, true, options(Host::Standby)),
        )?;
        let wan = ShapedLink::start_in(
            &net.namespace(Host::Standby),
            SocketAddr::from(([127, 0, 0, 1], WAN_PORT)),
            SocketAddr::from((net.address(Host::Primary), MARIADB_PORT)),
            seed,
        )
        .context("starting the WAN link in the standby's namespace")?;
        let db = MariaDbPair { primary, replica };
        db.replica
            .replicate_from_address("127.0.0.1", WAN_PORT)
            .await?;
        if let Some(period) = setup.heartbeat {
            db.replica
                .execute(&format!(
                    "STOP SLAVE; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}; START SLAVE",
                    period.as_secs_f64()
                ))
                .await?;
        }
        db.wait_replica_running(Duration::from_secs(30)).await?;
        db.wait_replica_caught_up(Duration::from_secs(30)).await?;
        Ok((db, wan))
    }

    /// A shaped link on the controller's address to each stand-in (`what`, its URL),
    /// in that order: the daemon in its namespace reaches the stand-ins through them.
    fn relays(
        net: &Network,
        standins: [(&str, String); 2],
        seed: u64,
    ) -> anyhow::Result<Vec<ShapedLink>> {
        let mut links = Vec::new();
        for (what, url) in standins {
            let target: SocketAddr = url
                .trim_start_matches("http://")
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("the {what} stand-in's address in {url}"))?;
            links.push(ShapedLink::start(
                SocketAddr::from((net.controller_address(), 0)),
                target,
                seed,
            )?);
        }
        Ok(links)
    }

    /// The hosts whose witnesses run.
    pub fn witness_hosts(&self) -> Vec<Host> {
        WITNESSES
            .iter()
            .copied()
            .take(self.setup.witnesses)
            .collect()
    }

    /// A URL through the relay on the controller's address for the stand-in `i`.
    fn standin_url(&self, i: usize, url: &str) -> String {
        let local = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        url.replacen(local, &self.links[i].address().to_string(), 1)
    }

    /// The daemon's config: the [`Setup`], one `mysql` check through the WAN link, the
    /// witnesses, the replica, the stand-ins.
    pub fn config(&self) -> String {
        let t = self.setup;
        let witnesses: String = self
            .witness_hosts()
            .iter()
            .map(|w| {
                format!(
                    "\n[[probe.witnesses]]\nname = \"{w}\"\nurl = \"http://{}\"\ntoken_file = \"witness.token\"\ntimeout = \"{}ms\"\n",
                    host_port(self.net.address(*w), WITNESS_PORT),
                    t.witness_timeout.as_millis()
                )
            })
            .collect();
        format!(
            r#"
[node]
name = "{NODE}"
state_dir = "state"

[probe]
interval = "{interval}ms"{suspect}
failures_before_promotion = {failures}
timeout = "{timeout}ms"
fail_when = "any"

[[probe.checks]]
type = "mysql"
host = "127.0.0.1"
port = {WAN_PORT}
user = "{watchdog}"
password_file = "primary.password"
{witnesses}{tables}"#,
            interval = t.interval.as_millis(),
            suspect = t.suspect_interval.map_or(String::new(), |s| {
                format!("\nsuspect_interval = \"{}ms\"", s.as_millis())
            }),
            failures = t.failures_before_promotion,
            timeout = t.probe_timeout.as_millis(),
            watchdog = mariadb::WATCHDOG_USER,
            // The replica is the daemon's own host's database, reached on the
            // namespace's address rather than loopback: plain TCP, as on loopback (the
            // default for any other address is verify_identity, which the rig's servers
            // without TLS refuse: every read of the replica would fail).
            tables = crate::stage::standby_tables_with(
                &self.net.address(Host::Standby).to_string(),
                MARIADB_PORT,
                &self.standin_url(0, &self.cloudflare.api_base()),
                &self.standin_url(1, &self.telegram.api_url()),
                "tls = \"disabled\"\n",
            ),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts `failover-watchdog witness` in `host`, checking the primary directly;
    /// returns once it listens.
    async fn spawn_witness(&self, host: Host) -> anyhow::Result<NetProcess> {
        let config = self.dir.path().join(format!("{host}.toml"));
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"{host}\"\n\n[witness]\ntoken_file = \"witness.token\"\n\n[probe]\ntimeout = \"{}ms\"\n\n[[probe.checks]]\ntype = \"mysql\"\nhost = \"{}\"\nport = {MARIADB_PORT}\nuser = \"{}\"\npassword_file = \"primary.password\"\n",
                self.setup
                    .witness_probe_timeout
                    .unwrap_or(self.setup.probe_timeout)
                    .as_millis(),
                self.net.address(Host::Primary),
                mariadb::WATCHDOG_USER,
            ),
        )?;
        let listen = host_port(self.net.address(host), WITNESS_PORT);
        let mut command = self.net.command(host, &self.bin);
        command
            .args(["witness", "--listen", &listen])
            .arg("--config")
            .arg(&config);
        let mut witness = self.spawn(host, &format!("{host}.log"), command)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = witness.log();
            if text.contains("listening on") {
                return Ok(witness);
            }
            if let Some(code) = witness.exited() {
                bail!("witness {host} exited ({code:?}) before listening:\n{text}");
            }
            if Instant::now() >= deadline {
                bail!("witness {host} did not listen within 20 s:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn spawn(
        &self,
        host: Host,
        log_name: &str,
        mut command: tokio::process::Command,
    ) -> anyhow::Result<NetProcess> {
        let log = self.dir.path().join(log_name);
        let file = std::fs::File::create(&log)?;
        let child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} in {host}", self.bin.display()))?;
        Ok(NetProcess { host, child, log })
    }

    /// Starts the daemon in the standby's namespace, the shim first on its `PATH`.
    pub fn spawn_daemon(&mut self) -> anyhow::Result<()> {
        let mut command = self.net.command(Host::Standby, &self.bin);
        command
            .arg("run")
            .env("PATH", self.systemctl.path_env())
            .env("FAILOVER_WATCHDOG_CONFIG", self.config_path());
        self.daemon = Some(self.spawn(Host::Standby, "daemon.log", command)?);
        Ok(())
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        self.daemon
            .as_ref()
            .map(NetProcess::log)
            .unwrap_or_default()
    }

    /// `status --json` (run from the test process: it reads `state_dir` only).
    pub async fn status(&self) -> anyhow::Result<Value> {
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new(&self.bin)
                .args(["status", "--json"])
                .env("FAILOVER_WATCHDOG_CONFIG", self.config_path())
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("status --json did not finish within 30 s")??;
        if !output.status.success() {
            bail!(
                "status --json failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        serde_json::from_slice(&output.stdout).context("status --json is not JSON")
    }

    /// Polls `status --json` until `done` holds; an error after `timeout`.
    pub async fn wait_for_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("timed out waiting for {what}; last status: {status:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether every configured record points at the standby.
    pub fn dns_points_at_standby(&self) -> bool {
        [&self.records.app, &self.records.www].iter().all(|id| {
            self.cloudflare
                .record(id)
                .is_some_and(|r| r.content == STANDBY_ADDRESS)
        })
    }

    /// Whether the unrelated record and both configured ones are as they started.
    pub fn dns_untouched(&self) -> bool {
        let content = |id: &str| self.cloudflare.record(id).map(|r| r.content);
        content(&self.records.app).as_deref() == Some(OLD_PRIMARY_ADDRESS)
            && content(&self.records.www).as_deref() == Some(OLD_PRIMARY_ADDRESS)
            && content(&self.records.unrelated).as_deref() == Some(UNRELATED_ADDRESS)
    }

    /// Where the primary's MariaDB is, as the controller reaches it.
    pub fn primary_address(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.net.address(Host::Primary), MARIADB_PORT)
    }
}
