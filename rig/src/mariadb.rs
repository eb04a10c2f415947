//! A real MariaDB primary/replica pair with GTID replication.
//!
//! This module owns every MariaDB process the rig starts: finding the binaries, the
//! per-process template data directory, starting, killing, stopping and restarting
//! `mariadbd`, wiring GTID replication, and a background write load on the primary.
//!
//! How it works:
//!
//! - `mariadb-install-db` runs once per test process into a template directory. Its
//!   `--extra-file` sets the root password and creates the users ([`WATCHDOG_USER`],
//!   [`FAILOVER_USER`], [`REPL_USER`]) and the [`APP_DB`]`.`[`APP_TABLE`] table. The
//!   template has no binary log, so every server copied from it starts with an empty
//!   GTID history, and the users and the schema already exist on both servers.
//! - Each [`MariaDb`] copies the template into its own [`TempDir`], listens on a free
//!   loopback port, and ignores `/etc/mysql` (`--no-defaults`). [`MariaDb::start_with`]
//!   takes another address, a fixed port and a command prefix instead (`ip netns exec
//!   <namespace>`: the network fault rig, [`crate::netns`]).
//! - [`MariaDbPair::start`] starts the primary and the replica at the same time, points
//!   the replica at the primary with `MASTER_USE_GTID=slave_pos`, and waits until
//!   both replication threads run and the replica has caught up.
//! - [`MariaDbPair::start_with_tls`] does the same with TLS everywhere: certificates
//!   made at test time ([`Tls`], rcgen, no OpenSSL), each server run with
//!   `require_secure_transport = ON`, every rig connection and the replication channel
//!   verified against the test CA.
//!
//! Nothing here skips: if MariaDB is missing or a server does not start, the functions
//! return an error that names the binary and quotes the server's error log.
//!
//! Every `mariadbd` is spawned from one long-lived thread with
//! `PR_SET_PDEATHSIG=SIGKILL`, so the servers die with the test process even when it
//! is killed; [`MariaDb`]'s `Drop` kills and reaps them in the normal case.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder, Row, SslOpts};
use tempfile::TempDir;

/// Password of MariaDB's `root` account on every rig server.
pub const ROOT_PASSWORD: &str = "rig-root-pw";
/// The probe account: may only connect and run `SELECT 1` (`USAGE`), host `%`.
pub const WATCHDOG_USER: &str = "watchdog";
/// Password of [`WATCHDOG_USER`].
pub const WATCHDOG_PASSWORD: &str = "rig-watchdog-pw";
/// The account that promotes the replica, host `%`, granted [`FAILOVER_GRANTS`].
pub const FAILOVER_USER: &str = "failover";
/// Password of [`FAILOVER_USER`].
pub const FAILOVER_PASSWORD: &str = "rig-failover-pw";
/// The global privileges of [`FAILOVER_USER`] on MariaDB 10.11, the smallest set that
/// covers the promotion:
///
/// - `SLAVE MONITOR`: `SHOW [ALL] SLAVES STATUS`;
/// - `REPLICATION SLAVE ADMIN`: `STOP/START SLAVE`, `CHANGE MASTER`, `SET GLOBAL gtid_slave_pos`;
/// - `RELOAD`: `RESET SLAVE [ALL]` (REPLICATION SLAVE ADMIN alone is refused);
/// - `READ_ONLY ADMIN`: `SET GLOBAL read_only` (no longer part of `SUPER` since 10.11);
/// - `BINLOG MONITOR`: `SHOW MASTER STATUS`, `SHOW BINARY LOGS`.
///
/// `SELECT MASTER_GTID_WAIT(..)` and reading `@@gtid_*` need no privilege.
pub const FAILOVER_GRANTS: &str =
    "SLAVE MONITOR, REPLICATION SLAVE ADMIN, RELOAD, READ_ONLY ADMIN, BINLOG MONITOR";
/// What [`FAILOVER_USER`] also needs as the `[peer]` account of the other host, which
/// `switchover` fences: `CONNECTION ADMIN` and `PROCESS` to end the clients' connections;
/// and `REPLICATION MASTER ADMIN`, to turn a former primary's semi-sync primary side off
/// when it becomes a replica.
/// Granted on every rig server, so the same account serves both roles, as on a mirrored
/// pair.
pub const PEER_GRANTS: &str = "CONNECTION ADMIN, PROCESS, REPLICATION MASTER ADMIN";
/// The replication account (`REPLICATION SLAVE`), host `%`.
pub const REPL_USER: &str = "repl";
/// Password of [`REPL_USER`].
pub const REPL_PASSWORD: &str = "rig-repl-pw";
/// The application database; it holds [`APP_TABLE`] on both servers.
pub const APP_DB: &str = "app";
/// The application table in [`APP_DB`]: `writes (id BIGINT PRIMARY KEY, payload VARCHAR(64))`.
pub const APP_TABLE: &str = "writes";
/// The application's account, host `%`: `INSERT, SELECT` on [`APP_DB`] only, so it
/// cannot write through `read_only` (no `READ_ONLY ADMIN`, no `SUPER`), as an
/// application must not. The writer of `writer.rs` uses it.
pub const APP_USER: &str = "app";
/// Password of [`APP_USER`].
pub const APP_PASSWORD: &str = "rig-app-pw";
/// The address every rig server listens on.
pub const HOST: &str = "127.0.0.1";
/// The host part of a second `root` account, for the network fault rig's private range
/// ([`crate::netns`]): its test process connects from there.
pub const NETNS_CLIENTS: &str = "10.213.%";
/// `server_id` of the primary started by [`MariaDbPair::start`].
pub const PRIMARY_SERVER_ID: u32 = 1;
/// `server_id` of the replica started by [`MariaDbPair::start`].
pub const REPLICA_SERVER_ID: u32 = 2;
/// Environment variable that overrides where `mariadbd` is looked up.
pub const MARIADBD_ENV: &str = "MARIADBD";
/// Environment variable that overrides where `mariadb-install-db` is looked up.
pub const MARIADB_INSTALL_DB_ENV: &str = "MARIADB_INSTALL_DB";

/// How long a server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long replication may take to start and catch up in [`MariaDbPair::start`].
const REPLICATION_DEADLINE: Duration = Duration::from_secs(30);
/// How often readiness and replication are polled.
const POLL: Duration = Duration::from_millis(20);
/// Timeout for opening a connection in [`MariaDb::conn`] (a stopped server never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Small InnoDB settings, the same for `mariadb-install-db` and `mariadbd` so the redo
/// log is not resized on each start.
const INNODB_ARGS: &[&str] = &["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"];

