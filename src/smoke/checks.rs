//! The smoke test's nine checks: the I/O, through the edges (`replica.rs`,
//! `systemd.rs`, `cloudflare.rs`, `alert.rs`, `store.rs`; the trial boot through
//! `shell.rs`, in its own process group). Each reads what it needs, concludes with
//! [`super::assess`], and changes nothing.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures::future::join_all;
use jiff::Timestamp;
use tokio::time::Instant;
use url::Url;

use super::{Finding, assess};
use crate::alert;
use crate::config::{Config, SmokeConfig};
use crate::edges::Edges;
use crate::probe::{error_chain, human_duration};
use crate::retry::{Backoff, retry_until};
use crate::secret::Scrubber;
use crate::shell::{self, Ended, Program};
use crate::status;
use crate::systemd;
use crate::witness::Said;
use crate::witness::client::Witnesses;

/// The detail shows this many of its last lines, at most [`OUTPUT_TAIL_CHARS`].
const OUTPUT_TAIL_LINES: usize = 5;
const OUTPUT_TAIL_CHARS: usize = 300;

const USER_AGENT: &str = concat!(
    "failover-watchdog/",
    env!("CARGO_PKG_VERSION"),
    " smoke-test"
);

/// Check 1, replication: threads, errors, lag, read-only, GTID, heartbeat; with
/// `[peer]` (this program manages the channel), the channel's settings and the
/// semi-sync side against the config, each drifted setting named.
pub async fn replication(edges: &Edges) -> Finding {
    let config = &edges.config;
    let state = match edges.own.state().await {
        Ok(state) => state,
        Err(e) => return Finding::fail(format!("{e:#}")),
    };
    let drift = if config.peer.is_some() {
        crate::pair::drift(config, crate::role::Role::Standby, &state)
    } else {
        Vec::new()
    };
    let read_only = state.read_only;
    match state.replica {
        None => Finding::fail(format!(
            "not replicating: SHOW ALL SLAVES STATUS has no connection {:?} on {}:{}",
            config.replica.connection_name, config.replica.host, config.replica.port
        )),
        Some(status) => assess::replication(
            &status,
            read_only,
            config.smoke.max_lag,
            config
                .probe
                .confirm_with_replication
                .then(|| config.probe.heartbeat_rule()),
            &drift,
        ),
    }
}

/// Check 2, sync daemons: every `sync_units` unit active.
pub async fn sync_daemons(smoke: &SmokeConfig) -> Finding {
    if smoke.sync_units.is_empty() {
        return Finding::skip("no [smoke] sync_units configured");
    }
    let states = join_all(
        smoke
            .sync_units
            .iter()
            .map(|unit| systemd::active_state(unit, smoke.check_timeout)),
    )
    .await;
    Finding::from_parts(
        smoke
            .sync_units
            .iter()
            .zip(states)
            .map(|(unit, state)| match state {
                Ok(state) if state == "active" => Ok(format!("{unit} active")),
                Ok(state) => Err(format!("{unit} is {state}")),
                Err(e) => Err(format!("{unit}: {e:#}")),
            }),
    )
}

/// Check 3, build present: every `build_paths` path there, its newest file young enough.
pub async fn build_present(smoke: &SmokeConfig) -> Finding {
    if smoke.build_paths.is_empty() {
        return Finding::skip("no [smoke] build_paths configured");
    }
    let paths = smoke.build_paths.clone();
    let max_age = smoke.build_max_age;
    // The walk gives up by itself at the check's limit, so it never outlives the command.
    let deadline = std::time::Instant::now() + smoke.check_timeout;
    let examined = tokio::task::spawn_blocking(move || {
        paths
            .iter()
            .map(|path| {
                let newest =
                    newest_file(path, deadline).map_err(|e| format!("{}: {e}", path.display()))?;
                assess::build(
                    path,
                    newest.as_ref().map(|(file, at)| (file.as_path(), *at)),
                    SystemTime::now(),
                    max_age,
                )
            })
            .collect::<Vec<_>>()
    })
    .await;
    match examined {
        Ok(parts) => Finding::from_parts(parts),
        Err(e) => Finding::fail(format!("examining the build failed: {e}")),
    }
}

