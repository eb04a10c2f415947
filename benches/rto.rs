//! The recovery-time benchmark: `cargo bench --bench rto` (runs: `RTO_RUNS`, default 5).
//!
//! Each run starts a fresh stage (a real MariaDB pair, the stand-ins), runs the real
//! daemon with interval 1 s and threshold 3, measures its idle RSS, kills the primary
//! with SIGKILL and measures:
//!
//! - RTO: from the kill to both DNS records pointing at the standby (the stand-in's own
//!   state, polled every 5 ms);
//! - detection: from the kill to the decision (the journal's `started_at`);
//! - overhead: RTO minus the detection window (interval x threshold = 3 s). It is
//!   negative when the kill lands between two rounds: the first failed round then comes
//!   less than an interval after it. Runs spread the kill across the interval;
//! - promotion: from the decision to `update_dns` done, records read back included.
//!
//! With `RTO_FAULT=hang` the primary is frozen with SIGSTOP instead of killed: TCP still
//! accepts, nothing answers, the replica's connection stays up and falls silent. That is
//! the case replication silence must confirm; the goal is DNS at the standby within
//! failures x interval + 3 x timeout + 0.6 s of the hang. The probe timeout is
//! `RTO_TIMEOUT_MS` (default 400) and the replica's heartbeat period `RTO_HEARTBEAT_MS`
//! (default 500), set with CHANGE MASTER before the daemon starts.
//!
//! `RTO_BIN=PATH` runs another build of the binary (an older one, to compare).
//!
//! With `RTO_WITNESSES=N` the daemon has N witnesses (`failover-watchdog witness`, each
//! reaching the primary directly), so every failed round also waits for their vote; the
//! witnesses' idle RSS is printed too.
//!
//! It prints figures; it asserts no target.

use std::path::Path;
use std::time::Duration;

use failover_watchdog_rig::stage::Stage;
use jiff::Timestamp;
use mysql_async::prelude::Queryable;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(3);
/// The stage's probe timeout, replaced by `RTO_TIMEOUT_MS`.
const STAGE_TIMEOUT: &str = "timeout = \"500ms\"";

/// What happens to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9`: connections refused at once.
    Kill,
    /// SIGSTOP: connections accepted and never answered.
    Hang,
}

/// The run's settings, from the environment.
#[derive(Debug, Clone, Copy)]
struct Setup {
    fault: Fault,
    witnesses: usize,
    timeout: Duration,
    heartbeat: Duration,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    rto: Duration,
    detection: Duration,
    promotion: Duration,
    idle_rss_kib: u64,
    /// The promotion's slowest step and how long it took.
    slowest_step: (String, Duration),
    /// The first witness's, when there are witnesses.
    witness_rss_kib: Option<u64>,
}

