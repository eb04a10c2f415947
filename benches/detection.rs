//! The detection benchmark at the shipped defaults: `sudo cargo bench --bench detection`
//! (root: the runs are on the network of namespaces, `failover_watchdog_rig::netns`).
//!
//! The daemon runs with the defaults of every key of detection: interval 60 s, suspect
//! interval 5 s, 5 failures, timeout 10 s, no witnesses; the replica's heartbeat is the
//! 5 s the README recommends. Each run starts a fresh stage, waits for a healthy round,
//! lets the fault land at a point of the calm interval (spread over the runs), and
//! measures from the fault:
//!
//! - detection: to the decision (the promotion journal's `started_at`);
//! - recovery: to both DNS records at the standby (the stand-in's own state, polled);
//!
//! and prints the detection window the daemon's `status` gave at that moment.
//!
//! Faults (`DETECTION_FAULT`, default `all`): `kill` (`kill -9` of the primary's
//! MariaDB: connections refused, the replica's connection reset), `blackhole` (every
//! packet to and from the primary's host dropped, no reset), and `idle` (no fault: the
//! daemon's CPU, as a share of one core, and memory over `DETECTION_IDLE_SECS`, default
//! 180, with the replica watched between rounds and without it, `suspect_interval =
//! interval`; the replica's MariaDB's CPU too, which answers the watch's reads).
//! `DETECTION_RUNS` (default 3) runs of each fault. Goals (printed, not asserted): kill
//! within 30 s, blackhole within 60 s, in every run.

use std::path::Path;
use std::time::Duration;

use failover_watchdog_rig::netns::stage::{NetStage, Setup};
use failover_watchdog_rig::netns::{Cut, Host, Network};
use jiff::Timestamp;
use tokio::time::Instant;

const INTERVAL: Duration = Duration::from_secs(60);

/// What is done to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Blackhole,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Blackhole => "blackhole",
        }
    }

    fn goal(self) -> Duration {
        match self {
            Fault::Kill => Duration::from_secs(30),
            Fault::Blackhole => Duration::from_secs(60),
        }
    }
}

