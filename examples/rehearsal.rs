//! The local rehearsal: watch the watchdog do its job on this machine.
//!
//! Starts a real MariaDB primary and replica (GTID, semi-synchronous), local stand-ins
//! for Cloudflare and Telegram and a `systemctl` shim, runs the real daemon at a 1 s
//! interval with a threshold of 3, writes to the primary, kills the primary with
//! SIGKILL, and prints the timeline until the standby serves.
//!
//! Run it with `scripts/rehearsal.sh` (which builds the binary first).

use std::path::PathBuf;
use std::time::Duration;

use failover_watchdog_rig::mariadb::WriteLoad;
use failover_watchdog_rig::stage::{STANDBY_ADDRESS, Stage};
use jiff::Timestamp;
use tokio::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = binary()?;
    println!("== failover-watchdog rehearsal ==");
    println!("binary: {}", bin.display());
    println!(
        "starting a MariaDB primary and replica, the Cloudflare and Telegram stand-ins, a systemctl shim ..."
    );
    let mut stage = Stage::start(&bin).await;
    println!(
        "primary MariaDB on 127.0.0.1:{}, replica (the standby) on 127.0.0.1:{}",
        stage.db.primary.port(),
        stage.db.replica.port()
    );
    println!(
        "DNS before: app.example.com -> {}, www.example.com -> {}",
        stage.dns(&stage.records.app),
        stage.dns(&stage.records.www)
    );
    println!(
        "config ({}):{}",
        stage.config_path().display(),
        indent(&stage.config())
    );

    let load = WriteLoad::start(&stage.db.primary);
    let daemon = stage.spawn_daemon();
    stage
        .wait_for_status(
            "the daemon's first healthy round",
            Duration::from_secs(30),
            |s| s["last_probe"]["ok"] == true,
        )
        .await;
    println!(
        "the daemon is watching; the application writes to the primary; letting it run for 3 s ..."
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let killed = Instant::now();
    let killed_at = Timestamp::now();
    let log_offset = daemon.log().len();
    stage.db.primary.kill9();
    let acked = load.stop().await;
    println!("\n== timeline (from kill -9 of the primary) ==");
    println!(
        "[+0.000s] primary MariaDB killed with SIGKILL after {} acknowledged writes",
        acked.len()
    );

    let mut printed = log_offset;
    let mut dns_at = None;
    let deadline = killed + Duration::from_secs(90);
    loop {
        let log = daemon.log();
        print_timeline(&log[printed..], killed_at);
        printed = log.len();
        if dns_at.is_none() && stage.dns_points_at_standby() {
            dns_at = Some(killed.elapsed());
            println!(
                "[+{:.3}s] both DNS records point at the standby",
                killed.elapsed().as_secs_f64()
            );
        }
        let status = stage.status().await;
        if status["state"] == "promoted" || status["state"] == "halted" {
            print_timeline(&daemon.log()[printed..], killed_at);
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no promotion within 90 s; log:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("\n== result ==");
    let status = stage.run(&["status"]).await;
    print!("{}", status.stdout);
    let on_standby = stage.db.replica.app_write_ids().await?;
    let lost = acked.iter().filter(|id| !on_standby.contains(id)).count();
    println!(
        "acknowledged writes: {}, on the standby: {}, lost: {lost}",
        acked.len(),
        on_standby.len()
    );
    println!("replica read_only: {}", stage.replica_read_only().await);
    println!("units started: {}", stage.systemctl.started().join(", "));
    println!(
        "DNS after: app.example.com -> {}, www.example.com -> {} (standby: {STANDBY_ADDRESS}), mail.example.com -> {} (not ours, untouched)",
        stage.dns(&stage.records.app),
        stage.dns(&stage.records.www),
        stage.dns(&stage.records.unrelated)
    );
    if let Some(at) = dns_at {
        println!(
            "recovery time (kill -9 to both DNS records at the standby): {:.2} s; detection window 3 rounds x 1 s (the kill lands between rounds, so detection takes 2-3 s)",
            at.as_secs_f64()
        );
    }
    println!("\n== Telegram messages the team received ==");
    for message in stage.telegram.messages() {
        println!("---\n{}", message.text);
    }
    let (_, _) = daemon.stop().await;
    Ok(())
}

/// The daemon binary: `$FAILOVER_WATCHDOG_BIN`, else beside this example's directory
/// (target/<profile>/examples/rehearsal -> target/<profile>/failover-watchdog).
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("FAILOVER_WATCHDOG_BIN") {
        return Ok(bin.into());
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("failover-watchdog"))
        .filter(|bin| bin.exists());
    bin.ok_or_else(|| anyhow::anyhow!("build the binary first (cargo build --bin failover-watchdog) or set FAILOVER_WATCHDOG_BIN"))
}

/// Prints log lines with their time relative to the kill, taken from each line's own
/// timestamp (the daemon's clock, not when we read the file).
fn print_timeline(lines: &str, killed_at: Timestamp) {
    for line in lines.lines() {
        match line.split_once(' ') {
            Some((first, rest)) if first.parse::<Timestamp>().is_ok() => {
                let at = first.parse::<Timestamp>().unwrap_or(killed_at);
                let offset = at.duration_since(killed_at).as_secs_f64();
                println!("[+{offset:.3}s] {}", rest.trim_start());
            }
            _ => println!("          {line}"),
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("\n    {l}")).collect()
}
