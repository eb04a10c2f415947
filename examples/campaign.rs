//! The network fault campaign: many randomized runs of the real daemon on a network of
//! namespaces, the invariants checked after each (issue 13).
//!
//! `cargo build --release --bins && cargo run --release --example campaign -- --runs 50 --seed 7`
//! (root, `ip` and `nft` needed; see `Network::preflight`). `--ci` runs the fixed seeds
//! that `scripts/test.sh` runs: every fault kind once, then every forbidden kind once at
//! the suspect cadence (`--profile suspect`).
//!
//! Two profiles of the daemon. `default`: interval 1 s (and so the suspect interval),
//! threshold 3, probe timeout 500 ms, witnesses 900 ms. `suspect`: the shipped defaults
//! scaled down by ten (interval 6 s, suspect interval 500 ms, threshold 5, probe timeout
//! 1 s, witnesses 2 s with their own checks within 1 s, the replica's heartbeat 500 ms),
//! so the faults play out at the suspect cadence: the replica's watch between calm
//! rounds, rounds cut at their cadence.
//!
//! Each run: a fresh stage ([`NetStage`]: the primary, the standby with the daemon of
//! the profile, two witnesses), a write load on the primary
//! (semi-synchronous; every acknowledged write recorded), then a schedule of faults
//! drawn from the run's seed for its kind, then the faults healed, and the invariants:
//!
//! 1. never two writable primaries without the split-brain alert;
//! 2. no promotion while a majority of observers reached a live primary (a *false*
//!    promotion);
//! 3. a promotion within the bound once the primary is really dead and the standby is
//!    not isolated (else a *missed* one);
//! 4. every acknowledged write on whichever node ends as the primary;
//! 5. the journal, `status` and the world agree (DNS, `read_only`, units), and a
//!    promotion's reason is recorded.
//!
//! It prints a table per fault kind and exits 1 on any violation, printing the seed
//! and the schedule that reproduce it (`--seed S --run I`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use failover_watchdog::cadence::{CadenceSettings, Pace, SILENT_HEARTBEATS};
use failover_watchdog_rig::mariadb::WriteLoad;
use failover_watchdog_rig::netns::shaped::Shape;
use failover_watchdog_rig::netns::stage::{NetStage, Setup};
use failover_watchdog_rig::netns::{Cut, Host, Network, Prng};
use jiff::Timestamp;
use serde_json::Value;
use tokio::time::Instant;

/// The seeds CI runs (`--ci`): with `--kinds all`, run `i` is kind `i`, so every kind
/// runs once.
const CI_SEED: u64 = 13;

/// What CI runs at the suspect cadence: the kinds that must never promote.
const CI_SUSPECT_KINDS: &str = "blackhole,one-way,isolate-standby,flap,wan";

#[derive(Parser, Debug, Clone)]
#[command(about = "Randomized network faults against the real daemon, invariants checked")]
struct Args {
    /// How many runs.
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// The campaign's seed: each run's schedule is drawn from it and the run's index.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// `all`, or fault kinds separated by commas (run `i` is kind `i` modulo their count).
    #[arg(long, default_value = "all")]
    kinds: String,
    /// Only run number `I` of the campaign (to reproduce a violation).
    #[arg(long)]
    run: Option<usize>,
    /// CI's fixed set: `--kinds all --seed 13`, one run of each kind; then, at
    /// `--profile suspect`, one run of each kind that must not promote.
    #[arg(long)]
    ci: bool,
    /// The daemon's settings: `default` (interval 1 s, threshold 3) or `suspect` (the
    /// shipped defaults scaled down by ten: rounds every 500 ms while in doubt).
    #[arg(long, default_value = "default")]
    profile: String,
    /// How many witnesses the daemon has (0 to 2). With 0, an isolated standby cannot
    /// tell its own isolation from the primary's death: the control run that shows the
    /// campaign catches a false promotion.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    witnesses: u8,
}