// ---------------------------------------------------------------------------------
// Binaries and the template data directory
// ---------------------------------------------------------------------------------

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name`: the path in the environment variable `env_override` if set, else the
/// first executable in `PATH`, then `/usr/sbin`, `/usr/bin`, `/usr/local/sbin`,
/// `/usr/local/bin`. The error names the binary and everywhere it looked.
pub fn find_binary(name: &str, env_override: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_override) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Ok(path);
        }
        bail!(
            "{env_override}={} is not an executable file (wanted `{name}`)",
            path.display()
        );
    }
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let fallback =
        ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from);
    let mut searched = Vec::new();
    for dir in path_dirs.into_iter().chain(fallback) {
        let candidate = dir.join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
        searched.push(dir.display().to_string());
    }
    bail!(
        "MariaDB binary `{name}` not found (searched {}); install MariaDB 10.11 \
         (Debian: mariadb-server) or set {env_override} to its path",
        searched.join(", ")
    )
}

/// The data directory made once per process by `mariadb-install-db`.
struct Template {
    data_dir: PathBuf,
    mariadbd: PathBuf,
}

static TEMPLATE: tokio::sync::OnceCell<Template> = tokio::sync::OnceCell::const_new();
static TEMPLATE_ROOT: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_template() {
    if let Some(root) = TEMPLATE_ROOT.get() {
        let _ = std::fs::remove_dir_all(root);
    }
}

fn quote_sql(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn setup_sql() -> String {
    let root = quote_sql(ROOT_PASSWORD);
    let mut sql = String::new();
    // Bootstrap mode starts without grant tables; loading them makes account
    // statements work.
    sql.push_str("FLUSH PRIVILEGES;\n");
    // Drop root@<hostname>: it is useless with --skip-name-resolve and only adds
    // warnings to every error log.
    sql.push_str(
        "DELETE FROM mysql.global_priv WHERE User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1');\n\
         DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');\n\
         FLUSH PRIVILEGES;\n",
    );
    let _ = writeln!(
        sql,
        "ALTER USER IF EXISTS 'root'@'localhost' IDENTIFIED BY {root};"
    );
    let _ = writeln!(
        sql,
        "ALTER USER IF EXISTS 'root'@'::1' IDENTIFIED BY {root};"
    );
    let _ = writeln!(
        sql,
        "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY {root};"
    );
    let _ = writeln!(sql, "ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY {root};");
    let _ = writeln!(
        sql,
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    );
    // The test process reaches servers in network namespaces from the controller's
    // address (crate::netns), never from the loopback address.
    let _ = writeln!(
        sql,
        "CREATE USER 'root'@'{NETNS_CLIENTS}' IDENTIFIED BY {root};"
    );
    let _ = writeln!(
        sql,
        "GRANT ALL PRIVILEGES ON *.* TO 'root'@'{NETNS_CLIENTS}' WITH GRANT OPTION;"
    );
    let _ = writeln!(
        sql,
        "CREATE USER '{WATCHDOG_USER}'@'%' IDENTIFIED BY {};",
        quote_sql(WATCHDOG_PASSWORD)
    );
    let _ = writeln!(
        sql,
        "CREATE USER '{FAILOVER_USER}'@'%' IDENTIFIED BY {};",
        quote_sql(FAILOVER_PASSWORD)
    );
    let _ = writeln!(
        sql,
        "GRANT {FAILOVER_GRANTS}, {PEER_GRANTS} ON *.* TO '{FAILOVER_USER}'@'%';"
    );
    let _ = writeln!(
        sql,
        "CREATE USER '{REPL_USER}'@'%' IDENTIFIED BY {};",
        quote_sql(REPL_PASSWORD)
    );
    let _ = writeln!(sql, "GRANT REPLICATION SLAVE ON *.* TO '{REPL_USER}'@'%';");
    let _ = writeln!(
        sql,
        "CREATE USER '{APP_USER}'@'%' IDENTIFIED BY {};",
        quote_sql(APP_PASSWORD)
    );
    let _ = writeln!(
        sql,
        "GRANT INSERT, SELECT ON {APP_DB}.* TO '{APP_USER}'@'%';"
    );
    let _ = writeln!(sql, "CREATE DATABASE {APP_DB};");
    let _ = writeln!(
        sql,
        "CREATE TABLE {APP_DB}.{APP_TABLE} (id BIGINT PRIMARY KEY, payload VARCHAR(64)) ENGINE=InnoDB;"
    );
    sql
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

async fn template() -> anyhow::Result<&'static Template> {
    TEMPLATE.get_or_try_init(make_template).await
}

async fn make_template() -> anyhow::Result<Template> {
    let mariadbd = find_binary("mariadbd", MARIADBD_ENV)?;
    let install_db = find_binary("mariadb-install-db", MARIADB_INSTALL_DB_ENV)?;
    let dir = tempfile::Builder::new()
        .prefix("fwrig-template-")
        .tempdir_in(short_temp_base())
        .context("creating the MariaDB template directory")?;
    let sql_path = dir.path().join("setup.sql");
    std::fs::write(&sql_path, setup_sql())
        .with_context(|| format!("writing {}", sql_path.display()))?;
    let data_dir = dir.path().join("data");

    let mut cmd = tokio::process::Command::new(&install_db);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data_dir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--skip-name-resolve")
        .arg(format!("--extra-file={}", sql_path.display()))
        .args(INNODB_ARGS)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if is_root() {
        cmd.arg("--user=root");
    }
    let output = cmd
        .output()
        .await
        .with_context(|| format!("running {}", install_db.display()))?;
    if !output.status.success() {
        bail!(
            "{} --datadir={} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            install_db.display(),
            data_dir.display(),
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 30),
            tail(&String::from_utf8_lossy(&output.stderr), 30),
        );
    }
    let root = dir.keep();
    if TEMPLATE_ROOT.set(root.clone()).is_ok() {
        // SAFETY: registering a plain extern "C" fn without captured state.
        unsafe {
            libc::atexit(remove_template);
        }
    } else {
        // Cannot happen (the OnceCell runs this once), but never leak the directory.
        let _ = std::fs::remove_dir_all(&root);
        bail!("MariaDB template initialised twice");
    }
    Ok(Template { data_dir, mariadbd })
}

/// The directory for temporary directories: `$TMPDIR` unless it is so long that a unix
/// socket path inside it would pass the ~107 byte limit, then `/tmp`.
fn short_temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    if base.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        base
    }
}

fn copy_dir_all(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir_all(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((HOST, 0))
        .context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process, with
/// `PR_SET_PDEATHSIG=SIGKILL`: the kernel sends the signal when the spawning *thread*
/// exits, so spawning from a test thread would kill servers that outlive that test.
fn spawn_with_parent_death_signal(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("rig-mariadb-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the rig's process spawner thread");
        tx
    });
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the rig's process spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the rig's process spawner thread is gone"))?
}

// ---------------------------------------------------------------------------------
// GTID positions
// ---------------------------------------------------------------------------------

/// Parses a GTID position such as `0-1-42,1-2-7` into `domain -> seq_no`.
pub fn parse_gtid_pos(pos: &str) -> anyhow::Result<HashMap<u32, u64>> {
    let mut out = HashMap::new();
    for gtid in pos.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = gtid.split('-');
        let (Some(domain), Some(_server), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("malformed GTID {gtid:?} in {pos:?}");
        };
        let domain: u32 = domain.parse().with_context(|| format!("GTID {gtid:?}"))?;
        let seq: u64 = seq.parse().with_context(|| format!("GTID {gtid:?}"))?;
        let entry = out.entry(domain).or_insert(seq);
        *entry = (*entry).max(seq);
    }
    Ok(out)
}

/// Whether GTID position `a` contains `b`: for every domain in `b`, `a` has reached the
/// same sequence number (with `gtid_strict_mode` sequence numbers only grow in a domain).
pub fn gtid_pos_reached(a: &str, b: &str) -> anyhow::Result<bool> {
    let a = parse_gtid_pos(a)?;
    let b = parse_gtid_pos(b)?;
    Ok(b.iter()
        .all(|(domain, seq)| a.get(domain).is_some_and(|s| s >= seq)))
}

fn row_to_map(row: &Row) -> HashMap<String, String> {
    row.columns_ref()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let value = match row.get_opt::<Option<String>, _>(i) {
                Some(Ok(v)) => v.unwrap_or_default(),
                Some(Err(e)) => format!("{:?}", e.0),
                None => String::new(),
            };
            (col.name_str().into_owned(), value)
        })
        .collect()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------

/// The TLS material of a rig pair, made at test time with rcgen (pure Rust, nothing of
/// OpenSSL): a CA, a server certificate it signed for the names the servers are
/// reached by, and a client certificate it signed; PEM files in a directory of their
/// own, removed on drop.
pub struct Tls {
    dir: TempDir,
    ca_pem: String,
    /// The first name of the servers' certificate: the rig's own clients verify
    /// against it, whatever address they connect to.
    server_name: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl Tls {
    /// A CA, and certificates it signed: the servers' for `server_names` (host names or
    /// IP addresses, as `subjectAltName`s), and a client's.
    pub fn generate(server_names: &[&str]) -> anyhow::Result<Tls> {
        let dir = tempfile::Builder::new()
            .prefix("fwrig-tls-")
            .tempdir_in(short_temp_base())
            .context("creating the TLS directory")?;
        let (ca, issuer) = new_ca("failover-watchdog rig CA")?;
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        write("ca.pem", &ca.pem())?;
        let names: Vec<String> = server_names.iter().map(|n| n.to_string()).collect();
        let (cert, key) = new_leaf(names, "rig server", &issuer)?;
        write("server.pem", &cert)?;
        write("server.key", &key)?;
        let (cert, key) = new_leaf(Vec::new(), "rig client", &issuer)?;
        write("client.pem", &cert)?;
        write("client.key", &key)?;
        Ok(Tls {
            ca_pem: ca.pem(),
            server_name: server_names.first().unwrap_or(&HOST).to_string(),
            dir,
        })
    }

    /// Writes, at `path`, the certificate of a CA that signed nothing of this rig: a
    /// wrong `tls_ca_file`.
    pub fn write_unrelated_ca(path: &Path) -> anyhow::Result<()> {
        let (ca, _) = new_ca("an unrelated CA")?;
        std::fs::write(path, ca.pem()).with_context(|| format!("writing {}", path.display()))
    }

    /// The CA's certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key_path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A client certificate the CA signed, for an account that requires X509.
    pub fn client_cert_path(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    pub fn client_key_path(&self) -> PathBuf {
        self.dir.path().join("client.key")
    }

    /// How the rig's own clients connect: verified against the CA, and against the
    /// certificate's first name (the address they connect to may not be in it).
    fn ssl_opts(&self) -> SslOpts {
        SslOpts::default()
            .with_root_certs(vec![self.ca_pem.clone().into_bytes().into()])
            .with_disable_built_in_roots(true)
            .with_danger_tls_hostname_override(Some(self.server_name.clone()))
    }
}

/// A self-signed CA named `name`, and the issuer that signs with it.
fn new_ca(
    name: &str,
) -> anyhow::Result<(rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert, rcgen::Issuer::new(params, key)))
}

/// The client certificate's key: RSA, the only kind mysql_async presents, and which
/// ring (rcgen's provider here) cannot generate; PKCS#8, as OpenSSL 3 writes it.
pub const CLIENT_RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDAkVIzDNi3/qZT
LA1baX6iZ3uQ8dGqFybTKvwEcBgvlNUizOLivxMQpCHyssA1yMj8mKeGA+to+cSn
86xrweHYLXyWRyEzq0azW7IDt78trFUEHyqiUKgTH3wxpgdywnkP6HX8dqg8/oBM
WbLKz7ulal9VEvwWPS4Kdht868wFgoqne/qkptUMdOVSF5Gni1uB1bzXzbNG3JaG
CpOVYE6vgqBklh45A6poX7rMUTwuwAsASv2WgfV8+8DaksCV07ikIRFIvRu4GcSV
uS2cLa9o2tX5DVzlHx4owMWYWLNNIYMThm4Iw+9ms87VHUXXlrAt/w+iTlDffHei
x91oAxXlAgMBAAECggEABASF2kg8kgi0cCPaBNv+G04340VdzTMTqw6WB9oy+D6/
/GJjlOwXKtFtNlEpbFyV1LXbl3ETprz2r+ltMpVoDhsxsDioKzuRZmYcVhd34rqd
mKDrNLfn7MI26LukIyQ1oD9Qw0qBh+1NaNs70WLAGdf3O0YjeAon1pKd5EELfuhR
kk07VkTLm7PrCn5uINxIXAvUM6XcAJlRUkNuMSA3ukqnaSpYl5NsvB/wf9+dX//R
0+xSruPtN0vFL4TVZAiUifjhBZkRFOdumXD65G39MzvxrZ6oO3qW2c6v4ZoKsv9/
ArDQLgj2IXIoZz69/6MTJgxGYSHHm/dVKNugLy0hvwKBgQDjMNsDT6T5BQvd5YyI
eRL5xhaGX6XtjejfAvJSzFdmG6SmtF9mwiGHgijRd/X0w1SO3YI5+8szl2ji+GZW
tejWUdmnBY1qRW/AbotJ0Z4fIIrmysl3nx3mR5PVhvLwoPCLpd1SGVxFeutqDmIe
vDTPyl7YywKp0yd1i7YJLlkmYwKBgQDY/IQw/L2YR1UphTAweo8nBC6sYDp7QRuZ
ytGTBoP8nmYBXmmeP38IDERsK6Ivha78sahYL6t9P0WIGussQiMShZvPZIUzkcuH
XfE9kUrT8SqtoV1/yDpq7rKo29TJkV3nWysP8RpZMgCFMHI/SpkzvDydUIm3do7y
BaiWDLDBFwKBgFJnlxj1W3ZDYVGEAFxD5iEYu3TT3qByl6PEMtbbbVwI7MjWpb/k
7Dp1eI65v0mfS91h9OlJLiQxaAbjaGNNKf4KxDJzrh58vxMCRZ1p3buWlystJLQx
z6uGDNYnU5j6FyXf7I3pyvEcq6TVQLu7MkCoO4zQ3c9xWl+lZEqiOA3XAoGBAJm3
6n45zqb+gdp0PHtbl+ZwFBCR61w996uv/2BFEWP5YxI9LF2rZfbxmdd34eIAtsLV
qQkwXDDSjhOp3kjwYaBRftwhviuWcbVoW+rd70DObQmsc2x/EMOIbpEpi0lw7jFk
aNFWYPAneC7i70zfMEFybQ6Va7rJBuN2FsSWIPHpAoGBAJpwejOBCyP24CbJ8sjT
db0e0dEYsjVQ53kpA85mo7cpDCCnru65pu2GhEkhkIWO6VDBqLWPzRpLpHH/NdIO
FZiMqNW+XMVkjREhBruARvn6+6Y3cuytIUzDboGRpBVAV2+A+wig3QoOLyQbG6DV
oS6co3MfcNR2sts95NIl7yBq
-----END PRIVATE KEY-----
";

/// A certificate for `names` (none: a client's, for [`CLIENT_RSA_KEY`]), signed by
/// `issuer`: its PEM and its key's.
fn new_leaf(
    names: Vec<String>,
    common_name: &str,
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
) -> anyhow::Result<(String, String)> {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let server = !names.is_empty();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = if server {
        KeyPair::generate()?
    } else {
        KeyPair::from_pem(CLIENT_RSA_KEY)?
    };
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

// ---------------------------------------------------------------------------------
// One server
// ---------------------------------------------------------------------------------

/// One `mariadbd` process on its own copy of the template data directory, listening on
/// `127.0.0.1:<free port>` with the binary log on (`ROW`, `log_slave_updates`,
/// `gtid_strict_mode=1`).
///
/// Dropping it sends `SIGCONT` then `SIGKILL`, reaps the process and removes its
/// directory.
pub struct MariaDb {
    name: String,
    mariadbd: PathBuf,
    data_dir: PathBuf,
    /// The address it listens on and clients connect to ([`HOST`] unless
    /// [`StartOptions::host`] said otherwise).
    host: String,
    /// Put before `mariadbd` on its command line ([`StartOptions::command_prefix`]).
    command_prefix: Vec<OsString>,
    port: u16,
    server_id: u32,
    read_only: bool,
    /// Restarted by [`MariaDb::start_again_as_replica`]: read-only, a semi-sync replica,
    /// `--init-rpl-role=SLAVE`.
    as_replica: bool,
    /// TLS required ([`StartOptions::tls`]).
    tls: Option<Arc<Tls>>,
    child: Option<Child>,
    // Last field: removed after `Drop::drop` has killed the process.
    dir: TempDir,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("server_id", &self.server_id)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Where and how [`MariaDb::start_with`] runs a server. The default is what
/// [`MariaDb::start`] does: on [`HOST`], a free port, `mariadbd` started directly.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Put before `mariadbd` on its command line: `ip netns exec <namespace>` runs the
    /// server inside a network namespace (see [`crate::netns`]).
    pub command_prefix: Vec<OsString>,
    /// The address to listen on and to connect to; `None`: [`HOST`].
    pub host: Option<String>,
    /// The port; `None`: a free loopback port (retried if someone takes it first).
    pub port: Option<u16>,
    /// TLS with these certificates, and `require_secure_transport = ON`: every client,
    /// the rig's own included, must speak TLS. `None`: plain TCP.
    pub tls: Option<Arc<Tls>>,
}

impl MariaDb {
    /// Starts one server from the template (users and [`APP_DB`] exist, root has
    /// [`ROOT_PASSWORD`], the binary log is empty) and waits until it accepts
    /// connections. `name` only labels messages; `read_only` sets `--read-only`.
    pub async fn start(name: &str, server_id: u32, read_only: bool) -> anyhow::Result<MariaDb> {
        Self::start_with(name, server_id, read_only, StartOptions::default()).await
    }

    /// As [`MariaDb::start`], where `options` says (another address, a fixed port, a
    /// command prefix such as `ip netns exec <namespace>`).
    pub async fn start_with(
        name: &str,
        server_id: u32,
        read_only: bool,
        options: StartOptions,
    ) -> anyhow::Result<MariaDb> {
        let template = template().await?;
        let dir = tempfile::Builder::new()
            .prefix("fwrig-")
            .tempdir_in(short_temp_base())
            .context("creating a MariaDB server directory")?;
        let data_dir = dir.path().join("data");
        {
            let (from, to) = (template.data_dir.clone(), data_dir.clone());
            tokio::task::spawn_blocking(move || copy_dir_all(&from, &to))
                .await
                .context("copying the template data directory")?
                .with_context(|| {
                    format!(
                        "copying {} to {}",
                        template.data_dir.display(),
                        data_dir.display()
                    )
                })?;
        }
        let mut server = MariaDb {
            name: name.to_owned(),
            mariadbd: template.mariadbd.clone(),
            data_dir,
            host: options.host.unwrap_or_else(|| HOST.to_owned()),
            command_prefix: options.command_prefix,
            port: 0,
            server_id,
            read_only,
            as_replica: false,
            tls: options.tls,
            child: None,
            dir,
        };
        // The free port can be taken by someone else before mariadbd binds it: retry
        // with another port in that case only.
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = match options.port {
                Some(port) => port,
                None => free_port()?,
            };
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) if attempt < 4 && options.port.is_none() && server.bind_failed() => {
                    tracing::debug!(name, port = server.port, "port taken, retrying: {e:#}");
                    server.kill9();
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn bind_failed(&self) -> bool {
        let log = std::fs::read_to_string(self.error_log_path()).unwrap_or_default();
        let last_start = log.rsplit("Starting MariaDB").next().unwrap_or("");
        last_start.contains("Address already in use")
            || last_start.contains("Can't start server: Bind")
    }

    fn command(&self) -> Command {
        let mut cmd = match self.command_prefix.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&self.mariadbd);
                cmd
            }
            None => Command::new(&self.mariadbd),
        };
        cmd.arg("--no-defaults");
        if is_root() {
            cmd.arg("--user=root");
        }
        let dir = self.dir.path();
        if self.as_replica {
            // A crashed semi-sync primary's transactions that no replica acknowledged
            // are rolled back and cut from its binary log at recovery (MariaDB 10.6+).
            cmd.arg("--init-rpl-role=SLAVE");
        }
        cmd.arg(format!("--datadir={}", self.data_dir.display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--bind-address={}", self.host))
            .arg(format!("--socket={}", self.socket_path().display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", self.error_log_path().display()))
            .arg("--skip-name-resolve")
            .arg(format!("--server-id={}", self.server_id))
            .arg("--log-bin=mysql-bin")
            .arg("--relay-log=relay-bin")
            .arg("--binlog-format=ROW")
            .arg("--log-slave-updates")
            .arg("--gtid-strict-mode=1")
            // Semi-synchronous replication, as a careful production pair runs it: the
            // primary acknowledges a commit only once the replica has received it
            // (AFTER_SYNC), so "no acknowledged write lost" is a guarantee the tests can
            // hold the watchdog to. The primary (started writable) waits for the
            // replica's acknowledgement; the replica (started read-only) gives it.
            .arg(format!(
                "--rpl-semi-sync-master-enabled={}",
                u8::from(!self.read_only && !self.as_replica)
            ))
            .arg(format!(
                "--rpl-semi-sync-slave-enabled={}",
                u8::from(self.read_only || self.as_replica)
            ))
            .arg("--rpl-semi-sync-master-wait-point=AFTER_SYNC")
            .arg("--rpl-semi-sync-master-timeout=30000")
            .arg(format!(
                "--read-only={}",
                u8::from(self.read_only || self.as_replica)
            ))
            .args(INNODB_ARGS)
            .arg("--performance-schema=OFF")
            .stdin(Stdio::null());
        if let Some(tls) = &self.tls {
            cmd.arg(format!("--ssl-ca={}", tls.ca_path().display()))
                .arg(format!("--ssl-cert={}", tls.server_cert_path().display()))
                .arg(format!("--ssl-key={}", tls.server_key_path().display()))
                .arg("--require-secure-transport=ON");
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdout.log"))
        {
            Ok(file) => {
                let stderr = file
                    .try_clone()
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null());
                cmd.stdout(file).stderr(stderr);
            }
            Err(_) => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        cmd
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let child = spawn_with_parent_death_signal(self.command())
            .with_context(|| format!("spawning {}", self.mariadbd.display()))?;
        self.child = Some(child);
        self.wait_ready(START_DEADLINE).await
    }

    async fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let opts = self.opts("root", ROOT_PASSWORD);
        loop {
            let Some(child) = self.child.as_mut() else {
                bail!("{} is not running", self.describe());
            };
            if let Some(status) = child.try_wait().context("waiting for mariadbd")? {
                self.child = None;
                bail!(
                    "{} exited before accepting connections ({status}); error log {}:\n{}",
                    self.describe(),
                    self.error_log_path().display(),
                    self.log_tail(40)
                );
            }
            let last_error = match tokio::time::timeout(
                Duration::from_secs(2),
                Conn::new(opts.clone()),
            )
            .await
            {
                Ok(Ok(mut conn)) => {
                    // Whoever answers on the port may be another test's server that took
                    // it first (this one then fails to bind and exits): ours only if it
                    // serves our data directory.
                    let datadir: anyhow::Result<Option<String>> = conn
                        .query_first("SELECT @@GLOBAL.datadir")
                        .await
                        .map_err(Into::into);
                    let _ = conn.disconnect().await;
                    match datadir {
                        Ok(Some(dir)) if self.serves(&dir) => {
                            tracing::debug!(name = %self.name, port = self.port, elapsed = ?started.elapsed(), "mariadbd ready");
                            return Ok(());
                        }
                        Ok(dir) => format!("another server answers on this port (datadir {dir:?})"),
                        Err(e) => format!("{e:#}"),
                    }
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "connect timed out".to_owned(),
            };
            if started.elapsed() > deadline {
                bail!(
                    "{} did not accept connections within {deadline:?} (last error: {last_error}); \
                     error log {}:\n{}",
                    self.describe(),
                    self.error_log_path().display(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether `datadir` (as the server reports it, with a trailing `/`) is this
    /// server's data directory.
    fn serves(&self, datadir: &str) -> bool {
        let reported = Path::new(datadir.trim_end_matches('/'));
        if reported == self.data_dir {
            return true;
        }
        match (
            std::fs::canonicalize(reported),
            std::fs::canonicalize(&self.data_dir),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    fn describe(&self) -> String {
        format!(
            "MariaDB {} ({} on {}:{}, datadir {})",
            self.name,
            self.mariadbd.display(),
            self.host,
            self.port,
            self.data_dir.display()
        )
    }

    /// The last `lines` lines of the server's error log (and of its stdout/stderr).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.error_log_path()).unwrap_or_default();
        let stdout =
            std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        let mut out = if log.trim().is_empty() {
            "(the error log is empty)".to_owned()
        } else {
            tail(&log, lines)
        };
        if !stdout.trim().is_empty() {
            out.push_str("\n--- stdout/stderr ---\n");
            out.push_str(&tail(&stdout, lines));
        }
        out
    }

    /// The label given to [`MariaDb::start`] (`primary`, `replica`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The TCP port on [`MariaDb::host`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: [`HOST`] unless [`StartOptions::host`] said
    /// otherwise.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's `server_id`.
    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// `mysql://user:password@127.0.0.1:port/` (user and password percent-encoded).
    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "mysql://{}:{}@{}:{}/",
            percent_encode(user),
            percent_encode(password),
            self.host,
            self.port
        )
    }

    /// Connection options for `user`: TCP to [`MariaDb::host`] (never the unix socket);
    /// on a TLS server, TLS verified against the test CA, name included.
    pub fn opts(&self, user: &str, password: &str) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.as_str())
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            .ssl_opts(self.tls.as_ref().map(|tls| tls.ssl_opts()))
            .into()
    }

    /// The TLS material it runs with, if it requires TLS.
    pub fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }

    /// Opens a connection as `user`; fails after 10 s (a stopped server never answers).
    pub async fn conn(&self, user: &str, password: &str) -> anyhow::Result<Conn> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(self.opts(user, password))).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => {
                Err(anyhow!(e).context(format!("connecting to {} as {user}", self.describe())))
            }
            Err(_) => bail!(
                "connecting to {} as {user}: no answer within {CONNECT_TIMEOUT:?}",
                self.describe()
            ),
        }
    }

    /// Opens a connection as `root`.
    pub async fn root_conn(&self) -> anyhow::Result<Conn> {
        self.conn("root", ROOT_PASSWORD).await
    }

    /// Runs one statement as `root` on a connection of its own.
    pub async fn execute(&self, statement: &str) -> anyhow::Result<()> {
        let mut conn = self.root_conn().await?;
        conn.query_drop(statement)
            .await
            .with_context(|| format!("{statement} on {}", self.name))?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// Reads a global variable as text, e.g. `global_var("gtid_binlog_pos")`; NULL is "".
    pub async fn global_var(&self, name: &str) -> anyhow::Result<String> {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("not a variable name: {name:?}");
        }
        let mut conn = self.root_conn().await?;
        let value: Option<Option<String>> = conn
            .query_first(format!("SELECT @@GLOBAL.{name}"))
            .await
            .with_context(|| format!("reading @@GLOBAL.{name} on {}", self.describe()))?;
        let _ = conn.disconnect().await;
        Ok(value.flatten().unwrap_or_default())
    }

    /// The row of `SHOW ALL SLAVES STATUS` for the default connection (`""`), by
    /// column name, NULL as ""; `None` if the server replicates from nothing.
    pub async fn slave_status(&self) -> anyhow::Result<Option<HashMap<String, String>>> {
        let mut conn = self.root_conn().await?;
        let status = slave_status_on(&mut conn)
            .await
            .with_context(|| format!("SHOW ALL SLAVES STATUS on {}", self.describe()))?;
        let _ = conn.disconnect().await;
        Ok(status)
    }

    /// Points this server at `source` (`MASTER_USE_GTID=slave_pos`, retry and
    /// heartbeat every second, as [`REPL_USER`]) and runs `START SLAVE`. It does not
    /// wait for the threads to run.
    pub async fn replicate_from(&self, source: &MariaDb) -> anyhow::Result<()> {
        self.replicate_from_address(&source.host, source.port).await
    }

    /// As [`MariaDb::replicate_from`], from whatever listens on `port` on the loopback
    /// address: a [`crate::link::Link`] to the source, for a partition test. Replication
    /// that runs is stopped first; GTID positions carry over.
    pub async fn replicate_from_port(&self, port: u16) -> anyhow::Result<()> {
        self.replicate_from_address(HOST, port).await
    }

    /// As [`MariaDb::replicate_from_port`], from `host:port` as this server sees it (in
    /// a network namespace, a relay on its own loopback address, or another host).
    pub async fn replicate_from_address(&self, host: &str, port: u16) -> anyhow::Result<()> {
        let mut conn = self.root_conn().await?;
        conn.query_drop("STOP SLAVE")
            .await
            .with_context(|| format!("STOP SLAVE on {}", self.describe()))?;
        // On a TLS pair the channel is verified as the watchdog's [replication] asks:
        // the test CA, the source's name.
        let ssl = match &self.tls {
            Some(tls) => format!(
                ", MASTER_SSL=1, MASTER_SSL_CA={}, MASTER_SSL_VERIFY_SERVER_CERT=1",
                quote_sql(&tls.ca_path().display().to_string())
            ),
            None => String::new(),
        };
        let sql = format!(
            "CHANGE MASTER TO MASTER_HOST={}, MASTER_PORT={}, MASTER_USER={}, \
             MASTER_PASSWORD={}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, \
             MASTER_HEARTBEAT_PERIOD=1{ssl}",
            quote_sql(host),
            port,
            quote_sql(REPL_USER),
            quote_sql(REPL_PASSWORD)
        );
        conn.query_drop(sql)
            .await
            .with_context(|| format!("CHANGE MASTER TO on {}", self.describe()))?;
        conn.query_drop("START SLAVE")
            .await
            .with_context(|| format!("START SLAVE on {}", self.describe()))?;
        let _ = conn.disconnect().await;
        Ok(())
    }

    /// The ids in [`APP_DB`]`.`[`APP_TABLE`], ascending.
    pub async fn app_write_ids(&self) -> anyhow::Result<Vec<u64>> {
        let mut conn = self.root_conn().await?;
        let ids: Vec<u64> = conn
            .query(format!("SELECT id FROM {APP_DB}.{APP_TABLE} ORDER BY id"))
            .await
            .with_context(|| format!("reading {APP_DB}.{APP_TABLE} on {}", self.describe()))?;
        let _ = conn.disconnect().await;
        Ok(ids)
    }

    /// The process id while the server runs (also while it is stopped by `SIGSTOP`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `SIGKILL` (after `SIGCONT`, in case it is stopped) and reaps the process.
    /// Does nothing if the server is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process exists (running or stopped); reaps it if it has exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Sends `SIGSTOP`: the process stays, its sockets stay open, nothing answers.
    pub fn sigstop(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGSTOP);
        }
    }

    /// Sends `SIGCONT`, undoing [`MariaDb::sigstop`].
    pub fn sigcont(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGCONT);
        }
    }

    /// Starts the server again on the same data directory, port and options (after
    /// [`MariaDb::kill9`]), and waits until it accepts connections. A replica resumes
    /// replicating on its own. Fails if the server is still running.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_none() {
                let pid = child.id();
                bail!("{} is still running (pid {pid})", self.describe());
            }
            self.child = None;
        }
        self.spawn_and_wait().await
    }

    /// As [`MariaDb::start_again`], the way a crashed semi-sync primary comes back to
    /// rejoin its pair: read-only, as a semi-sync replica, with `--init-rpl-role=SLAVE`,
    /// so its recovery drops the transactions it had written but no replica had
    /// acknowledged (never acknowledged to a client either): it holds no transaction
    /// the new primary lacks. It stays so for later restarts.
    pub async fn start_again_as_replica(&mut self) -> anyhow::Result<()> {
        self.as_replica = true;
        self.start_again().await
    }

    /// As [`MariaDb::start_again`], the way a primary comes back when nothing tells it
    /// otherwise (no `read_only` in its my.cnf): writable, a semi-sync primary. It stays
    /// so for later restarts.
    pub async fn start_again_writable(&mut self) -> anyhow::Result<()> {
        self.as_replica = false;
        self.read_only = false;
        self.start_again().await
    }

    /// The data directory (`datadir`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's error log (`--log-error`).
    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// The server's unix socket (`--socket`).
    pub fn socket_path(&self) -> PathBuf {
        self.dir.path().join("sock")
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child,
    // so it cannot have been reused.
    unsafe {
        libc::kill(pid, sig);
    }
}

