//! Failure paths found by trying to break the watchdog: a full disk in the middle of a
//! promotion, an unreadable journal at start, Telegram down for a one-shot command.
//! Each test is named after what broke.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use failover_watchdog_rig::telegram::Mode;
use mysql_async::prelude::Queryable;

use crate::support::*;

/// A small tmpfs mounted over the stage's `state_dir`; unmounted when dropped, even when
/// the test fails.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let mounted = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            mounted.success(),
            "cannot mount a tmpfs on {} (this test needs root): {mounted}",
            path.display()
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write_all(&chunk).and_then(|()| file.sync_all()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", filler.display()),
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Regression: with `state_dir` full in the middle of an automatic promotion, the daemon
/// said "automatic promotion not run", then sent a "resuming" alert every round, never
/// HALTED, never ran `on_failure`, and never resumed. Now: the step whose end cannot be
/// journalled halts the promotion before the next one, HALTED goes out once,
/// `on_failure` runs, nothing more is tried, and `--promote-now --yes` resumes once
/// space is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_state_dir_mid_promotion_halts_once_runs_on_failure_and_resumes_by_hand() {
    let mut rig = stage().await;
    let marker = rig.state_dir().with_file_name("on_failure.step");
    rig.write_config(&format!(
        "{}\n[promotion]\non_failure = \"echo $FAILOVER_STEP > '{}'\"\n",
        rig.config(),
        marker.display()
    ));
    let disk = SmallDisk::mount(&rig.state_dir());
    // stop_replica will wait for rows the replica has received but cannot apply yet.
    let mut blocker = hold_the_relay_log(&rig, 10).await;

    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.kill9();
    wait_for_stop_replica_running(&rig).await;
    let filler = disk.fill();
    blocker.query_drop("UNLOCK TABLES").await.unwrap();

    let halted = rig
        .telegram
        .wait_for_messages(2, Duration::from_secs(30))
        .await;
    assert!(
        halted[1].text.contains("HALTED at step stop_replica")
            && halted[1].text.contains("journal cannot be written")
            && halted[1].text.contains("No space left on device"),
        "{halted:?}"
    );
    // Rounds go on (the live state cannot be saved either: each round says so), and
    // nothing is retried and nothing more is said. The log is the only witness while the
    // disk is full, so it is polled until five rounds have passed.
    let rounds_after_the_halt = |log: &str| {
        log.split_once("daemon: promotion halted")
            .map_or(0, |(_, after)| {
                after.matches("cannot write the live state").count()
            })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = daemon.log();
    while rounds_after_the_halt(&log) < 5 {
        assert!(
            Instant::now() < deadline,
            "five rounds after the halt: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        log = daemon.log();
    }
    assert_eq!(
        rig.telegram.messages().len(),
        2,
        "the opening alert and HALTED, nothing else: {:?}",
        rig.telegram.messages()
    );
    assert!(!log.contains("resuming"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "stop_replica",
        "on_failure ran for the step"
    );
    assert_eq!(
        rig.replica_read_only().await,
        "1",
        "no step after the unjournalled one ran"
    );

    // Space is back: an operator takes it up.
    std::fs::remove_file(filler).unwrap();
    let run = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted", "{status:#}");
    assert_eq!(rig.replica_read_only().await, "0");
    drop(daemon);
}

/// Regression: an unreadable journal made `run` exit 1 without a word to the team, and
/// systemd restarted it silently every 5 s. It still exits 1, after one alert.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_journal_at_start_is_alerted_before_the_daemon_exits() {
    let rig = stage().await;
    std::fs::create_dir_all(rig.state_dir()).unwrap();
    std::fs::write(rig.state_dir().join("promotion.json"), "not json").unwrap();
    let run = rig.run(&["run"]).await;
    assert_eq!(run.code, Some(1), "{run:?}");
    let messages = rig.telegram.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].text.contains("cannot start") && messages[0].text.contains("promotion.json"),
        "{messages:?}"
    );
}

/// Regression: with Telegram down, `--promote-now --yes` returned about 40 s after it
/// started though DNS moved within a second. Its waits for alerts are bounded (10 s in
/// all); it says what was not delivered, and the closing alert's text is in the journal.
#[tokio::test(flavor = "multi_thread")]
async fn telegram_down_promote_now_returns_within_its_alert_wait() {
    let rig = stage().await;
    rig.telegram.set_mode(Mode::Down(502));
    let started = Instant::now();
    let run = rig.run(&["--promote-now", "--yes"]).await;
    let took = started.elapsed();
    eprintln!("--promote-now --yes with Telegram down returned after {took:?}");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(rig.dns(&rig.records.app), STANDBY_ADDRESS);
    // Well under the 40 s it took; the 10 s bound plus the promotion itself.
    assert!(took < Duration::from_secs(25), "took {took:?}");
    assert!(
        run.stderr.contains("not delivered"),
        "the command says the alerts were not delivered: {}",
        run.stderr
    );
    let status = rig.status().await;
    let error = status["promotion"]["steps"][4]["error"].as_str().unwrap();
    assert!(
        error.contains("not delivered within") && error.contains("PROMOTED"),
        "the closing alert's text is kept in the journal: {error}"
    );
}