impl Figures {
    /// RTO minus the detection window, signed.
    fn overhead(&self) -> f64 {
        self.rto.as_secs_f64() - WINDOW.as_secs_f64()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runs = env_number("RTO_RUNS", 5) as usize;
    let setup = Setup {
        fault: match std::env::var("RTO_FAULT").as_deref() {
            Ok("hang") => Fault::Hang,
            Ok("kill") | Err(_) => Fault::Kill,
            Ok(other) => anyhow::bail!("RTO_FAULT is kill or hang, not {other:?}"),
        },
        witnesses: env_number("RTO_WITNESSES", 0) as usize,
        timeout: Duration::from_millis(env_number("RTO_TIMEOUT_MS", 400)),
        heartbeat: Duration::from_millis(env_number("RTO_HEARTBEAT_MS", 500)),
    };
    let goal = WINDOW + 3 * setup.timeout + Duration::from_millis(600);
    let bin = std::env::var_os("RTO_BIN").map_or_else(
        || Path::new(env!("CARGO_BIN_EXE_failover-watchdog")).to_path_buf(),
        std::path::PathBuf::from,
    );
    let bin = bin.as_path();
    println!(
        "RTO benchmark: {runs} runs, {:?} of the primary, interval 1 s, threshold 3 (detection window {} s), timeout {} ms, heartbeat {} ms, {} witnesses; goal: DNS within {:.1} s",
        setup.fault,
        WINDOW.as_secs(),
        setup.timeout.as_millis(),
        setup.heartbeat.as_millis(),
        setup.witnesses,
        goal.as_secs_f64()
    );
    println!(
        "{:>4} {:>10} {:>9} {:>13} {:>12} {:>13} {:>14}  slowest step",
        "run",
        "kill phase",
        "RTO (s)",
        "detection (s)",
        "overhead (s)",
        "promotion (s)",
        "idle RSS (MiB)"
    );
    let mut all = Vec::new();
    for run in 1..=runs {
        // Spread the kill across the probe interval.
        let phase = Duration::from_millis((run as u64 * 1000 / runs as u64) % 1000);
        let figures = one_run(bin, phase, setup).await?;
        println!(
            "{run:>4} {:>10} {:>9.3} {:>13.3} {:>12.3} {:>13.3} {:>14.1}  {} {:.3} s",
            format!("+{} ms", phase.as_millis()),
            figures.rto.as_secs_f64(),
            figures.detection.as_secs_f64(),
            figures.overhead(),
            figures.promotion.as_secs_f64(),
            figures.idle_rss_kib as f64 / 1024.0,
            figures.slowest_step.0,
            figures.slowest_step.1.as_secs_f64()
        );
        all.push(figures);
    }
    let summary = |name: &str, mut values: Vec<f64>, unit: &str| {
        values.sort_by(f64::total_cmp);
        println!(
            "{name:<29} min {:>7.3}  median {:>7.3}  max {:>7.3} {unit}",
            values[0],
            values[values.len() / 2],
            values[values.len() - 1]
        );
    };
    println!();
    summary(
        "RTO (fault to DNS)",
        all.iter().map(|f| f.rto.as_secs_f64()).collect(),
        "s",
    );
    println!(
        "{:<29} {} of {runs} runs",
        "within the goal",
        all.iter().filter(|f| f.rto <= goal).count()
    );
    summary(
        "detection (fault to decision)",
        all.iter().map(|f| f.detection.as_secs_f64()).collect(),
        "s",
    );
    summary(
        "overhead above the window",
        all.iter().map(Figures::overhead).collect(),
        "s",
    );
    summary(
        "promotion (decision to DNS)",
        all.iter().map(|f| f.promotion.as_secs_f64()).collect(),
        "s",
    );
    summary(
        "daemon idle RSS",
        all.iter().map(|f| f.idle_rss_kib as f64 / 1024.0).collect(),
        "MiB",
    );
    if setup.witnesses > 0 {
        summary(
            "witness idle RSS",
            all.iter()
                .filter_map(|f| f.witness_rss_kib)
                .map(|kib| kib as f64 / 1024.0)
                .collect(),
            "MiB",
        );
    }
    Ok(())
}

async fn one_run(bin: &Path, phase: Duration, setup: Setup) -> anyhow::Result<Figures> {
    let mut stage = Stage::start(bin).await;
    let mut replica = stage.db.replica.root_conn().await?;
    replica
        .query_drop(format!(
            "STOP SLAVE; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = {}; START SLAVE",
            setup.heartbeat.as_secs_f64()
        ))
        .await?;
    drop(replica);
    anyhow::ensure!(
        stage.config().contains(STAGE_TIMEOUT),
        "the stage's config no longer has {STAGE_TIMEOUT}"
    );
    let config = stage.config().replace(
        STAGE_TIMEOUT,
        &format!("timeout = \"{}ms\"", setup.timeout.as_millis()),
    );
    stage.write_config(&config);
    let mut running = Vec::new();
    for i in 0..setup.witnesses {
        running.push(
            stage
                .spawn_witness(&format!("w{i}"), &stage.primary_checks())
                .await,
        );
    }
    if setup.witnesses > 0 {
        let listed: Vec<_> = running.iter().collect();
        stage.write_config(&format!(
            "{config}{}",
            Stage::witnesses_config(&listed, "witness.token")
        ));
    }
    let daemon = stage.spawn_daemon();
    stage
        .wait_for_status("a healthy round", Duration::from_secs(30), |s| {
            s["last_probe"]["ok"] == true
        })
        .await;
    // A few idle rounds, then the resident set.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = daemon
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the daemon exited"))?;
    let idle_rss_kib = rss_kib(pid)?;
    let witness_rss_kib = match running.first().and_then(|w| w.pid()) {
        Some(pid) => Some(rss_kib(pid)?),
        None => None,
    };

    // Align on a round (the live state's probe time), then wait `phase` into the interval.
    let last_round: Timestamp = stage.status().await["last_probe"]["at"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let next_round = last_round + Duration::from_secs(1);
    let until_phase = next_round
        .duration_since(Timestamp::now())
        .as_secs_f64()
        .rem_euclid(1.0);
    tokio::time::sleep(Duration::from_secs_f64(until_phase) + phase).await;

    let killed = Instant::now();
    let killed_at = Timestamp::now();
    match setup.fault {
        Fault::Kill => stage.db.primary.kill9(),
        Fault::Hang => stage.db.primary.sigstop(),
    }
    let deadline = killed + Duration::from_secs(60);
    while !stage.dns_points_at_standby() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no DNS change within 60 s:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rto = killed.elapsed();
    let status = stage
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    let started: Timestamp = status["promotion"]["started_at"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let dns_done: Timestamp = status["promotion"]["steps"][3]["finished_at"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let promotion = Duration::try_from(dns_done.duration_since(started))?;
    let slowest_step = status["promotion"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .take(4)
        .filter_map(|step| {
            let at = |key: &str| step[key].as_str()?.parse::<Timestamp>().ok();
            let took = Duration::try_from(at("finished_at")?.duration_since(at("started_at")?));
            Some((step["name"].as_str()?.to_string(), took.ok()?))
        })
        .max_by_key(|(_, took)| *took)
        .unwrap_or_default();
    let detection = Duration::try_from(started.duration_since(killed_at))?;
    daemon.stop().await;
    if setup.fault == Fault::Hang {
        // A stopped server would outlive the stage: let it be killed.
        stage.db.primary.sigcont();
    }
    Ok(Figures {
        rto,
        detection,
        promotion,
        idle_rss_kib,
        slowest_step,
        witness_rss_kib,
    })
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}
