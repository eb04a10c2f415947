//! The stage: the whole rig (a real MariaDB pair, the Cloudflare and Telegram stand-ins,
//! the systemctl shim) plus a config that points the real `failover-watchdog` binary at
//! it. The integration tests, the local rehearsal and the benchmark all play on it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::cloudflare::CloudflareStandIn;
use crate::mariadb::{self, MariaDbPair, Tls};
use crate::systemctl::SystemctlShim;
use crate::telegram::TelegramStandIn;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

pub const NODE: &str = "standby-test";
/// The node name of the other host ([`Stage::primary_host`]).
pub const PRIMARY_NODE: &str = "primary-test";
pub const ZONE: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const STANDBY_ADDRESS: &str = "203.0.113.20";
pub const OLD_PRIMARY_ADDRESS: &str = "198.51.100.10";
pub const UNRELATED_ADDRESS: &str = "192.0.2.7";
pub const UNITS: [&str; 2] = ["php-fpm.service", "app.service"];
pub const CF_TOKEN: &str = "cf-secret-token-0123456789";
pub const TG_TOKEN: &str = "123456:tg-secret-token-abcdef";
pub const CHAT_ID: &str = "-1001234567890";
/// The witnesses' token, in `witness.token` beside the config.
pub const WITNESS_TOKEN: &str = "witness-token-0123456789abcdef";

/// The ids of the records the scenario uses.
pub struct Records {
    pub app: String,
    pub www: String,
    /// In the same zone, not in the config: must never change.
    pub unrelated: String,
}

/// Everything a scenario needs.
pub struct Stage {
    /// The `failover-watchdog` binary under test.
    pub bin: PathBuf,
    pub db: MariaDbPair,
    pub cloudflare: CloudflareStandIn,
    pub telegram: TelegramStandIn,
    pub systemctl: SystemctlShim,
    pub records: Records,
    pub dir: tempfile::TempDir,
    /// On a TLS stage ([`Stage::start_tls`]): the certificates the pair runs with. Its
    /// CA is `mariadb-ca.pem` beside the config, which every TLS key of the config
    /// names.
    pub tls: Option<Arc<Tls>>,
}

