//! The switchover benchmark: `cargo bench --bench switchover` (runs: `SWITCHOVER_RUNS`,
//! default 5).
//!
//! Each run starts a fresh stage (a real MariaDB pair, the stand-ins) with the standby's
//! pair config, starts the rig's writer (an application account, one autocommit
//! `INSERT` after another to whichever server takes them), runs `switchover --yes` on
//! the standby under that load and measures:
//!
//! - refused (writer): the longest time with no acknowledged write, around the
//!   switchover: what the application saw;
//! - refused (journal): fence to writable, from the drill record;
//! - DNS: fence to every record pointing at the new primary, from the drill record;
//! - acknowledged and lost writes: every acknowledged id looked up on the new primary.
//!
//! Goal on loopback: refused at most 1 s, zero lost. It prints figures; it asserts none.

use std::time::Duration;

use failover_watchdog_rig::stage::Stage;
use failover_watchdog_rig::writer::{Writer, longest_gap};

struct Figures {
    gap: Duration,
    refused: Duration,
    dns: Duration,
    acked: usize,
    lost: usize,
}

fn seconds(value: &serde_json::Value) -> Duration {
    value
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(Duration::ZERO, |t| {
            Duration::try_from(jiff::SignedDuration::from_nanos(t.as_nanosecond() as i64))
                .unwrap_or_default()
        })
}

async fn one_run(bin: &std::path::Path) -> anyhow::Result<Figures> {
    let rig = Stage::start(bin).await;
    rig.write_config(&rig.pair_config());
    let writer = Writer::start([&rig.db.primary, &rig.db.replica], 1_000_000);
    writer.wait_for_acks(300, Duration::from_secs(30)).await?;
    let run = rig.run(&["switchover", "--yes"]).await;
    anyhow::ensure!(run.code == Some(0), "switchover failed: {run:?}");
    let after = writer.acked();
    writer
        .wait_for_acks(after + 300, Duration::from_secs(30))
        .await?;
    let acks = writer.stop().await;
    let on_new_primary = rig.db.replica.app_write_ids().await?;
    let lost = acks
        .iter()
        .filter(|a| on_new_primary.binary_search(&a.id).is_err())
        .count();
    let status = rig.status().await;
    let drill = &status["promotion"]["switchover"];
    let fenced = seconds(&drill["fenced_at"]);
    Ok(Figures {
        gap: longest_gap(&acks),
        refused: seconds(&drill["writable_at"]).saturating_sub(fenced),
        dns: seconds(&drill["dns_at"]).saturating_sub(fenced),
        acked: acks.len(),
        lost,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = std::env::var("SWITCHOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5usize);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_failover-watchdog"));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("run  refused(writer) ms  refused(fence->writable) ms  dns ms  acked  lost");
    let mut all = Vec::new();
    for run in 1..=runs {
        let f = one_run(bin).await?;
        println!(
            "{run:>3}  {:>18.1}  {:>27.1}  {:>6.1}  {:>5}  {:>4}",
            ms(f.gap),
            ms(f.refused),
            ms(f.dns),
            f.acked,
            f.lost
        );
        all.push(f);
    }
    let worst = |pick: fn(&Figures) -> Duration| all.iter().map(pick).max().unwrap_or_default();
    println!(
        "worst of {runs}: refused (writer) {:.1} ms, refused (fence->writable) {:.1} ms, DNS {:.1} ms; lost {} of {} acknowledged",
        ms(worst(|f| f.gap)),
        ms(worst(|f| f.refused)),
        ms(worst(|f| f.dns)),
        all.iter().map(|f| f.lost).sum::<usize>(),
        all.iter().map(|f| f.acked).sum::<usize>()
    );
    Ok(())
}