async fn slave_status_on(conn: &mut Conn) -> anyhow::Result<Option<HashMap<String, String>>> {
    let rows: Vec<Row> = conn.query("SHOW ALL SLAVES STATUS").await?;
    Ok(rows
        .iter()
        .map(row_to_map)
        .find(|m| m.get("Connection_name").is_some_and(String::is_empty)))
}

// ---------------------------------------------------------------------------------
// The pair
// ---------------------------------------------------------------------------------

/// A primary and a GTID replica of it, both from the template.
///
/// The replica runs with `read_only=1` and replicates with `MASTER_USE_GTID=slave_pos`
/// from the start of the primary's (empty) binary log. Each server owns its temporary
/// directory, so the pair can be taken apart.
#[derive(Debug)]
pub struct MariaDbPair {
    /// `server_id` [`PRIMARY_SERVER_ID`], writable.
    pub primary: MariaDb,
    /// `server_id` [`REPLICA_SERVER_ID`], `read_only=1`, replicating from `primary`.
    pub replica: MariaDb,
}

impl MariaDbPair {
    /// Starts both servers at once, starts replication and waits until the replica
    /// threads run and the replica has caught up.
    pub async fn start() -> anyhow::Result<MariaDbPair> {
        Self::start_with(None).await
    }

    /// As [`MariaDbPair::start`], both servers requiring TLS with `tls`'s certificates
    /// (`require_secure_transport = ON`), the channel verified against its CA.
    pub async fn start_with_tls(tls: Arc<Tls>) -> anyhow::Result<MariaDbPair> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<Arc<Tls>>) -> anyhow::Result<MariaDbPair> {
        let started = Instant::now();
        let options = StartOptions {
            tls,
            ..StartOptions::default()
        };
        let (primary, replica) = tokio::try_join!(
            MariaDb::start_with("primary", PRIMARY_SERVER_ID, false, options.clone()),
            MariaDb::start_with("replica", REPLICA_SERVER_ID, true, options.clone()),
        )?;
        let pair = MariaDbPair { primary, replica };
        pair.replica.replicate_from(&pair.primary).await?;
        pair.wait_replica_running(REPLICATION_DEADLINE).await?;
        pair.wait_replica_caught_up(REPLICATION_DEADLINE).await?;
        tracing::debug!(elapsed = ?started.elapsed(), "MariaDB pair ready");
        Ok(pair)
    }

    /// Waits until `Slave_IO_Running` and `Slave_SQL_Running` are both `Yes`.
    pub async fn wait_replica_running(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut conn = self.replica.root_conn().await?;
        loop {
            let status = slave_status_on(&mut conn).await?;
            let last = match &status {
                Some(s)
                    if s.get("Slave_IO_Running").map(String::as_str) == Some("Yes")
                        && s.get("Slave_SQL_Running").map(String::as_str) == Some("Yes") =>
                {
                    let _ = conn.disconnect().await;
                    return Ok(());
                }
                Some(s) => summarize_status(s),
                None => "no replication configured".to_owned(),
            };
            if started.elapsed() > timeout {
                bail!(
                    "replica threads not running after {timeout:?}: {last}\nreplica error log:\n{}",
                    self.replica.log_tail(20)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the replica's `gtid_slave_pos` has reached the primary's
    /// `gtid_binlog_pos` in every domain.
    pub async fn wait_replica_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut primary = self.primary.root_conn().await?;
        let mut replica = self.replica.root_conn().await?;
        loop {
            let target: Option<String> = primary
                .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                .await?;
            let target = target.unwrap_or_default();
            let reached: Option<String> = replica
                .query_first("SELECT @@GLOBAL.gtid_slave_pos")
                .await?;
            let reached = reached.unwrap_or_default();
            if gtid_pos_reached(&reached, &target)? {
                let _ = primary.disconnect().await;
                let _ = replica.disconnect().await;
                return Ok(());
            }
            if started.elapsed() > timeout {
                let status = slave_status_on(&mut replica)
                    .await?
                    .map(|s| summarize_status(&s))
                    .unwrap_or_else(|| "no replication configured".to_owned());
                bail!(
                    "replica not caught up after {timeout:?}: primary gtid_binlog_pos={target:?}, \
                     replica gtid_slave_pos={reached:?}; {status}"
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The replica's `SHOW ALL SLAVES STATUS` row for the default connection (`""`),
    /// by column name, NULL as "". An error if the replica has no such connection.
    pub async fn replica_status(&self) -> anyhow::Result<HashMap<String, String>> {
        self.replica
            .slave_status()
            .await?
            .ok_or_else(|| anyhow!("the replica has no default replication connection"))
    }
}

fn summarize_status(s: &HashMap<String, String>) -> String {
    let get = |k: &str| s.get(k).map(String::as_str).unwrap_or("?");
    format!(
        "Slave_IO_Running={} Slave_SQL_Running={} Last_IO_Error={:?} Last_SQL_Error={:?} Gtid_IO_Pos={}",
        get("Slave_IO_Running"),
        get("Slave_SQL_Running"),
        get("Last_IO_Error"),
        get("Last_SQL_Error"),
        get("Gtid_IO_Pos"),
    )
}

// ---------------------------------------------------------------------------------
// Write load
// ---------------------------------------------------------------------------------

/// A background task that inserts rows into [`APP_DB`]`.`[`APP_TABLE`] as fast as it
/// can, one autocommit `INSERT` per row on one connection as `root`, ids counting up
/// from `MAX(id)+1` (1 on a fresh table). It records each id whose `INSERT` was
/// acknowledged and stops by itself on the first error (e.g. the server died).
///
/// Dropping it aborts the task.
#[derive(Debug)]
pub struct WriteLoad {
    acked: Arc<Mutex<Vec<u64>>>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl WriteLoad {
    /// Starts the load against `primary` on the current tokio runtime.
    pub fn start(primary: &MariaDb) -> WriteLoad {
        let opts = primary.opts("root", ROOT_PASSWORD);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let error = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write_loop(opts, acked.clone(), error.clone(), stop.clone()));
        WriteLoad {
            acked,
            error,
            stop,
            task: Some(task),
        }
    }

    /// How many `INSERT`s have been acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    /// Whether the task has ended (by an error or by [`WriteLoad::stop`]).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The error that ended the load, if one did.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// Waits until at least `n` rows are acknowledged; fails if the load ends first or
    /// `timeout` passes.
    pub async fn wait_for_acks(&self, n: usize, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let count = self.acked_count();
            if count >= n {
                return Ok(());
            }
            if self.is_finished() {
                bail!(
                    "write load ended after {count} acknowledged rows (wanted {n}): {}",
                    self.error().unwrap_or_else(|| "stopped".to_owned())
                );
            }
            if started.elapsed() > timeout {
                bail!("write load acknowledged {count} rows in {timeout:?}, wanted {n}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the load if it still runs (an `INSERT` in flight is abandoned and not
    /// counted) and returns the acknowledged ids, ascending.
    pub async fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for WriteLoad {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn write_loop(
    opts: Opts,
    acked: Arc<Mutex<Vec<u64>>>,
    error: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
) {
    let fail = |e: String| {
        if let Ok(mut slot) = error.lock() {
            *slot = Some(e);
        }
    };
    let mut conn = match Conn::new(opts).await {
        Ok(conn) => conn,
        Err(e) => return fail(format!("connecting: {e}")),
    };
    let max: Result<Option<Option<u64>>, _> = conn
        .query_first(format!("SELECT MAX(id) FROM {APP_DB}.{APP_TABLE}"))
        .await;
    let mut id = match max {
        Ok(max) => max.flatten().unwrap_or(0) + 1,
        Err(e) => return fail(format!("reading MAX(id): {e}")),
    };
    while !stop.load(Ordering::SeqCst) {
        let sql =
            format!("INSERT INTO {APP_DB}.{APP_TABLE} (id, payload) VALUES ({id}, 'row {id}')");
        if let Err(e) = conn.query_drop(sql).await {
            return fail(format!("INSERT id {id}: {e}"));
        }
        if let Ok(mut a) = acked.lock() {
            a.push(id);
        }
        id += 1;
    }
    let _ = conn.disconnect().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose port another server already holds must not pass for ready
    /// because the other one answers there: it exits on the bind error and says so.
    #[tokio::test]
    async fn a_server_is_ready_only_when_its_own_process_answers_on_the_port() -> anyhow::Result<()>
    {
        let holder = MariaDb::start("holder", 1, false).await?;
        let options = StartOptions {
            port: Some(holder.port()),
            ..StartOptions::default()
        };
        let err = MariaDb::start_with("late", 2, false, options)
            .await
            .expect_err("the port is taken");
        assert!(
            format!("{err:#}").contains("exited before accepting connections"),
            "{err:#}"
        );
        assert_eq!(holder.global_var("server_id").await?, "1");
        Ok(())
    }

    #[test]
    fn gtid_positions_compare_by_domain() {
        assert!(gtid_pos_reached("", "").unwrap());
        assert!(gtid_pos_reached("0-1-5", "").unwrap());
        assert!(!gtid_pos_reached("", "0-1-1").unwrap());
        assert!(gtid_pos_reached("0-2-7", "0-1-7").unwrap());
        assert!(!gtid_pos_reached("0-1-6", "0-1-7").unwrap());
        assert!(gtid_pos_reached("0-1-9,1-1-3", "1-1-3,0-1-8").unwrap());
        assert!(!gtid_pos_reached("0-1-9", "0-1-8,1-1-1").unwrap());
        assert!(parse_gtid_pos("0-1").is_err());
    }

    #[test]
    fn missing_binary_is_an_error_naming_it() {
        let err = find_binary("no-such-mariadbd-for-rig", "RIG_TEST_UNSET_VARIABLE").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("no-such-mariadbd-for-rig"), "{msg}");
        assert!(msg.contains("/usr/sbin"), "{msg}");
    }

    #[test]
    fn url_encodes_credentials() {
        assert_eq!(percent_encode("a b@c:d"), "a%20b%40c%3Ad");
        assert_eq!(percent_encode("rig-root-pw"), "rig-root-pw");
    }

    async fn exec(conn: &mut Conn, sql: &str) -> anyhow::Result<()> {
        conn.query_drop(sql).await.with_context(|| sql.to_owned())
    }

    #[tokio::test]
    async fn pair_replicates_with_the_documented_accounts() -> anyhow::Result<()> {
        let started = Instant::now();
        let pair = MariaDbPair::start().await?;
        eprintln!("pair started in {:?}", started.elapsed());

        // A row written on the primary reaches the replica.
        let mut p = pair.primary.root_conn().await?;
        exec(
            &mut p,
            "INSERT INTO app.writes (id, payload) VALUES (1, 'hello')",
        )
        .await?;
        pair.wait_replica_caught_up(Duration::from_secs(10)).await?;
        assert_eq!(pair.replica.app_write_ids().await?, vec![1]);

        // The replica is read-only; the primary is not.
        assert_eq!(pair.replica.global_var("read_only").await?, "1");
        assert_eq!(pair.primary.global_var("read_only").await?, "0");
        assert_eq!(pair.primary.global_var("server_id").await?, "1");
        assert_eq!(pair.replica.global_var("server_id").await?, "2");
        assert_eq!(pair.primary.global_var("gtid_strict_mode").await?, "1");

        let status = pair.replica_status().await?;
        assert_eq!(status["Slave_IO_Running"], "Yes");
        assert_eq!(status["Slave_SQL_Running"], "Yes");
        assert_eq!(status["Using_Gtid"], "Slave_Pos");
        assert_eq!(status["Master_Port"], pair.primary.port().to_string());
        assert_eq!(status["Last_IO_Error"], "");

        // The watchdog account: SELECT 1 on the primary, nothing else.
        let mut w = pair.primary.conn(WATCHDOG_USER, WATCHDOG_PASSWORD).await?;
        let one: Option<i64> = w.query_first("SELECT 1").await?;
        assert_eq!(one, Some(1));
        assert!(w.query_drop("SELECT * FROM app.writes").await.is_err());
        assert!(w.query_drop("SHOW ALL SLAVES STATUS").await.is_err());
        w.disconnect().await?;
        // The URL form works too.
        let mut w = Conn::from_url(pair.primary.url(WATCHDOG_USER, WATCHDOG_PASSWORD)).await?;
        w.query_drop("SELECT 1").await?;
        w.disconnect().await?;

        // The failover account can do the whole promotion on the replica.
        let mut f = pair.replica.conn(FAILOVER_USER, FAILOVER_PASSWORD).await?;
        let rows: Vec<Row> = f.query("SHOW ALL SLAVES STATUS").await?;
        assert_eq!(rows.len(), 1);
        assert_eq!(row_to_map(&rows[0])["Slave_SQL_Running"], "Yes");
        let (binlog, slave, current): (String, String, String) = f
            .query_first("SELECT @@gtid_binlog_pos, @@gtid_slave_pos, @@gtid_current_pos")
            .await?
            .context("no row")?;
        assert_eq!(slave, pair.primary.global_var("gtid_binlog_pos").await?);
        assert_eq!(binlog, slave, "log_slave_updates writes replicated events");
        assert_eq!(current, slave);
        let waited: Option<i64> = f
            .query_first(format!("SELECT MASTER_GTID_WAIT('{slave}', 5)"))
            .await?;
        assert_eq!(waited, Some(0));
        exec(&mut f, "SHOW MASTER STATUS").await?;
        exec(&mut f, "STOP SLAVE").await?;
        // Writes mysql.gtid_slave_pos: needs READ_ONLY ADMIN while read_only=1.
        exec(&mut f, &format!("SET GLOBAL gtid_slave_pos = '{slave}'")).await?;
        exec(&mut f, "CHANGE MASTER TO MASTER_CONNECT_RETRY = 1").await?;
        exec(&mut f, "START SLAVE").await?;
        exec(&mut f, "STOP ALL SLAVES").await?;
        exec(&mut f, "RESET SLAVE ALL").await?;
        exec(&mut f, "SET GLOBAL read_only = 0").await?;
        f.disconnect().await?;
        assert_eq!(pair.replica.global_var("read_only").await?, "0");
        assert!(pair.replica.slave_status().await?.is_none());
        assert!(pair.replica_status().await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn kill9_sigstop_and_restart() -> anyhow::Result<()> {
        let mut pair = MariaDbPair::start().await?;
        let pid = pair.primary.pid().context("primary has no pid")?;

        // SIGSTOP: connections hang, SIGCONT: they work again.
        pair.primary.sigstop();
        let stopped = tokio::time::timeout(
            Duration::from_millis(500),
            Conn::new(pair.primary.opts("root", ROOT_PASSWORD)),
        )
        .await;
        assert!(stopped.is_err(), "a stopped server answered");
        pair.primary.sigcont();
        pair.primary.root_conn().await?.disconnect().await?;

        // kill9: the process is gone and reaped, connections are refused.
        assert!(pair.primary.is_running());
        pair.primary.kill9();
        assert!(!pair.primary.is_running());
        assert_eq!(pair.primary.pid(), None);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "not reaped");
        let err = pair.primary.root_conn().await.unwrap_err();
        assert!(
            format!("{err:#}").contains(&pair.primary.port().to_string()),
            "{err:#}"
        );
        assert!(pair.primary.start_again().await.is_ok());
        assert!(pair.primary.start_again().await.is_err(), "already running");

        // The replica reconnects by itself and replicates new writes.
        let mut p = pair.primary.root_conn().await?;
        exec(
            &mut p,
            "INSERT INTO app.writes (id, payload) VALUES (7, 'after restart')",
        )
        .await?;
        p.disconnect().await?;
        pair.wait_replica_caught_up(Duration::from_secs(20)).await?;
        assert_eq!(pair.replica.app_write_ids().await?, vec![7]);
        Ok(())
    }

    #[tokio::test]
    async fn write_load_acknowledges_rows_and_stops_when_the_primary_dies() -> anyhow::Result<()> {
        let mut pair = MariaDbPair::start().await?;

        let load = WriteLoad::start(&pair.primary);
        load.wait_for_acks(50, Duration::from_secs(20)).await?;
        let ids = load.stop().await;
        assert!(ids.len() >= 50);
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        pair.wait_replica_caught_up(Duration::from_secs(20)).await?;
        assert_eq!(pair.replica.app_write_ids().await?, ids);

        // A second load continues after the last id; killing the primary ends it.
        let load = WriteLoad::start(&pair.primary);
        load.wait_for_acks(20, Duration::from_secs(20)).await?;
        let t0 = Instant::now();
        pair.primary.kill9();
        while !load.is_finished() {
            assert!(t0.elapsed() < Duration::from_secs(5), "load did not notice");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(load.error().is_some());
        let more = load.stop().await;
        assert!(more.len() >= 20);
        let first = ids.len() as u64 + 1;
        assert_eq!(more, (first..first + more.len() as u64).collect::<Vec<_>>());

        // Every acknowledged row survived the crash on the primary.
        pair.primary.start_again().await?;
        let on_primary = pair.primary.app_write_ids().await?;
        for id in ids.iter().chain(&more) {
            assert!(
                on_primary.binary_search(id).is_ok(),
                "acknowledged id {id} lost"
            );
        }
        Ok(())
    }
}
