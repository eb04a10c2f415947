//! Stopping and starting the daemon in the middle of a promotion: SIGTERM lets the
//! running step finish and journals it; the next start says READY before it resumes.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::net::UnixDatagram;

use crate::support::*;

/// SIGTERM while `stop_replica` waits for the relay log: the step finishes once it can,
/// is journalled as done, and the daemon exits 0 without starting `make_writable`. The
/// next start resumes at `make_writable` and finishes.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_promotion_lets_the_running_step_finish_and_the_next_start_resumes() {
    let mut rig = stage().await;
    let mut blocker = hold_the_relay_log(&rig, 20).await;
    let mut daemon = rig.spawn_daemon();
    rig.wait_for_status("a healthy round", Duration::from_secs(20), |s| {
        s["last_probe"]["ok"] == true
    })
    .await;
    rig.db.primary.kill9();
    wait_for_stop_replica_running(&rig).await;

    let pid = daemon.pid().expect("the daemon runs");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    // The step is still waiting: SIGTERM did not cut it short.
    let status = rig.status().await;
    assert_eq!(steps(&status)[0].1, "running", "{status:#}");
    blocker.query_drop("UNLOCK TABLES").await.unwrap();
    assert_eq!(daemon.wait(Duration::from_secs(30)).await, Some(0));

    let status = rig.status().await;
    let after: Vec<String> = steps(&status).into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        after,
        ["done", "pending", "pending", "pending", "pending"],
        "the running step finished and was journalled; nothing after it ran: {status:#}"
    );
    assert_eq!(status["state"], "promoting");
    assert_eq!(rig.replica_read_only().await, "1");
    assert!(
        daemon.log().contains("stopping before step make_writable"),
        "{}",
        daemon.log()
    );

    let daemon = rig.spawn_daemon();
    let status = rig
        .wait_for_status("the resumed promotion", Duration::from_secs(60), |s| {
            s["state"] == "promoted"
        })
        .await;
    assert_eq!(status["promotion"]["steps"][0]["attempts"], 1);
    assert_eq!(status["promotion"]["steps"][1]["attempts"], 1);
    assert_eq!(
        rig.db.replica.app_write_ids().await.unwrap(),
        (1..=20).collect::<Vec<u64>>()
    );
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        log.contains("resuming the interrupted promotion at step make_writable"),
        "{log}"
    );
}

/// systemd kills a `Type=notify` service that takes too long to say READY: a resumed
/// promotion can wait minutes for the relay log, so READY=1 comes before it.
#[tokio::test(flavor = "multi_thread")]
async fn ready_is_sent_before_an_interrupted_promotion_is_resumed() {
    let rig = stage().await;
    // A promotion interrupted before its first step (the process killed there).
    let crashed = rig
        .command(&["--promote-now", "--yes"])
        .env(failover_watchdog::crashpoint::ENV, "before:stop_replica")
        .output()
        .await
        .unwrap();
    assert_eq!(crashed.status.code(), None, "killed at the crash point");
    let mut blocker = hold_the_relay_log(&rig, 20).await;

    let socket_dir = tempfile::tempdir().unwrap();
    let socket_path = socket_dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let log_path = socket_dir.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut daemon = rig
        .command(&["run"])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();

    let mut buffer = [0u8; 4096];
    let received = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buffer))
        .await
        .expect("READY=1 within 30 s")
        .unwrap();
    let message = String::from_utf8_lossy(&buffer[..received]).into_owned();
    assert!(message.contains("READY=1"), "{message}");
    // READY came while the resumed step still waits for the relay log.
    let status = wait_for_stop_replica_running(&rig).await;
    assert_eq!(status["state"], "promoting");
    assert_eq!(status["promotion"]["outcome"], "running");

    blocker.query_drop("UNLOCK TABLES").await.unwrap();
    rig.wait_for_status("the resumed promotion", Duration::from_secs(60), |s| {
        s["state"] == "promoted"
    })
    .await;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("stopped within 20 s")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