/// What a run does to the network or the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `kill -9` of the primary's MariaDB.
    Kill,
    /// SIGSTOP of the primary's MariaDB (SIGCONT at the end).
    Hang,
    /// `kill -9`, then the primary started again within the detection window.
    Restart,
    /// `kill -9` while one witness is cut off from the standby.
    KillWitnessCut,
    /// The standby isolated, the primary killed meanwhile, then the isolation ends.
    IsolatedThenKill,
    /// Both ways dropped between two hosts.
    Blackhole,
    /// One direction dropped between two hosts.
    OneWay,
    /// The standby cut from everything.
    IsolateStandby,
    /// The primary cut from everything (alive, unreachable).
    IsolatePrimary,
    /// A link cut and mended on a schedule.
    Flap,
    /// Delay, jitter and loss on the WAN link (standby to primary).
    Wan,
}

const KINDS: [Kind; 11] = [
    Kind::Kill,
    Kind::Hang,
    Kind::Restart,
    Kind::KillWitnessCut,
    Kind::IsolatedThenKill,
    Kind::Blackhole,
    Kind::OneWay,
    Kind::IsolateStandby,
    Kind::IsolatePrimary,
    Kind::Flap,
    Kind::Wan,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Hang => "hang",
            Kind::Restart => "restart",
            Kind::KillWitnessCut => "kill-witness-cut",
            Kind::IsolatedThenKill => "isolated-then-kill",
            Kind::Blackhole => "blackhole",
            Kind::OneWay => "one-way",
            Kind::IsolateStandby => "isolate-standby",
            Kind::IsolatePrimary => "isolate-primary",
            Kind::Flap => "flap",
            Kind::Wan => "wan",
        }
    }

    /// Whether a promotion must, may or must not happen.
    fn expectation(self) -> Expect {
        match self {
            Kind::Kill | Kind::Hang | Kind::KillWitnessCut | Kind::IsolatedThenKill => {
                Expect::Required
            }
            // Dead until it is back; no observer reaches an isolated primary.
            Kind::Restart | Kind::IsolatePrimary => Expect::Allowed,
            _ => Expect::Forbidden,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The primary is really dead and the standby not isolated: promote within the bound.
    Required,
    /// A promotion decided while no majority reached a live primary is right; one
    /// decided after the primary came back (Restart) is false.
    Allowed,
    /// The primary lives and a majority of observers reaches it: never promote.
    Forbidden,
}

/// One thing done at an offset from the fault's start.
#[derive(Debug, Clone, Copy)]
enum Step {
    Cut(Cut),
    Mend(Cut),
    Kill,
    Stop,
    Restart,
    Shape(Shape),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Cut(cut) => write!(f, "cut: {cut}"),
            Step::Mend(cut) => write!(f, "mend: {cut}"),
            Step::Kill => f.write_str("kill -9 the primary's MariaDB"),
            Step::Stop => f.write_str("SIGSTOP the primary's MariaDB"),
            Step::Restart => f.write_str("start the primary's MariaDB again"),
            Step::Shape(shape) => write!(f, "WAN link: {shape}"),
        }
    }
}

/// A run's faults, drawn from its seed.
#[derive(Debug, Clone)]
struct Schedule {
    kind: Kind,
    /// Write load and healthy rounds before the first fault.
    warmup: Duration,
    steps: Vec<(Duration, Step)>,
    /// How long after the first fault the faults stay before everything is healed
    /// (for [`Expect::Required`]: the longest it may take; the run goes on once
    /// promoted).
    hold: Duration,
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  warm-up {} ms, then:", self.warmup.as_millis())?;
        for (at, step) in &self.steps {
            writeln!(f, "  +{:>6} ms  {step}", at.as_millis())?;
        }
        write!(
            f,
            "  +{:>6} ms  heal everything (SIGCONT, cuts removed, WAN link plain)",
            self.hold.as_millis()
        )
    }
}