/// The shipped defaults of detection, no witnesses, the recommended 5 s heartbeat;
/// `watch`: the default suspect interval (5 s), else `suspect_interval = interval`.
fn shipped(watch: bool) -> Setup {
    Setup {
        interval: INTERVAL,
        suspect_interval: (!watch).then_some(INTERVAL),
        failures_before_promotion: 5,
        probe_timeout: Duration::from_secs(10),
        witness_timeout: Duration::from_secs(20),
        witnesses: 0,
        witness_probe_timeout: None,
        heartbeat: Some(Duration::from_secs(5)),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Figures {
    phase: Duration,
    detection: Duration,
    recovery: Duration,
    /// The daemon's own window at the fault: dead, silent.
    window: (f64, Option<f64>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Network::preflight()?;
    let runs = env_number("DETECTION_RUNS", 3);
    let which = std::env::var("DETECTION_FAULT").unwrap_or_else(|_| "all".into());
    let bin = Path::new(env!("CARGO_BIN_EXE_failover-watchdog"));
    println!(
        "detection benchmark at the shipped defaults: interval 60 s, suspect interval 5 s, 5 failures, timeout 10 s, replica heartbeat 5 s, no witnesses; {runs} runs per fault"
    );
    for fault in [Fault::Kill, Fault::Blackhole] {
        if which == "all" || which == fault.name().trim_end_matches(" -9") {
            faults(bin, fault, runs).await?;
        }
    }
    if which == "all" || which == "idle" {
        idle(
            bin,
            Duration::from_secs(env_number("DETECTION_IDLE_SECS", 180)),
        )
        .await?;
    }
    Ok(())
}

async fn faults(bin: &Path, fault: Fault, runs: u64) -> anyhow::Result<()> {
    println!(
        "\n{}: goal: decided within {} s",
        fault.name(),
        fault.goal().as_secs()
    );
    println!(
        "{:>4} {:>12} {:>15} {:>14} {:>22}",
        "run", "fault at", "detection (s)", "recovery (s)", "window dead/silent (s)"
    );
    let mut all = Vec::new();
    for run in 0..runs {
        // Spread the fault over the calm interval: 10 s, 30 s, 50 s after a round.
        let phase = INTERVAL.mul_f64((run as f64 + 0.5) / runs as f64);
        let figures = one_run(bin, fault, phase).await?;
        println!(
            "{:>4} {:>12} {:>15.2} {:>14.2} {:>22}",
            run + 1,
            format!("+{:.0} s", figures.phase.as_secs_f64()),
            figures.detection.as_secs_f64(),
            figures.recovery.as_secs_f64(),
            format!(
                "{:.0} / {}",
                figures.window.0,
                figures
                    .window
                    .1
                    .map_or("?".to_string(), |s| format!("{s:.0}"))
            )
        );
        all.push(figures);
    }
    let mut detections: Vec<f64> = all.iter().map(|f| f.detection.as_secs_f64()).collect();
    detections.sort_by(f64::total_cmp);
    let mut recoveries: Vec<f64> = all.iter().map(|f| f.recovery.as_secs_f64()).collect();
    recoveries.sort_by(f64::total_cmp);
    println!(
        "detection min {:.2} median {:.2} max {:.2} s; recovery min {:.2} median {:.2} max {:.2} s; {} of {runs} runs decided within {} s",
        detections[0],
        detections[detections.len() / 2],
        detections[detections.len() - 1],
        recoveries[0],
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1],
        all.iter().filter(|f| f.detection <= fault.goal()).count(),
        fault.goal().as_secs()
    );
    Ok(())
}

async fn one_run(bin: &Path, fault: Fault, phase: Duration) -> anyhow::Result<Figures> {
    let mut stage = NetStage::start(bin, shipped(true), 7).await?;
    stage.spawn_daemon()?;
    let healthy = stage
        .wait_for_status("a healthy round", Duration::from_secs(60), |s| {
            s["last_probe"]["ok"] == true
                && s["cadence"]["detection_window"]["silent_seconds"].is_f64()
        })
        .await?;
    let last_round: Timestamp = healthy["last_probe"]["at"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let fault_at = last_round + phase;
    let wait = fault_at.duration_since(Timestamp::now());
    if let Ok(wait) = Duration::try_from(wait) {
        tokio::time::sleep(wait).await;
    }
    let window = &stage.status().await?["cadence"]["detection_window"];
    let window = (
        window["dead_seconds"].as_f64().unwrap_or(f64::NAN),
        window["silent_seconds"].as_f64(),
    );
    let faulted = Instant::now();
    let faulted_at = Timestamp::now();
    match fault {
        Fault::Kill => stage.db.primary.kill9(),
        Fault::Blackhole => stage.net.cut(Cut::Isolate(Host::Primary))?,
    }
    while !stage.dns_points_at_standby() {
        anyhow::ensure!(
            faulted.elapsed() < Duration::from_secs(180),
            "no DNS change within 180 s:\n{}",
            stage.daemon_log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let recovery = faulted.elapsed();
    let status = stage
        .wait_for_status("the promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await?;
    let started: Timestamp = status["promotion"]["started_at"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    let detection = Duration::try_from(started.duration_since(faulted_at))?;
    stage.net.heal()?;
    if let Some(daemon) = stage.daemon.as_mut() {
        daemon.stop().await;
    }
    Ok(Figures {
        phase,
        detection,
        recovery,
        window,
    })
}

/// CPU ticks (user + system) and the resident set (KiB) of a process.
fn usage(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command's closing parenthesis; utime and stime are the 14th
    // and 15th of the line, the 12th and 13th after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let cpu = ticks(11).zip(ticks(12)).map(|(u, s)| u + s);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    cpu.zip(rss)
        .ok_or_else(|| anyhow::anyhow!("no CPU or VmRSS for pid {pid}"))
}

/// The daemon idle, with the replica watched between rounds and without: CPU as a share
/// of one core over `span`, and the resident set at the end.
async fn idle(bin: &Path, span: Duration) -> anyhow::Result<()> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "\nidle, over {} s (a calm round each minute in both):",
        span.as_secs()
    );
    println!(
        "{:<44} {:>14} {:>14} {:>20}",
        "", "daemon CPU", "daemon RSS", "replica MariaDB CPU"
    );
    for watch in [false, true] {
        let mut stage = NetStage::start(bin, shipped(watch), 7).await?;
        stage.spawn_daemon()?;
        stage
            .wait_for_status("a healthy round", Duration::from_secs(60), |s| {
                s["last_probe"]["ok"] == true
            })
            .await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let daemon = stage
            .daemon
            .as_ref()
            .and_then(|d| d.pid())
            .ok_or_else(|| anyhow::anyhow!("the daemon exited"))?;
        let replica = stage
            .db
            .replica
            .pid()
            .ok_or_else(|| anyhow::anyhow!("the replica's MariaDB is not running"))?;
        let (daemon_before, _) = usage(daemon)?;
        let (replica_before, _) = usage(replica)?;
        let started = Instant::now();
        tokio::time::sleep(span).await;
        let seconds = started.elapsed().as_secs_f64();
        let (daemon_after, rss) = usage(daemon)?;
        let (replica_after, _) = usage(replica)?;
        let share = |before: u64, after: u64| (after - before) as f64 / hz / seconds * 100.0;
        println!(
            "{:<44} {:>12.3} % {:>10.1} MiB {:>18.3} %",
            if watch {
                "the replica read every 1 s (suspect 5 s)"
            } else {
                "nothing between rounds (suspect = interval)"
            },
            share(daemon_before, daemon_after),
            rss as f64 / 1024.0,
            share(replica_before, replica_after)
        );
        if let Some(daemon) = stage.daemon.as_mut() {
            daemon.stop().await;
        }
    }
    Ok(())
}
