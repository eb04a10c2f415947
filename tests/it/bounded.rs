//! Every HTTP client is bounded, found by a hostile pass and named after what it found:
//! a Telegram or a witness answering an endless body drove `pause` and `smoke-test` to
//! gigabytes of memory; a webhook answering 307 to another port got the body, routing
//! key included, posted there. The binary runs against the stand-ins' hostile modes;
//! its peak memory is the kernel's count for that one process (`wait4`).

use std::process::Stdio;
use std::time::Duration;

use failover_watchdog_rig::hostile::{Answer, HostileServer, Trap};
use failover_watchdog_rig::panel::PanelStandIn;
use failover_watchdog_rig::telegram::Mode as TelegramMode;
use failover_watchdog_rig::webhook::{Mode as HookMode, WebhookStandIn};

use crate::support::*;

/// The most a one-shot command may hold at its peak. A run takes 10 to 25 MiB; before
/// the caps, an endless body took gigabytes within seconds.
const PEAK_LIMIT_KIB: u64 = 64 * 1024;

const PD_KEY: &str = "pd-routing-key-redirected-0123";

/// Runs the binary with `args` on the stage (as [`Stage::run`] does), reads its peak
/// resident memory from the kernel when it is reaped, prints it and holds it under
/// [`PEAK_LIMIT_KIB`].
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives its resource usage; std's wait does not"
)]
async fn run_small(rig: &Stage, args: &[&str]) -> Run {
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env("PATH", rig.systemctl.path_env())
        .env("FAILOVER_WATCHDOG_CONFIG", rig.config_path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let reaped = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: a plain wait for our own child; `usage` is written by the kernel.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        (code, usage.ru_maxrss as u64)
    });
    let (code, peak_kib) = match tokio::time::timeout(Duration::from_secs(120), reaped).await {
        Ok(reaped) => reaped.unwrap(),
        Err(_) => {
            // SAFETY: the child is not reaped yet, so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{args:?} did not finish within 120 s");
        }
    };
    eprintln!("{args:?}: peak {peak_kib} KiB");
    assert!(peak_kib < PEAK_LIMIT_KIB, "{args:?}: peak {peak_kib} KiB");
    Run {
        code,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A Telegram answering an endless body drove `pause` to 4.2 GB in 10 s: the answer was
/// read whole, and read again on every retry.
#[tokio::test(flavor = "multi_thread")]
async fn pause_with_a_telegram_answering_an_endless_body_stays_small() {
    let rig = stage().await;
    rig.telegram.set_mode(TelegramMode::EndlessBody);
    let started = std::time::Instant::now();
    let paused = run_small(&rig, &["pause", "--reason", "endless"]).await;
    let took = started.elapsed();
    eprintln!("pause against an endless Telegram took {took:?}");
    assert_eq!(paused.code, Some(0), "{paused:?}");
    // Refused at once, not retried: the command did not wait out its 10 s.
    assert!(took < Duration::from_secs(8), "{took:?}");
    let stderr = &paused.stderr;
    assert!(
        stderr.contains("the answer's body is over the 1 MiB cap"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: 1 alert(s) not delivered, 0 still queued"),
        "{stderr}"
    );
    assert!(!stderr.contains(TG_TOKEN), "{stderr}");
    assert_eq!(rig.status().await["state"], "paused");
}

/// A witness answering an endless body drove `smoke-test` to 3.6 GB in 4 s. The
/// Telegram check, the witness check and the endpoint check each meet one here: the
/// first two fail naming the cap, the third never reads a body, and the whole run stays
/// small.
#[tokio::test(flavor = "multi_thread")]
async fn smoke_test_against_endless_answers_stays_small() {
    let rig = stage().await;
    rig.telegram.set_mode(TelegramMode::EndlessBody);
    let witness = HostileServer::start(Answer::EndlessBody).await.unwrap();
    let panel = PanelStandIn::start().await.unwrap();
    let tables = format!(
        r#"
[[probe.witnesses]]
name = "endless"
url = "{witness}"
token_file = "witness.token"
timeout = "900ms"

[smoke]
check_timeout = "10s"
urls = ["{endless}"]
"#,
        witness = witness.url(""),
        endless = panel.url("/endless"),
    );
    rig.write_config(&format!("{}{tables}", rig.config()));
    let smoke = run_small(&rig, &["smoke-test", "--json", "--no-notify"]).await;
    assert_eq!(smoke.code, Some(1), "{smoke:?}");
    let report: serde_json::Value =
        serde_json::from_str(&smoke.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {smoke:?}"));
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {report:#}"))
            .clone()
    };
    let cap = "the answer's body is over the 1 MiB cap; not read further";
    let tokens = check("api_tokens");
    assert_eq!(tokens["result"], "fail", "{tokens:#}");
    assert!(
        tokens["detail"].as_str().unwrap().contains("Telegram: "),
        "{tokens:#}"
    );
    assert!(
        tokens["detail"].as_str().unwrap().contains(cap),
        "{tokens:#}"
    );
    let witnesses = check("witnesses");
    assert_eq!(witnesses["result"], "fail", "{witnesses:#}");
    assert!(
        witnesses["detail"].as_str().unwrap().contains(cap),
        "{witnesses:#}"
    );
    let endpoints = check("endpoints");
    assert_eq!(endpoints["result"], "pass", "{endpoints:#}");
    assert!(witness.requests() >= 1);
}

/// A pagerduty-format webhook answering 307 to another port got the body, routing key
/// included, posted there. Now the redirect fails the delivery, naming its target, and
/// nothing reaches the target; the smoke test's reachability check fails the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_pagerduty_webhook_answering_307_sends_the_routing_key_nowhere() {
    let rig = stage().await;
    let hook = WebhookStandIn::start().await.unwrap();
    let trap = Trap::start().await.unwrap();
    hook.set_mode(HookMode::RedirectTo(trap.addr()));
    std::fs::write(rig.dir.path().join("pd.key"), PD_KEY).unwrap();
    let table = format!(
        r#"
[[alerts.webhooks]]
url = "{url}"
format = "pagerduty"
name = "pd"
token_file = "pd.key"
"#,
        url = hook.url("/v2/enqueue"),
    );
    rig.write_config(&format!("{}{table}", rig.config()));

    let paused = rig.run(&["pause"]).await;
    assert_eq!(paused.code, Some(0), "{paused:?}");
    let target = format!("http://{}/v2/enqueue", trap.addr());
    assert!(
        paused
            .stderr
            .contains(&format!("HTTP 307 redirect to {target}, not followed")),
        "{}",
        paused.stderr
    );
    assert!(
        paused
            .stderr
            .contains("warning: 1 alert(s) not delivered, 0 still queued"),
        "{}",
        paused.stderr
    );
    assert_eq!(hook.attempts(), 1, "a redirect is not retried");
    // Telegram took the alert; the webhook's failure held nothing.
    assert_eq!(rig.telegram.messages().len(), 1);

    let smoke = rig.run(&["smoke-test", "--json", "--no-notify"]).await;
    assert!(
        smoke
            .stdout
            .contains("webhook pd: reaching webhook pd (HEAD) failed"),
        "{}",
        smoke.stdout
    );
    assert!(smoke.stdout.contains(&target), "{}", smoke.stdout);

    assert_eq!(trap.arrivals(), 0, "{}", trap.received());
    for output in [&paused.stdout, &paused.stderr, &smoke.stdout, &smoke.stderr] {
        assert!(!output.contains(PD_KEY), "the routing key leaked: {output}");
    }
}
