//! What TLS costs a probe round: `cargo bench --bench tls` (rounds per figure:
//! `TLS_ROUNDS`, default 200; the WAN delay: `TLS_RTT_MS`, default 40).
//!
//! Two real MariaDB servers from the rig's template, one plain, one requiring TLS with
//! certificates made at start (rcgen). Each round is the daemon's own probe round with
//! one `mysql` check (`Prober::run_round`: connect, handshake, login, the check's
//! `SELECT`, disconnect), timed whole; the rounds alternate between the two servers, so
//! both see the same machine. It prints the median and the 90th percentile of:
//!
//! - on loopback: the CPU the TLS 1.3 handshake (ECDSA P-256) adds;
//! - through a relay that holds each chunk for half of `TLS_RTT_MS` each way, as a link
//!   between regions would: the round trips the handshake adds.
//!
//! It prints figures; it asserts no target.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use failover_watchdog::config::{CheckConfig, FailWhen, PemFile, TlsConfig, TlsMode};
use failover_watchdog::probe::Prober;
use failover_watchdog::secret::Secret;
use failover_watchdog_rig::mariadb::{self, MariaDb, StartOptions, Tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `mysql` check of the server at `port`, as the config would have it.
fn check(port: u16, tls: TlsConfig) -> CheckConfig {
    CheckConfig::Mysql {
        host: mariadb::HOST.to_string(),
        port,
        user: mariadb::WATCHDOG_USER.to_string(),
        password: Secret::inline(mariadb::WATCHDOG_PASSWORD),
        tls,
    }
}

/// One probe round of `check`, timed; fails the bench if the check fails.
async fn timed_round(check: &CheckConfig) -> Duration {
    let prober = Prober::for_checks(
        std::slice::from_ref(check),
        Duration::from_secs(10),
        FailWhen::Any,
    )
    .unwrap();
    let started = Instant::now();
    let round = prober.run_round().await;
    let took = started.elapsed();
    assert!(round.ok, "the check failed: {:?}", round.checks);
    assert_eq!(round.checks[0].detail, "SELECT 1 answered");
    took
}

/// The median and the 90th percentile of `samples`, in milliseconds.
fn figures(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (
        at(0.5).as_secs_f64() * 1000.0,
        at(0.9).as_secs_f64() * 1000.0,
    )
}

/// `rounds` rounds of each check, alternating; prints a line per check.
async fn measure(label: &str, plain: &CheckConfig, tls: &CheckConfig, rounds: u64) {
    let (mut without, mut with) = (Vec::new(), Vec::new());
    // One of each first, unmeasured: the template's caches, the relay's first accept.
    timed_round(plain).await;
    timed_round(tls).await;
    for _ in 0..rounds {
        without.push(timed_round(plain).await);
        with.push(timed_round(tls).await);
    }
    let (plain_median, plain_p90) = figures(without);
    let (tls_median, tls_p90) = figures(with);
    println!(
        "{label:<28} without TLS: median {plain_median:7.2} ms, p90 {plain_p90:7.2} ms | \
         verify_identity: median {tls_median:7.2} ms, p90 {tls_p90:7.2} ms | \
         cost: {:+.2} ms ({:.1}x)",
        tls_median - plain_median,
        tls_median / plain_median
    );
}

/// A TCP relay on the loopback address to `target` that holds each chunk for `delay`
/// in each direction, in order; returns its port.
async fn delaying_relay(target: SocketAddr, delay: Duration) -> u16 {
    let listener = TcpListener::bind((mariadb::HOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, delay));
            tokio::spawn(pump(server_read, client_write, delay));
        }
    });
    port
}

/// Copies `from` to `to`, each chunk written `delay` after it was read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
            {
                break;
            }
        }
    });
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds = env_number("TLS_ROUNDS", 200);
    let rtt = Duration::from_millis(env_number("TLS_RTT_MS", 40));
    let certificates = Arc::new(Tls::generate(&[mariadb::HOST]).unwrap());
    let ca = PemFile {
        path: certificates.ca_path(),
        pem: std::fs::read(certificates.ca_path()).unwrap().into(),
    };
    let verified = TlsConfig {
        mode: TlsMode::VerifyIdentity,
        ca: Some(ca),
        client: None,
    };
    let (plain, secure) = tokio::try_join!(
        MariaDb::start("plain", 1, false),
        MariaDb::start_with(
            "tls",
            2,
            false,
            StartOptions {
                tls: Some(certificates.clone()),
                ..StartOptions::default()
            },
        ),
    )
    .expect("the servers start");
    println!(
        "A probe round with one mysql check (connect, handshake, login, SELECT, disconnect); \
         {rounds} rounds each, alternating."
    );
    measure(
        "loopback",
        &check(plain.port(), TlsConfig::DISABLED),
        &check(secure.port(), verified.clone()),
        rounds,
    )
    .await;

    let address = |server: &MariaDb| SocketAddr::from(([127, 0, 0, 1], server.port()));
    let (plain_relay, secure_relay) = (
        delaying_relay(address(&plain), rtt / 2).await,
        delaying_relay(address(&secure), rtt / 2).await,
    );
    let label = format!("{} ms round trip", rtt.as_millis());
    measure(
        &label,
        &check(plain_relay, TlsConfig::DISABLED),
        &check(secure_relay, verified),
        (rounds / 10).max(10),
    )
    .await;
}
