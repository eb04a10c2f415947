//! After a promotion: the daemon stays promoted, a second daemon is refused, and `reset`
//! (only once the daemon is stopped) clears the promotion so the standby is guarded again.

use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn reset_clears_a_finished_promotion_only_when_the_daemon_is_stopped() {
    let rig = stage().await;
    let promoted = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(promoted.code, Some(0), "{promoted:?}");

    let daemon = rig.spawn_daemon();
    rig.wait_for_status(
        "the daemon running, promoted",
        Duration::from_secs(20),
        |s| s["state"] == "promoted" && !s["daemon_pid"].is_null(),
    )
    .await;
    let second = rig.run(&["run"]).await;
    assert_eq!(
        second.code,
        Some(3),
        "a second daemon on the same state_dir: {second:?}"
    );
    assert!(
        second.stderr.contains("a running daemon holds the lock"),
        "{}",
        second.stderr
    );

    let refused = rig.run(&["reset", "--yes"]).await;
    assert_eq!(refused.code, Some(3), "{refused:?}");
    assert!(
        refused.stderr.contains("(daemon)"),
        "names the daemon: {}",
        refused.stderr
    );
    assert_eq!(rig.status().await["state"], "promoted");

    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));
    let unconfirmed = rig.run(&["reset"]).await;
    assert_eq!(unconfirmed.code, Some(2), "{unconfirmed:?}");
    assert!(unconfirmed.stderr.contains("--yes"));

    let reset = rig.run(&["reset", "--yes"]).await;
    assert_eq!(reset.code, Some(0), "{reset:?}");
    assert!(
        reset.stdout.contains("cleared the promotion started at")
            && reset.stdout.contains("promoted)"),
        "{}",
        reset.stdout
    );
    let kept: Vec<_> = std::fs::read_dir(rig.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("promotion.") && name.ends_with(".json"))
        .collect();
    assert_eq!(kept.len(), 1, "the old journal is kept: {kept:?}");

    let status = rig.status().await;
    assert!(status["promotion"].is_null(), "{status:#}");
    assert_ne!(status["state"], "promoted");
    let again = rig.run(&["reset", "--yes"]).await;
    assert_eq!(again.code, Some(0));
    assert!(
        again.stdout.contains("nothing to reset"),
        "{}",
        again.stdout
    );
}