const PAIRS: [(Host, Host); 6] = [
    (Host::Primary, Host::Standby),
    (Host::Primary, Host::WitnessA),
    (Host::Primary, Host::WitnessB),
    (Host::Standby, Host::WitnessA),
    (Host::Standby, Host::WitnessB),
    (Host::WitnessA, Host::WitnessB),
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Draws the schedule of a run of `kind`; `bound` is the promotion bound.
fn draw(kind: Kind, prng: &mut Prng, bound: Duration) -> Schedule {
    let warmup = ms(prng.range(1000, 3000));
    let mut steps = Vec::new();
    let mut hold = ms(prng.range(6000, 12000));
    match kind {
        Kind::Kill => {
            steps.push((ms(0), Step::Kill));
            hold = bound + ms(3000);
        }
        Kind::Hang => {
            steps.push((ms(0), Step::Stop));
            hold = bound + ms(3000);
        }
        Kind::Restart => {
            steps.push((ms(0), Step::Kill));
            steps.push((ms(prng.range(500, 4000)), Step::Restart));
            hold = bound + ms(3000);
        }
        Kind::KillWitnessCut => {
            let witness = prng.pick(&[Host::WitnessA, Host::WitnessB]);
            let cut = if prng.unit() < 0.5 {
                Cut::Between(Host::Standby, witness)
            } else {
                Cut::OneWay {
                    from: witness,
                    to: Host::Standby,
                }
            };
            steps.push((ms(0), Step::Cut(cut)));
            steps.push((ms(prng.range(0, 2000)), Step::Kill));
            hold = bound + ms(5000);
        }
        Kind::IsolatedThenKill => {
            let cut = Cut::Isolate(Host::Standby);
            let killed = prng.range(500, 3000);
            let mended = killed + prng.range(500, 5000);
            steps.push((ms(0), Step::Cut(cut)));
            steps.push((ms(killed), Step::Kill));
            steps.push((ms(mended), Step::Mend(cut)));
            hold = ms(mended) + bound + ms(3000);
        }
        Kind::Blackhole => {
            let (a, b) = prng.pick(&PAIRS);
            steps.push((ms(0), Step::Cut(Cut::Between(a, b))));
        }
        Kind::OneWay => {
            let (a, b) = prng.pick(&PAIRS);
            let (from, to) = if prng.unit() < 0.5 { (a, b) } else { (b, a) };
            steps.push((ms(0), Step::Cut(Cut::OneWay { from, to })));
        }
        Kind::IsolateStandby => steps.push((ms(0), Step::Cut(Cut::Isolate(Host::Standby)))),
        Kind::IsolatePrimary => steps.push((ms(0), Step::Cut(Cut::Isolate(Host::Primary)))),
        Kind::Flap => {
            // Links to the primary: those are the ones whose loss looks like its death.
            let (a, b) = prng.pick(&PAIRS[..3]);
            let cut = Cut::Between(a, b);
            let mut at = 0;
            while at < hold.as_millis() as u64 {
                steps.push((ms(at), Step::Cut(cut)));
                at += prng.range(300, 2500);
                steps.push((ms(at), Step::Mend(cut)));
                at += prng.range(300, 2500);
            }
            hold = ms(at);
        }
        Kind::Wan => {
            let shape = Shape {
                delay: ms(prng.range(50, 200)),
                jitter: ms(prng.range(0, 50)),
                loss: prng.range(0, 10) as f64 / 100.0,
            };
            steps.push((ms(0), Step::Shape(shape)));
        }
    }
    Schedule {
        kind,
        warmup,
        steps,
        hold,
    }
}

/// What one run saw.
#[derive(Debug, Default)]
struct Outcome {
    promoted: bool,
    false_promotion: bool,
    missed: bool,
    /// From the first fault to the promotion's decision (the journal's `started_at`).
    detection: Option<Duration>,
    acked: usize,
    lost: usize,
    /// Both nodes were writable at the end, and the daemon said so (SPLIT BRAIN).
    split_brain_alerted: bool,
    violations: Vec<String>,
}

fn journal_started(status: &Value) -> Option<Timestamp> {
    status["promotion"]["started_at"].as_str()?.parse().ok()
}

fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The bound on detection. At one cadence: every round of the threshold may take its
/// interval plus the probe's and the witnesses' timeouts; then the last look, and one
/// interval of slack for where in its interval the fault lands. At the suspect cadence:
/// the silence noticed (two heartbeats and two looks), then every round may take its
/// cadence plus its checks' bound and the witnesses' whole timeout (they may need it),
/// then the last look, and a cadence of slack.
fn promotion_bound(t: &Setup) -> Duration {
    let witnesses = if t.witnesses > 0 {
        t.witness_timeout
    } else {
        Duration::ZERO
    };
    let settings = cadence_settings(t);
    let Some(watch) = settings.watch_every() else {
        return (t.interval + t.probe_timeout + witnesses) * t.failures_before_promotion
            + t.probe_timeout
            + t.interval;
    };
    let cadence = settings.suspect_interval;
    let heartbeat = t.heartbeat.unwrap_or(Duration::from_secs(1));
    let checks = settings.checks_within(Pace::Suspect);
    heartbeat * SILENT_HEARTBEATS
        + watch * 2
        + (cadence + checks + witnesses) * t.failures_before_promotion
        + t.probe_timeout
        + cadence
}

/// The cadence the daemon runs at with `t`.
fn cadence_settings(t: &Setup) -> CadenceSettings {
    CadenceSettings {
        interval: t.interval,
        suspect_interval: t
            .suspect_interval
            .unwrap_or(t.interval.min(Duration::from_secs(5))),
        timeout: t.probe_timeout,
        failures_before_promotion: t.failures_before_promotion,
        witness_timeout: (t.witnesses > 0).then_some(t.witness_timeout),
    }
}

/// The daemon's settings of a profile.
fn profile(name: &str, witnesses: u8) -> anyhow::Result<Setup> {
    let witnesses = usize::from(witnesses);
    match name {
        "default" => Ok(Setup {
            witnesses,
            ..Setup::default()
        }),
        // The shipped defaults (60 s, 5 s, 5 failures, 10 s timeout, witnesses at 2 x
        // the timeout with their own 10 s checks, a 5 s heartbeat) scaled down by ten.
        "suspect" => Ok(Setup {
            interval: Duration::from_secs(6),
            suspect_interval: Some(ms(500)),
            failures_before_promotion: 5,
            probe_timeout: Duration::from_secs(1),
            witness_timeout: Duration::from_secs(2),
            witnesses,
            witness_probe_timeout: Some(Duration::from_secs(1)),
            heartbeat: Some(ms(500)),
        }),
        other => anyhow::bail!("unknown profile {other:?}; known: default, suspect"),
    }
}

async fn run_one(
    bin: &Path,
    setup: Setup,
    schedule: &Schedule,
    seed: u64,
) -> anyhow::Result<Outcome> {
    let bound = promotion_bound(&setup);
    let mut stage = NetStage::start(bin, setup, seed).await?;
    stage.spawn_daemon()?;
    stage
        .wait_for_status(
            "the daemon's first healthy round",
            Duration::from_secs(30),
            |s| s["last_probe"]["ok"] == true,
        )
        .await?;
    let load = WriteLoad::start(&stage.db.primary);
    load.wait_for_acks(10, Duration::from_secs(20)).await?;
    tokio::time::sleep(schedule.warmup).await;

    let mut out = Outcome::default();
    let expect = schedule.kind.expectation();
    let fault_at = Timestamp::now();
    let started = Instant::now();
    // When the primary (killed) was serving again, for Restart.
    let mut back_at: Option<Timestamp> = None;
    // When the primary's MariaDB died or froze: detection is measured from there.
    let mut dead_at: Option<Timestamp> = None;
    // When a cut last ended: a dead primary must be found within the bound from the
    // later of the two, the standby being isolated before.
    let mut mended_at: Option<Timestamp> = None;
    let mut stopped = false;
    let mut steps = schedule.steps.iter().peekable();
    loop {
        if let Some((at, step)) = steps.peek()
            && started.elapsed() >= *at
        {
            match *step {
                Step::Cut(cut) => stage.net.cut(cut)?,
                Step::Mend(cut) => {
                    stage.net.mend(cut)?;
                    mended_at = Some(Timestamp::now());
                }
                Step::Kill => {
                    stage.db.primary.kill9();
                    dead_at = Some(Timestamp::now());
                }
                Step::Stop => {
                    stage.db.primary.sigstop();
                    dead_at = Some(Timestamp::now());
                    stopped = true;
                }
                Step::Restart => {
                    stage.db.primary.start_again().await?;
                    back_at = Some(Timestamp::now());
                }
                Step::Shape(shape) => stage.wan.set_shape(shape),
            }
            steps.next();
            continue;
        }
        if started.elapsed() >= schedule.hold {
            break;
        }
        if expect == Expect::Required && steps.peek().is_none() {
            let status = stage.status().await?;
            if matches!(status["state"].as_str(), Some("promoted" | "halted")) {
                break;
            }
        }
        tokio::time::sleep(ms(100)).await;
    }

    // Heal everything, as the network and the operator eventually do.
    stage.net.heal()?;
    stage.wan.set_shape(Shape::default());
    if stopped {
        stage.db.primary.sigcont();
    }
    let acked = load.stop().await;
    out.acked = acked.len();
    // Let a promotion in flight finish, and the daemon see the healed network: 3 s, and
    // past them until it says `monitoring` or `promoted`, for up to a calm round (a
    // primary proved alive makes the pace calm, and the next round comes an interval
    // later).
    let healed = Instant::now();
    let settle = Duration::from_secs(3)
        .max(setup.interval + setup.probe_timeout + setup.witness_timeout + ms(500));
    let status = loop {
        tokio::time::sleep(ms(200)).await;
        let status = stage.status().await?;
        let waited = healed.elapsed();
        let settled = matches!(status["state"].as_str(), Some("monitoring" | "promoted"));
        if status["state"] != "promoting"
            && waited >= Duration::from_secs(3)
            && (settled || waited >= settle)
        {
            break status;
        }
        if waited > settle + Duration::from_secs(30) {
            break status;
        }
    };

    let started_at = journal_started(&status);
    out.promoted = started_at.is_some();
    // Flapping mends too, but its primary never dies: only kinds that kill use this.
    let dead_from = match (dead_at, mended_at) {
        (Some(dead), Some(mended)) if expect == Expect::Required => dead.max(mended),
        (Some(dead), _) => dead,
        (None, _) => fault_at,
    };
    out.detection = started_at.map(|at| since(at, dead_from));
    let violation = |out: &mut Outcome, text: String| out.violations.push(text);

    // 2. False promotions.
    match (expect, started_at) {
        (Expect::Forbidden, Some(at)) => {
            out.false_promotion = true;
            violation(
                &mut out,
                format!(
                    "false promotion: decided {:.1} s after the fault although the primary lived and a majority of observers reached it",
                    since(at, fault_at).as_secs_f64()
                ),
            );
        }
        (Expect::Allowed, Some(at)) => {
            if let Some(back) = back_at
                && at > back.checked_add(setup.interval).unwrap_or(back)
            {
                out.false_promotion = true;
                violation(
                    &mut out,
                    format!(
                        "false promotion: decided {:.1} s after the primary was serving again",
                        since(at, back).as_secs_f64()
                    ),
                );
            }
        }
        _ => {}
    }
    // 3. Missed promotions.
    if expect == Expect::Required {
        match started_at {
            None => {
                out.missed = true;
                violation(
                    &mut out,
                    format!(
                        "missed promotion: the primary was dead and the standby not isolated, and nothing was decided within {:.1} s",
                        schedule.hold.as_secs_f64()
                    ),
                );
            }
            Some(at) if since(at, dead_from) > bound => {
                out.missed = true;
                violation(
                    &mut out,
                    format!(
                        "late promotion: decided {:.1} s after the primary died (or the standby's isolation ended), the bound is {:.1} s",
                        since(at, dead_from).as_secs_f64(),
                        bound.as_secs_f64()
                    ),
                );
            }
            Some(_) => {}
        }
    }

    // 5. The journal, status and the world agree.
    let state = status["state"].as_str().unwrap_or("?").to_string();
    let read_only = stage.db.replica.global_var("read_only").await?;
    if out.promoted {
        let steps: Vec<(String, String)> = status["promotion"]["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| {
                        (
                            s["name"].as_str().unwrap_or("?").to_string(),
                            s["status"].as_str().unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if state != "promoted" || steps.len() != 5 || steps.iter().any(|(_, s)| s != "done") {
            violation(
                &mut out,
                format!("promotion did not complete: state {state}, steps {steps:?}"),
            );
        }
        if !stage.dns_points_at_standby() {
            violation(
                &mut out,
                "journal says promoted, DNS does not point at the standby".into(),
            );
        }
        if read_only != "0" {
            violation(
                &mut out,
                "journal says promoted, the standby is still read_only".into(),
            );
        }
        let reason = status["promotion"]["reason"].as_str().unwrap_or("");
        if !reason.contains("consecutive probe rounds") {
            violation(
                &mut out,
                format!("promotion without its reason recorded: {reason:?}"),
            );
        }
    } else {
        if state != "monitoring" {
            violation(&mut out, format!("no promotion, yet status says {state}"));
        }
        if !stage.dns_untouched() {
            violation(&mut out, "DNS changed without a promotion".into());
        }
        if read_only != "1" {
            violation(
                &mut out,
                "the standby became writable without a promotion".into(),
            );
        }
    }
    if status["daemon_running"] != true {
        violation(&mut out, "the daemon is not running".into());
    }

    // 1. Two writable primaries only with the split-brain alert.
    if out.promoted && stage.db.primary.is_running() {
        let deadline = Instant::now() + Duration::from_secs(8);
        loop {
            let old_writable = stage
                .db
                .primary
                .global_var("read_only")
                .await
                .ok()
                .as_deref()
                == Some("0");
            if !old_writable {
                break;
            }
            if stage.daemon_log().contains("SPLIT BRAIN") {
                out.split_brain_alerted = true;
                break;
            }
            if Instant::now() >= deadline {
                violation(
                    &mut out,
                    "split brain: the old primary and the standby are both writable and the daemon raised no split-brain alert within 8 s".into(),
                );
                break;
            }
            tokio::time::sleep(ms(200)).await;
        }
    }

    // 4. Every acknowledged write on whichever node ends as the primary.
    let final_primary = if out.promoted {
        Some(&stage.db.replica)
    } else if stage.db.primary.is_running() {
        Some(&stage.db.primary)
    } else {
        None
    };
    if let Some(node) = final_primary {
        let ids = node.app_write_ids().await?;
        let lost: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|id| ids.binary_search(id).is_err())
            .collect();
        out.lost = lost.len();
        if !lost.is_empty() {
            violation(
                &mut out,
                format!(
                    "{} acknowledged writes missing on the {} (first: {:?})",
                    lost.len(),
                    node.name(),
                    &lost[..lost.len().min(5)]
                ),
            );
        }
    }
    if !out.violations.is_empty() {
        let log = stage.daemon_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let mut text = String::from("daemon log (last 40 lines):\n");
        for line in tail.iter().rev() {
            let _ = writeln!(text, "    {line}");
        }
        out.violations.push(text);
    }
    if let Some(daemon) = stage.daemon.as_mut() {
        daemon.stop().await;
    }
    Ok(out)
}

#[derive(Default)]
struct Row {
    runs: usize,
    promotions: usize,
    false_promotions: usize,
    missed: usize,
    detections: Vec<Duration>,
    acked: usize,
    lost: usize,
    split_brain_alerted: usize,
}

fn print_table(rows: &BTreeMap<Kind, Row>) {
    println!(
        "{:<19} {:>4} {:>10} {:>6} {:>6} {:>12} {:>10} {:>8} {:>5} {:>11}",
        "fault",
        "runs",
        "promotions",
        "false",
        "missed",
        "detect med",
        "detect max",
        "acked",
        "lost",
        "split-brain"
    );
    for (kind, row) in rows {
        let mut d = row.detections.clone();
        d.sort();
        let fmt = |v: Option<&Duration>| {
            v.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        println!(
            "{:<19} {:>4} {:>10} {:>6} {:>6} {:>12} {:>10} {:>8} {:>5} {:>11}",
            kind.name(),
            row.runs,
            row.promotions,
            row.false_promotions,
            row.missed,
            fmt(d.get(d.len().saturating_sub(1) / 2)),
            fmt(d.last()),
            row.acked,
            row.lost,
            row.split_brain_alerted
        );
    }
}

/// The daemon binary: `$FAILOVER_WATCHDOG_BIN`, else beside this example's directory
/// (target/<profile>/examples/campaign -> target/<profile>/failover-watchdog).
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FAILOVER_WATCHDOG_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("failover-watchdog"))
        .filter(|bin| bin.exists())
        .ok_or_else(|| anyhow::anyhow!("build the binary first (cargo build [--release] --bins) or set FAILOVER_WATCHDOG_BIN"))
}

fn run_seed(seed: u64, index: usize) -> u64 {
    Prng::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    let mut campaigns = Vec::new();
    if args.ci {
        args.seed = CI_SEED;
        args.kinds = "all".into();
        args.runs = KINDS.len();
        args.profile = "default".into();
        campaigns.push(args.clone());
        args.kinds = CI_SUSPECT_KINDS.into();
        args.runs = CI_SUSPECT_KINDS.split(',').count();
        args.profile = "suspect".into();
    }
    campaigns.push(args);
    let mut passed = true;
    for args in &campaigns {
        match campaign(args).await {
            Ok(ok) => passed &= ok,
            Err(e) => {
                eprintln!("campaign: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn campaign(args: &Args) -> anyhow::Result<bool> {
    let kinds: Vec<Kind> = if args.kinds == "all" {
        KINDS.to_vec()
    } else {
        args.kinds
            .split(',')
            .map(|name| {
                KINDS
                    .iter()
                    .copied()
                    .find(|k| k.name() == name.trim())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "unknown fault kind {name:?}; known: {}",
                            KINDS.map(Kind::name).join(", ")
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?
    };
    // Fail, never skip, where namespaces cannot be made.
    Network::preflight()?;
    let bin = binary()?;
    let setup = profile(&args.profile, args.witnesses)?;
    let bound = promotion_bound(&setup);
    let cadence = cadence_settings(&setup);
    println!(
        "campaign: seed {}, {} runs, kinds {}; daemon {} (profile {}: {} witnesses, interval {} ms, suspect interval {} ms, threshold {}, probe timeout {} ms); promotion bound {:.1} s",
        args.seed,
        args.runs,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        bin.display(),
        args.profile,
        setup.witnesses,
        setup.interval.as_millis(),
        cadence.suspect_interval.as_millis(),
        setup.failures_before_promotion,
        setup.probe_timeout.as_millis(),
        bound.as_secs_f64()
    );
    let started = Instant::now();
    let mut rows: BTreeMap<Kind, Row> = BTreeMap::new();
    let mut failed = 0;
    for index in 0..args.runs {
        if args.run.is_some_and(|only| only != index) {
            continue;
        }
        let kind = kinds[index % kinds.len()];
        let seed = run_seed(args.seed, index);
        let schedule = draw(kind, &mut Prng::new(seed), bound);
        let run_started = Instant::now();
        let outcome = match run_one(&bin, setup, &schedule, seed).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome {
                violations: vec![format!("the run could not be carried out: {e:#}")],
                ..Outcome::default()
            },
        };
        println!(
            "run {index:>3} {:<19} {:>5.1} s  promoted: {:<5} detection: {:<8} acked {:>5} lost {}{}",
            kind.name(),
            run_started.elapsed().as_secs_f64(),
            outcome.promoted,
            outcome
                .detection
                .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            outcome.acked,
            outcome.lost,
            if outcome.violations.is_empty() {
                ""
            } else {
                "  VIOLATION"
            }
        );
        if !outcome.violations.is_empty() {
            failed += 1;
            println!(
                "  reproduce: cargo run --release --example campaign -- --profile {} --seed {} --runs {} --kinds {} --witnesses {} --run {index}",
                args.profile, args.seed, args.runs, args.kinds, args.witnesses
            );
            println!("  schedule ({}):\n{schedule}", kind.name());
            for v in &outcome.violations {
                println!("  - {v}");
            }
        }
        let row = rows.entry(kind).or_default();
        row.runs += 1;
        row.promotions += usize::from(outcome.promoted);
        row.false_promotions += usize::from(outcome.false_promotion);
        row.missed += usize::from(outcome.missed);
        row.detections.extend(
            outcome
                .detection
                .filter(|_| kind.expectation() != Expect::Forbidden),
        );
        row.acked += outcome.acked;
        row.lost += outcome.lost;
        row.split_brain_alerted += usize::from(outcome.split_brain_alerted);
    }
    println!();
    print_table(&rows);
    println!(
        "\n{} runs in {:.0} s; {failed} with violations",
        rows.values().map(|r| r.runs).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(failed == 0)
}