/// The newest regular file at or under `path`, by modification time. `path` itself may
/// be a symlink (`current -> releases/42`); links below it are not followed.
fn newest_file(
    path: &Path,
    deadline: std::time::Instant,
) -> std::io::Result<Option<(PathBuf, SystemTime)>> {
    let top = std::fs::metadata(path)?;
    if !top.is_dir() {
        return Ok(Some((path.to_path_buf(), top.modified()?)));
    }
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut directories = vec![path.to_path_buf()];
    while let Some(directory) = directories.pop() {
        if std::time::Instant::now() > deadline {
            return Err(std::io::Error::other(
                "still looking for the newest file at the check's time limit",
            ));
        }
        for entry in std::fs::read_dir(&directory)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                directories.push(entry.path());
            } else if kind.is_file() {
                let modified = entry.metadata()?.modified()?;
                if newest.as_ref().is_none_or(|(_, at)| modified > *at) {
                    newest = Some((entry.path(), modified));
                }
            }
        }
    }
    Ok(newest)
}

/// Check 4, application trial boot: the `trial_boot` command exits 0 within its timeout.
pub async fn trial_boot(smoke: &SmokeConfig) -> Finding {
    let Some(argv) = &smoke.trial_boot else {
        return Finding::skip("no [smoke] trial_boot configured");
    };
    let command = argv.join(" ");
    let started = Instant::now();
    let ran =
        match shell::run_in_own_group(Program::Argv(argv), &[], smoke.trial_boot_timeout).await {
            Ok(ran) => ran,
            Err(e) => return Finding::fail(format!("cannot run `{command}`: {e}")),
        };
    let took = human_duration(started.elapsed());
    let output = output_tail(&ran.output);
    match ran.ended {
        Ended::Exited(status) if status.success() => {
            Finding::pass(format!("`{command}` exited 0 in {took}; output: {output}"))
        }
        Ended::Exited(status) => Finding::fail(format!(
            "`{command}` {} after {took}; output: {output}",
            match status.code() {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".to_string(),
            }
        )),
        Ended::TimedOut => Finding::fail(format!(
            "`{command}` still running after trial_boot_timeout {}: killed; output: {output}",
            humantime::format_duration(smoke.trial_boot_timeout)
        )),
    }
}

/// The output's last non-blank lines on one line, control characters removed.
fn output_tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<String> = text
        .lines()
        .map(|line| line.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|line| line.trim().to_string())
        .filter(|line| !line.is_empty())
        .collect();
    if lines.is_empty() {
        return "(none)".to_string();
    }
    let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL_LINES)..].join(" | ");
    let chars = tail.chars().count();
    if chars <= OUTPUT_TAIL_CHARS {
        return tail;
    }
    let end: String = tail.chars().skip(chars - OUTPUT_TAIL_CHARS).collect();
    format!("…{end}")
}

/// Check 5, panel and endpoints: every `urls` URL answers 2xx or 3xx.
pub async fn endpoints(smoke: &SmokeConfig) -> Finding {
    if smoke.urls.is_empty() {
        return Finding::skip("no [smoke] urls configured");
    }
    // A redirect is an answer, not followed: a panel that sends you to its login page
    // is up. No body is read: the status says all.
    let client = match crate::http_client::builder(smoke.check_timeout)
        .user_agent(USER_AGENT)
        .build()
    {
        Ok(client) => client,
        Err(e) => return Finding::fail(format!("cannot make an HTTP client: {e}")),
    };
    let answers = join_all(smoke.urls.iter().map(|url| client.get(url.clone()).send())).await;
    Finding::from_parts(smoke.urls.iter().zip(answers).map(|(url, answer)| {
        let url = without_password(url);
        match answer {
            Ok(response)
                if response.status().is_success() || response.status().is_redirection() =>
            {
                Ok(format!("{url} HTTP {}", response.status().as_u16()))
            }
            Ok(response) => Err(format!(
                "{url} HTTP {} (expected 2xx or 3xx)",
                response.status().as_u16()
            )),
            Err(e) => Err(format!("{url}: {}", error_chain(&e.without_url()))),
        }
    }))
}