/// The CA file of a TLS stage, beside its config.
pub const CA_FILE: &str = "mariadb-ca.pem";

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Stage {
    /// Starts the rig, writes the secrets and the config, for the binary at `bin`.
    pub async fn start(bin: &Path) -> Stage {
        Self::start_with(bin, None).await
    }

    /// As [`Stage::start`], the pair requiring TLS (`require_secure_transport = ON`,
    /// certificates for 127.0.0.1 and localhost made now), and the config reaching both
    /// servers, and setting up the channel, with `verify_identity` against their CA.
    pub async fn start_tls(bin: &Path) -> Stage {
        let tls = Tls::generate(&[mariadb::HOST, "localhost"]).expect("the test certificates");
        Self::start_with(bin, Some(Arc::new(tls))).await
    }

    async fn start_with(bin: &Path, tls: Option<Arc<Tls>>) -> Stage {
        let db = match &tls {
            Some(tls) => MariaDbPair::start_with_tls(tls.clone()).await,
            None => MariaDbPair::start().await,
        }
        .expect("the MariaDB pair must start");
        let cloudflare = CloudflareStandIn::start(CF_TOKEN).await.unwrap();
        let telegram = TelegramStandIn::start(TG_TOKEN).await.unwrap();
        let systemctl = SystemctlShim::new(&UNITS).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        for (name, secret) in [
            ("replica.password", mariadb::FAILOVER_PASSWORD),
            ("primary.password", mariadb::WATCHDOG_PASSWORD),
            ("cloudflare.token", CF_TOKEN),
            ("telegram.token", TG_TOKEN),
            ("witness.token", WITNESS_TOKEN),
            ("replication.password", mariadb::REPL_PASSWORD),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{secret}\n")).unwrap();
            // As an operator keeps a secret: readable by its owner alone.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        if let Some(tls) = &tls {
            std::fs::copy(tls.ca_path(), dir.path().join(CA_FILE)).unwrap();
        }
        let rig = Stage {
            bin: bin.to_path_buf(),
            db,
            cloudflare,
            telegram,
            systemctl,
            records,
            dir,
            tls,
        };
        rig.write_config(&rig.config());
        rig
    }

    /// The scenario's config: interval 1 s, threshold 3, the real pair and the stand-ins.
    pub fn config(&self) -> String {
        self.config_with_checks(&self.primary_checks())
    }

    /// The default checks of the primary: its MariaDB port (tcp) and a login (mysql).
    pub fn primary_checks(&self) -> String {
        self.primary_checks_at(self.db.primary.port())
    }

    /// The default checks of the primary, made at `port` on its host: the primary's own
    /// port, or a [`crate::link::Link`] to it.
    pub fn primary_checks_at(&self, port: u16) -> String {
        let primary = &self.db.primary;
        format!(
            r#"
[[probe.checks]]
type = "tcp"
address = "{host}:{port}"

[[probe.checks]]
type = "mysql"
host = "{host}"
port = {port}
user = "{watchdog}"
password_file = "primary.password"
{tls}"#,
            host = primary.host(),
            watchdog = mariadb::WATCHDOG_USER,
            tls = self.tls_keys(),
        )
    }

    /// The TLS keys of a table naming one of the pair's servers: on a TLS stage,
    /// `verify_identity` against the stage's CA; otherwise none (the default for a
    /// loopback server: plain TCP).
    pub fn tls_keys(&self) -> String {
        match &self.tls {
            Some(_) => format!("tls = \"verify_identity\"\ntls_ca_file = \"{CA_FILE}\"\n"),
            None => String::new(),
        }
    }

    /// `[replication]`: the channel the rig sets up (a heartbeat each second), and the
    /// rig's semi-synchronous replication; on a TLS stage verified against the CA, whose
    /// path the servers read.
    pub fn replication_table(&self) -> String {
        let tls = match &self.tls {
            Some(tls) => format!(
                "tls = \"verify_identity\"\ntls_ca_file = \"{}\"\n",
                tls.ca_path().display()
            ),
            None => String::new(),
        };
        format!("\n[replication]\nheartbeat_period = \"1s\"\nsemi_sync = true\n{tls}")
    }

    /// The scenario's config with other `[[probe.checks]]` tables.
    pub fn config_with_checks(&self, checks: &str) -> String {
        let primary = &self.db.primary;
        let replica = &self.db.replica;
        format!(
            r#"
[node]
name = "{NODE}"
state_dir = "state"

[probe]
interval = "1s"
failures_before_promotion = 3
timeout = "500ms"
fail_when = "any"
{checks}{tables}{replication}"#,
            tables = standby_tables_with(
                primary.host(),
                replica.port(),
                &self.cloudflare.api_base(),
                &self.telegram.api_url(),
                &self.tls_keys(),
            ),
            replication = self.replication_table(),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The binary, with the shim first on PATH and the config in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        command(&self.bin, &self.systemctl, &self.config_path(), args)
    }

    /// Runs the binary to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        run(self.command(args)).await
    }

    /// Starts the daemon; its log goes to a file the caller can read while it runs.
    pub fn spawn_daemon(&self) -> Daemon {
        spawn_daemon(self.command(&["run"]), &self.dir.path().join("daemon.log"))
    }

    /// The `[peer]` table of the standby's config: the primary's database, through the
    /// same account as `[replica]` (it exists on both servers, as on a mirrored pair).
    pub fn peer_table_for_standby(&self) -> String {
        peer_table(PRIMARY_NODE, self.db.primary.port(), &self.tls_keys())
    }

    /// The standby's config with its `[peer]` table: one host of a mirrored pair.
    pub fn pair_config(&self) -> String {
        format!("{}{}", self.config(), self.peer_table_for_standby())
    }

    /// The other host of the pair: the primary's database with a config of its own
    /// (mirrored from the standby's: its checks and `[peer]` name the replica's
    /// database, its DNS records point at [`OLD_PRIMARY_ADDRESS`]), its own state
    /// directory and its own `systemctl` shim, where the application units run.
    pub fn primary_host(&self) -> Host {
        let dir = self.dir.path().join("primary-host");
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "replica.password",
            "primary.password",
            "cloudflare.token",
            "telegram.token",
            "replication.password",
        ] {
            std::fs::copy(self.dir.path().join(name), dir.join(name)).unwrap();
        }
        if self.tls.is_some() {
            std::fs::copy(self.dir.path().join(CA_FILE), dir.join(CA_FILE)).unwrap();
        }
        let systemctl = SystemctlShim::new(&UNITS).unwrap();
        for unit in UNITS {
            systemctl.set_active(unit, true);
        }
        let host = Host {
            bin: self.bin.clone(),
            dir,
            systemctl,
        };
        let standby = self.db.replica.port();
        const CHECKS: &str = "# the checks of the peer\n";
        let mirrored = self
            .config_with_checks(CHECKS)
            .replace(
                &format!("name = \"{NODE}\""),
                &format!("name = \"{PRIMARY_NODE}\""),
            )
            .replace(
                &format!("port = {standby}\nuser"),
                &format!("port = {}\nuser", self.db.primary.port()),
            )
            .replace(STANDBY_ADDRESS, OLD_PRIMARY_ADDRESS)
            .replace(CHECKS, &self.primary_checks_at(standby));
        host.write_config(&format!(
            "{mirrored}{}",
            peer_table(NODE, standby, &self.tls_keys())
        ));
        host
    }

    /// Starts `failover-watchdog witness` named `name` with these `[[probe.checks]]` on a
    /// free loopback port, its token in `witness.token`; returns once it listens.
    pub async fn spawn_witness(&self, name: &str, checks: &str) -> Witness {
        let config = self.dir.path().join(format!("witness-{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"{name}\"\n\n[witness]\ntoken_file = \"witness.token\"\n\n[probe]\ntimeout = \"500ms\"\n{checks}"
            ),
        )
        .unwrap();
        let log = self.dir.path().join(format!("witness-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&self.bin)
            .args(["witness", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut witness = Witness {
            name: name.to_string(),
            url: String::new(),
            child,
            log,
        };
        // The port is the kernel's choice: read it from the start-up line.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = witness.log();
            if let Some(address) = text
                .split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
            {
                witness.url = format!("http://{}", address.trim_end_matches(':'));
                return witness;
            }
            if let Ok(Some(status)) = witness.child.try_wait() {
                panic!("witness {name} exited ({status}) before listening:\n{text}");
            }
            if Instant::now() >= deadline {
                panic!("witness {name} did not listen within 20 s:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `[[probe.witnesses]]` tables for these witnesses, with the token in `token_file`
    /// and a 900 ms request timeout (within the 1 s interval).
    pub fn witnesses_config(witnesses: &[&Witness], token_file: &str) -> String {
        witnesses
            .iter()
            .map(|w| {
                format!(
                    "\n[[probe.witnesses]]\nname = \"{}\"\nurl = \"{}\"\ntoken_file = \"{token_file}\"\ntimeout = \"900ms\"\n",
                    w.name, w.url
                )
            })
            .collect()
    }

    /// Whether every configured record points at the standby.
    pub fn dns_points_at_standby(&self) -> bool {
        [&self.records.app, &self.records.www]
            .iter()
            .all(|id| self.dns(id) == STANDBY_ADDRESS)
    }

    /// `status --json`.
    pub async fn status(&self) -> Value {
        let run = self.run(&["status", "--json"]).await;
        assert_eq!(run.code, Some(0), "status failed: {run:?}");
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", run.stdout))
    }

    /// Polls `status --json` until `done` holds, or fails the test after `timeout`.
    pub async fn wait_for_status(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            if Instant::now() >= deadline {
                panic!("timed out waiting for {what}; last status: {status:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Content of a record at the Cloudflare stand-in.
    pub fn dns(&self, id: &str) -> String {
        self.cloudflare.record(id).expect("record exists").content
    }

    /// `@@global.read_only` on the replica.
    pub async fn replica_read_only(&self) -> String {
        self.db.replica.global_var("read_only").await.unwrap()
    }
}

/// The standby's tables after `[probe]`: `[replica]` (at `replica_host:replica_port`,
/// with `replica_tls`, its TLS keys), `[apps]`, `[dns]` with its two records,
/// `[telegram]`, pointed at the stand-ins. Shared by this stage and the network fault
/// rig's.
pub(crate) fn standby_tables_with(
    replica_host: &str,
    replica_port: u16,
    api_base: &str,
    api_url: &str,
    replica_tls: &str,
) -> String {
    format!(
        r#"
[replica]
host = "{replica_host}"
port = {replica_port}
user = "{failover}"
password_file = "replica.password"
apply_timeout = "20s"
{replica_tls}
[apps]
units = ["{u0}", "{u1}"]
start_timeout = "10s"

[dns]
api_token_file = "cloudflare.token"
api_base = "{api_base}"
zone_id = "{ZONE}"
update_timeout = "30s"

[[dns.records]]
name = "app.example.com"
type = "A"
content = "{STANDBY_ADDRESS}"

[[dns.records]]
name = "www.example.com"
content = "{STANDBY_ADDRESS}"

[telegram]
bot_token_file = "telegram.token"
chat_id = "{CHAT_ID}"
api_url = "{api_url}"
"#,
        failover = mariadb::FAILOVER_USER,
        u0 = UNITS[0],
        u1 = UNITS[1],
    )
}

/// The `[peer]` table naming the database on `port`, with `tls` (TLS keys).
fn peer_table(name: &str, port: u16, tls: &str) -> String {
    format!(
        r#"
[peer]
name = "{name}"
host = "{host}"
port = {port}
user = "{failover}"
password_file = "replica.password"
replication_user = "{repl}"
replication_password_file = "replication.password"
{tls}"#,
        host = mariadb::HOST,
        failover = mariadb::FAILOVER_USER,
        repl = mariadb::REPL_USER,
    )
}

/// The binary, with `systemctl` first on PATH and the config in the environment.
fn command(bin: &Path, systemctl: &SystemctlShim, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .env("PATH", systemctl.path_env())
        .env("FAILOVER_WATCHDOG_CONFIG", config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn run(mut command: Command) -> Run {
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the command finished within 120 s")
        .unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn spawn_daemon(mut command: Command, log: &Path) -> Daemon {
    let file = std::fs::File::create(log).unwrap();
    let child = command
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Daemon {
        child,
        log: log.to_path_buf(),
    }
}

/// The other host of a pair ([`Stage::primary_host`]): its own config, state directory
/// and `systemctl` shim, the same binary.
pub struct Host {
    pub bin: PathBuf,
    /// Holds its config, secrets, state directory and daemon log.
    pub dir: PathBuf,
    pub systemctl: SystemctlShim,
}

impl Host {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn config(&self) -> String {
        std::fs::read_to_string(self.config_path()).unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        command(&self.bin, &self.systemctl, &self.config_path(), args)
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        run(self.command(args)).await
    }

    pub fn spawn_daemon(&self) -> Daemon {
        spawn_daemon(self.command(&["run"]), &self.dir.join("daemon.log"))
    }

    /// `status --json`.
    pub async fn status(&self) -> Value {
        let run = self.run(&["status", "--json"]).await;
        assert_eq!(run.code, Some(0), "status failed: {run:?}");
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e}): {}", run.stdout))
    }
}

/// A running daemon.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or the OOM killer would; waits for it to be gone.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("the daemon can be killed");
        let _ = self.child.wait().await;
    }

    /// Waits for the daemon to exit by itself; returns its exit code.
    pub async fn wait(&mut self, timeout: Duration) -> Option<i32> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("the daemon exited in time")
            .unwrap()
            .code()
    }

    /// SIGTERM, then waits for a clean exit; returns the exit code and the log.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        if let Some(pid) = self.child.id() {
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the daemon stops within 20 s of SIGTERM")
            .unwrap();
        (status.code(), self.log())
    }
}

/// A running `failover-watchdog witness`.
pub struct Witness {
    pub name: String,
    /// Its base URL.
    pub url: String,
    child: Child,
    log: PathBuf,
}

impl Witness {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The promotion's steps in a `status --json` object, as (name, status).
pub fn steps(status: &Value) -> Vec<(String, String)> {
    status["promotion"]["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap().to_string(),
                        s["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every step with the same status, to compare with [`steps`].
pub fn all_steps(status: &str) -> Vec<(String, String)> {
    [
        "stop_replica",
        "make_writable",
        "start_apps",
        "update_dns",
        "notify",
    ]
    .iter()
    .map(|s| (s.to_string(), status.to_string()))
    .collect()
}

/// A switchover's steps with the same status, to compare with [`steps`].
pub fn all_switchover_steps(status: &str) -> Vec<(String, String)> {
    [
        "fence_primary",
        "catch_up",
        "stop_replica",
        "make_writable",
        "start_apps",
        "update_dns",
        "rejoin_peer",
        "notify",
    ]
    .iter()
    .map(|s| (s.to_string(), status.to_string()))
    .collect()
}
