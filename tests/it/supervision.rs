//! What systemd is told: READY=1, then WATCHDOG=1 with the state after every round the
//! loop completes, and a watchdog stretched over a promotion while it runs. A fake
//! notify socket stands in for systemd.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixDatagram;

use crate::support::*;

/// Collects every datagram the daemon sends to the notify socket.
struct FakeSystemd {
    messages: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl FakeSystemd {
    fn start() -> FakeSystemd {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let collected = messages.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buffer).await {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                collected.lock().unwrap().push(text);
            }
        });
        FakeSystemd {
            messages,
            _dir: dir,
            path,
        }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits (bounded) until some message satisfies `done`.
    async fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages();
            if messages.iter().any(|m| done(m)) {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {what} within 30 s: {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// With the unit's `WatchdogSec=2s`: the daemon raises the watchdog to its loop's bound
/// (4 × 1 s + 2 × 500 ms), feeds it once per completed round with its state, stretches it
/// over the promotion, and sets it back afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_is_fed_by_completed_rounds_and_stretched_over_a_promotion() {
    let mut rig = stage().await;
    let systemd = FakeSystemd::start();
    let log = rig.state_dir().with_file_name("daemon.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut daemon = rig
        .command(&["run"])
        .env("NOTIFY_SOCKET", &systemd.path)
        .env("WATCHDOG_USEC", "2000000")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();

    let messages = systemd
        .wait_for("two rounds", |m| {
            m.contains("WATCHDOG=1") && m.contains("STATUS=monitoring")
        })
        .await;
    assert_eq!(messages[0], "READY=1\n", "{messages:?}");
    assert_eq!(
        messages[1], "WATCHDOG_USEC=5000000\nWATCHDOG=1\n",
        "the unit's 2 s is raised to the loop's bound: {messages:?}"
    );
    let round = messages.iter().find(|m| m.contains("STATUS=")).unwrap();
    assert!(
        round.starts_with("WATCHDOG=1\nSTATUS=monitoring: 0 of 3 failed rounds; last round "),
        "{round:?}"
    );

    rig.db.primary.kill9();
    let messages = systemd
        .wait_for("the promoted state", |m| m.contains("STATUS=promoted"))
        .await;
    let stretched = messages
        .iter()
        .position(|m| {
            m.strip_prefix("WATCHDOG_USEC=")
                .and_then(|rest| rest.split('\n').next())
                .and_then(|usec| usec.parse::<u64>().ok())
                .is_some_and(|usec| usec > 60_000_000)
        })
        .unwrap_or_else(|| panic!("no stretched watchdog: {messages:?}"));
    let restored = messages[stretched..]
        .iter()
        .position(|m| m == "WATCHDOG_USEC=5000000\nWATCHDOG=1\n")
        .unwrap_or_else(|| panic!("the watchdog was not set back: {messages:?}"));
    assert!(
        messages[stretched + restored..]
            .iter()
            .any(|m| m.contains("STATUS=promoted")),
        "{messages:?}"
    );
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(daemon.id().unwrap() as i32, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("stopped within 20 s")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