/// A URL as shown: a password in it is not.
fn without_password(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("redacted"));
    }
    shown.to_string()
}

/// Check 9, witnesses: each `[[probe.witnesses]]` answers with our token, and reaches
/// the primary. A witness that cannot be asked counts as not agreeing, so it would hold
/// an automatic promotion; one that cannot reach a healthy primary has wrong checks or a
/// wrong network, and would not stop a false one.
pub async fn witnesses(edges: &Edges) -> Finding {
    let witnesses = match Witnesses::new(&edges.config.probe.witnesses, edges.scrubber.clone()) {
        Ok(Some(witnesses)) => witnesses,
        Ok(None) => return Finding::skip("no [[probe.witnesses]]"),
        Err(e) => return Finding::fail(format!("cannot make an HTTP client: {e:#}")),
    };
    Finding::from_parts(
        witnesses
            .ask_all()
            .await
            .into_iter()
            .map(|report| match report.said {
                Said::Up => Ok(format!("{} answers and reaches the primary", report.name)),
                Said::Down => Err(format!(
                    "{} answers but cannot reach the primary ({}): check its [[probe.checks]] and its network",
                    report.name, report.detail
                )),
                Said::NoAnswer => Err(report.describe()),
            }),
    )
}

/// Check 6, API tokens: Cloudflare's is active and finds every record; Telegram knows the bot;
/// every webhook's receiver answers ([`alert::webhook::check_reachable`]: nothing is
/// posted, no one is paged). A record that is not proxied and has a long TTL passes with
/// a warning ([`assess::dns_ttl`]).
pub async fn api_tokens(edges: &Edges) -> Finding {
    let (config, scrubber) = (&edges.config, &edges.scrubber);
    let deadline = Instant::now() + config.smoke.check_timeout;
    let ((cloudflare, warnings), telegram, webhooks) = tokio::join!(
        cloudflare_token(edges, deadline),
        telegram_token(config, scrubber, deadline),
        join_all(config.webhooks.iter().map(|hook| async move {
            alert::webhook::check_reachable(hook, deadline)
                .await
                .map(|said| format!("webhook {}: {said}", hook.name))
                .map_err(|e| scrubber.scrub(&format!("webhook {}: {e:#}", hook.name)))
        }))
    );
    Finding::from_parts(cloudflare.into_iter().chain([telegram]).chain(webhooks))
        .with_warnings(warnings)
}

/// The token's parts of the check, and the warnings about the records found.
async fn cloudflare_token(
    edges: &Edges,
    deadline: Instant,
) -> (Vec<Result<String, String>>, Vec<String>) {
    let (config, cloudflare) = (&edges.config, &edges.cloudflare);
    let verified = retry_until(
        "verifying the Cloudflare API token",
        deadline,
        Backoff::API,
        || cloudflare.verify_token(),
    )
    .await;
    match verified {
        Ok(status) if status == "active" => {}
        Ok(status) => {
            return (
                vec![Err(format!("the Cloudflare API token is {status}"))],
                vec![],
            );
        }
        // The record lookups would only fail the same way.
        Err(e) => return (vec![Err(format!("Cloudflare: {e:#}"))], vec![]),
    }
    let found = join_all(config.dns.records.iter().map(|record| async {
        let what = format!(
            "finding {} {} in zone {}",
            record.name, record.record_type, record.zone_id
        );
        retry_until(&what, deadline, Backoff::API, || {
            cloudflare.find_record(&record.zone_id, &record.name, &record.record_type)
        })
        .await
    }))
    .await;
    let mut warnings = Vec::new();
    let records = config
        .dns
        .records
        .iter()
        .zip(found)
        .map(|(record, found)| match found {
            Ok(found) => {
                let what = format!("{} {}", record.name, record.record_type);
                warnings.extend(assess::dns_ttl(
                    &what,
                    found.ttl,
                    found.proxied,
                    config.probe.failures_before_promotion,
                    config.probe.interval,
                ));
                Ok(format!("{what} found ({})", found.content))
            }
            Err(e) => Err(format!("Cloudflare: {e:#}")),
        })
        .collect::<Vec<_>>();
    let parts = std::iter::once(Ok("Cloudflare API token active".to_string()))
        .chain(records)
        .collect();
    (parts, warnings)
}

