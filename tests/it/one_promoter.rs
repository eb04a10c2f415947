//! One promoter at a time: the daemon and any number of `--promote-now` runs exclude
//! each other with a lock in `state_dir`; the loser exits 3 naming the holder.

use std::time::Duration;

use failover_watchdog_rig::cloudflare::Fault;

use crate::support::*;

/// Holds a promotion inside `update_dns`: Cloudflare does not answer the first request
/// (the client gives up after its 10 s request timeout and retries).
fn hold_the_promotion_in_update_dns(rig: &Stage) {
    rig.cloudflare.inject([Fault::Hang]);
}

async fn wait_until_update_dns_runs(rig: &Stage) {
    rig.wait_for_status("update_dns running", Duration::from_secs(60), |s| {
        steps(s).get(3).is_some_and(|(_, state)| state == "running")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_racing_promote_now_runs_one_promotes_the_other_is_refused() {
    let rig = stage().await;
    hold_the_promotion_in_update_dns(&rig);
    let first = rig.command(&["--promote-now", "--yes"]).output();
    let first = tokio::spawn(first);
    wait_until_update_dns_runs(&rig).await;

    let second = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(second.code, Some(3), "{second:?}");
    assert!(
        second.stderr.contains("holds the lock"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("a --promote-now promotion"),
        "names the holder: {}",
        second.stderr
    );
    // A dry run takes no lock: it tells what a --promote-now would do now.
    let dry = rig.run(&["--promote-now", "--dry-run"]).await;
    assert!(
        dry.stdout.contains("resumes it at step update_dns"),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("already done: received"), "{dry:?}");

    let first = first.await.unwrap().unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let status = rig.status().await;
    assert_eq!(status["state"], "promoted");
    assert!(
        status["promotion"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["attempts"] == 1)
    );
    assert_eq!(rig.systemctl.started(), UNITS);
}

#[tokio::test(flavor = "multi_thread")]
async fn promote_now_during_the_daemons_promotion_is_refused() {
    let mut rig = stage().await;
    hold_the_promotion_in_update_dns(&rig);
    let daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.kill9();
    wait_until_update_dns_runs(&rig).await;

    let manual = rig.run(&["--promote-now", "--yes"]).await;
    assert_eq!(manual.code, Some(3), "{manual:?}");
    assert!(
        manual.stderr.contains("the daemon's automatic promotion"),
        "{}",
        manual.stderr
    );

    let status = rig
        .wait_for_status("the daemon's promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(status["promotion"]["trigger"], "automatic");
    assert_eq!(rig.systemctl.started(), UNITS);
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));
}