async fn telegram_token(
    config: &Config,
    scrubber: &Scrubber,
    deadline: Instant,
) -> Result<String, String> {
    let Some(telegram) = &config.telegram else {
        return Ok("no [telegram] configured (alerts go to the log)".to_string());
    };
    alert::verify_bot(telegram, scrubber.clone(), deadline)
        .await
        .map(|bot| format!("Telegram bot {bot}"))
        .map_err(|e| format!("Telegram: {e:#}"))
}

/// Check 7, promotion plan: the config is valid (or we would not be here), every unit is known
/// to systemd, the replica user holds every privilege the steps need, `state_dir` is
/// writable, and no promotion is in the journal.
pub async fn promotion_plan(edges: &Edges) -> Finding {
    let config = &edges.config;
    let limit = config.smoke.check_timeout;
    let replica = &edges.own;
    let (units, grants) = tokio::join!(
        join_all(
            config
                .apps
                .units
                .iter()
                .map(|unit| systemd::load_state(unit, limit))
        ),
        replica.grants()
    );
    let store = edges.store.clone();
    let state_dir = store.path().display().to_string();
    let on_disk = tokio::task::spawn_blocking(move || {
        let writable = if store.path().is_dir() {
            store.check_writable()
        } else {
            Err(anyhow::anyhow!(
                "it does not exist (the daemon creates it when it first starts)"
            ))
        };
        (writable, store.load_journal())
    })
    .await;
    let (writable, journal) = match on_disk {
        Ok(found) => found,
        Err(e) => return Finding::fail(format!("examining {state_dir} failed: {e}")),
    };

    let mut parts = vec![Ok("config valid".to_string())];
    parts.extend(
        config
            .apps
            .units
            .iter()
            .zip(units)
            .map(|(unit, state)| match state {
                Ok(state) if state == "loaded" => Ok(format!("{unit} known")),
                Ok(state) => Err(format!(
                    "{unit} is not known to systemd (LoadState {state})"
                )),
                Err(e) => Err(format!("{unit}: {e:#}")),
            }),
    );
    parts.push(match grants {
        Ok(grants) => assess::grants(&grants, &config.replica.user, config.replica.reset_replica),
        Err(e) => Err(format!("reading the replica user's grants: {e:#}")),
    });
    parts.push(match writable {
        Ok(()) => Ok(format!("state_dir {state_dir} writable")),
        Err(e) => Err(format!("state_dir {state_dir} is not writable: {e:#}")),
    });
    parts.push(match journal {
        Ok(journal) => assess::journal(journal.as_ref()),
        Err(e) => Err(format!("{e:#}")),
    });
    parts.extend(tls_parts(edges).await);
    Finding::from_parts(parts)
}

/// TLS to the databases a takeover and the way back reach beyond this host's own (the
/// old primary's, which the fence reaches through the first `mysql` check's account,
/// and `[peer]`'s): one that answers but fails TLS fails the plan, the server and the
/// problem named (the daemon counts such a primary alive, and could not fence it). One
/// that does not answer, or refuses the account, is not TLS's doing: no part.
async fn tls_parts(edges: &Edges) -> Vec<Result<String, String>> {
    let mut parts = Vec::new();
    for server in edges.old_primary.iter().chain(&edges.peer) {
        parts.extend(server.check_tls().await);
    }
    parts
}

/// Check 8, watchdog alive: the daemon runs, monitors, and did a round lately.
pub async fn watchdog_alive(edges: &Edges) -> Finding {
    let config = &edges.config;
    let now = Timestamp::now();
    let report = match crate::status::gather(&edges.store, &config.probe, now) {
        Ok(report) => report,
        Err(e) => return Finding::fail(format!("{e:#}")),
    };
    let daemon = assess::Daemon {
        state: report.state,
        updated_at: report.daemon_updated_at,
        pid: report.daemon_pid,
        pid_alive: report.daemon_running,
    };
    assess::watchdog(
        &daemon,
        now,
        status::stale_after(config.probe.interval, config.probe.timeout),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::smoke::Verdict;

    fn smoke() -> SmokeConfig {
        SmokeConfig {
            check_timeout: Duration::from_secs(5),
            max_lag: Duration::from_secs(60),
            sync_units: Vec::new(),
            build_paths: Vec::new(),
            build_max_age: None,
            trial_boot: None,
            trial_boot_timeout: Duration::from_secs(10),
            urls: Vec::new(),
        }
    }

    fn shell(script: &str) -> Option<Vec<String>> {
        Some(["/bin/sh", "-c", script].map(String::from).to_vec())
    }

    #[tokio::test]
    async fn unconfigured_checks_skip() {
        let smoke = smoke();
        for finding in [
            sync_daemons(&smoke).await,
            build_present(&smoke).await,
            trial_boot(&smoke).await,
            endpoints(&smoke).await,
        ] {
            assert_eq!(finding.verdict, Verdict::Skip, "{finding:?}");
            assert!(finding.detail.contains("configured"), "{finding:?}");
        }
    }

    #[tokio::test]
    async fn a_trial_boot_is_judged_by_its_exit_code_and_shows_its_output_tail() {
        let cases = [
            (
                "for i in 1 2 3 4 5 6 7; do echo line $i; done; echo ready >&2",
                Verdict::Pass,
                "exited 0",
                // stdout and stderr in order, the last lines only.
                "output: line 4 | line 5 | line 6 | line 7 | ready",
            ),
            (
                "echo booting; echo 'SQLSTATE[HY000] [2002] Connection refused' >&2; exit 3",
                Verdict::Fail,
                "exited with 3",
                "output: booting | SQLSTATE[HY000] [2002] Connection refused",
            ),
            (
                "kill -TERM $$",
                Verdict::Fail,
                "killed by a signal",
                "output: (none)",
            ),
        ];
        for (script, verdict, ending, tail) in cases {
            let smoke = SmokeConfig {
                trial_boot: shell(script),
                ..smoke()
            };
            let finding = trial_boot(&smoke).await;
            assert_eq!(finding.verdict, verdict, "{script}: {finding:?}");
            assert!(finding.detail.contains(ending), "{script}: {finding:?}");
            assert!(finding.detail.ends_with(tail), "{script}: {finding:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_trial_boot_program_fails() {
        let smoke = SmokeConfig {
            trial_boot: Some(vec!["/nonexistent/app-check".to_string()]),
            ..smoke()
        };
        let finding = trial_boot(&smoke).await;
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(
            finding
                .detail
                .starts_with("cannot run `/nonexistent/app-check`: "),
            "{finding:?}"
        );
    }

    /// Whether `pid` is gone or a zombie waiting for its (new) parent to reap it.
    fn dead(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn a_hanging_trial_boot_is_killed_at_its_timeout_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background.pid");
        let smoke = SmokeConfig {
            trial_boot: shell(&format!(
                "sleep 600 & echo $! > {}; echo waiting for the database; sleep 600",
                pid_file.display()
            )),
            trial_boot_timeout: Duration::from_millis(500),
            ..smoke()
        };
        let started = Instant::now();
        let finding = trial_boot(&smoke).await;
        assert!(started.elapsed() < Duration::from_secs(3), "{finding:?}");
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(
            finding
                .detail
                .contains("still running after trial_boot_timeout 500ms: killed"),
            "{finding:?}"
        );
        assert!(
            finding.detail.ends_with("output: waiting for the database"),
            "{finding:?}"
        );
        let background: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // SIGKILL was sent; the kernel may take a moment to finish the process off.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead(background) {
            assert!(
                Instant::now() < deadline,
                "the background sleep survived the trial boot"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn the_output_tail_is_short_and_plain() {
        assert_eq!(output_tail(b""), "(none)");
        assert_eq!(output_tail(b"\n  \n"), "(none)");
        assert_eq!(
            output_tail(b"\x1b[31mred\x1b[0m\r\nok\n"),
            "[31mred[0m | ok"
        );
        let long = "y".repeat(1000);
        let tail = output_tail(long.as_bytes());
        assert_eq!(tail.chars().count(), OUTPUT_TAIL_CHARS + 1);
        assert!(tail.starts_with('…'));
    }

    #[test]
    fn the_newest_file_is_found_below_a_symlinked_release() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("releases/42");
        std::fs::create_dir_all(release.join("public/css")).unwrap();
        let touch = |relative: &str, age_days: u64| {
            let path = release.join(relative);
            let file = std::fs::File::create(&path).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(age_days * 86400))
                .unwrap();
        };
        touch("index.php", 30);
        touch("public/css/app.css", 3);
        touch("public/robots.txt", 10);
        let current = dir.path().join("current");
        std::os::unix::fs::symlink(&release, &current).unwrap();
        let far = std::time::Instant::now() + Duration::from_secs(60);
        let (file, _) = newest_file(&current, far).unwrap().unwrap();
        assert_eq!(file, current.join("public/css/app.css"));

        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert_eq!(newest_file(&empty, far).unwrap(), None);
        let missing = newest_file(&dir.path().join("missing"), far).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn build_paths_pass_when_fresh_and_fail_when_stale_or_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.js"), "built").unwrap();
        let fresh = SmokeConfig {
            build_paths: vec![dir.path().to_path_buf()],
            build_max_age: Some(Duration::from_secs(3600)),
            ..smoke()
        };
        let finding = build_present(&fresh).await;
        assert_eq!(finding.verdict, Verdict::Pass, "{finding:?}");
        assert!(finding.detail.contains("newest file app.js"), "{finding:?}");

        let stale = SmokeConfig {
            build_max_age: Some(Duration::from_nanos(1)),
            ..fresh.clone()
        };
        let finding = build_present(&stale).await;
        assert_eq!(finding.verdict, Verdict::Fail, "{finding:?}");

        let missing = SmokeConfig {
            build_paths: vec![dir.path().to_path_buf(), dir.path().join("gone")],
            ..fresh
        };
        let finding = build_present(&missing).await;
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(
            finding
                .detail
                .ends_with("gone: No such file or directory (os error 2)"),
            "{finding:?}"
        );
    }

    #[tokio::test]
    async fn endpoints_pass_on_2xx_and_3xx_and_fail_otherwise() {
        let panel = failover_watchdog_rig::panel::PanelStandIn::start()
            .await
            .unwrap();
        let urls = |paths: &[&str]| -> Vec<Url> {
            paths
                .iter()
                .map(|p| panel.url(p).parse().unwrap())
                .collect()
        };
        let up = SmokeConfig {
            urls: urls(&["/health", "/login"]),
            ..smoke()
        };
        let finding = endpoints(&up).await;
        assert_eq!(finding.verdict, Verdict::Pass, "{finding:?}");
        assert!(
            finding.detail.contains("/login HTTP 302"),
            "not followed: {finding:?}"
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let mut down = urls(&["/health", "/maintenance"]);
        down.push(refused.parse().unwrap());
        let finding = endpoints(&SmokeConfig {
            urls: down,
            ..smoke()
        })
        .await;
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(
            finding
                .detail
                .contains("/maintenance HTTP 503 (expected 2xx or 3xx)"),
            "{finding:?}"
        );
        assert!(finding.detail.contains("Connection refused"), "{finding:?}");
        assert!(
            !finding.detail.contains("/health"),
            "only failures: {finding:?}"
        );
    }

    #[test]
    fn a_password_in_a_url_is_not_shown() {
        let url: Url = "https://ops:hunter2@panel.example.com/".parse().unwrap();
        assert_eq!(
            without_password(&url),
            "https://ops:redacted@panel.example.com/"
        );
    }
}
