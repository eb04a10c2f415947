//! The smoke test (`smoke-test`): the standby's readiness checks, which prove that a
//! takeover would work now, so a regression shows up before the outage does.
//!
//! Nine checks run concurrently, each bounded by its own timeout (`[smoke]
//! check_timeout`; the trial boot has `trial_boot_timeout`). They change nothing: they
//! read the replica's state and grants, ask systemd, read files, run the operator's
//! trial boot command, fetch URLs, ask Cloudflare and Telegram about their tokens and
//! ask the witnesses what they see.
//! The one write is a small file in `state_dir`, created and removed again (by
//! [`crate::store`]) to prove the promotion journal could be written.
//!
//! A check with nothing configured is `skip`, never `pass`. The checks' I/O lives in
//! [`checks`] and goes through the edges; what they conclude from what they read is pure
//! ([`assess`]) and unit-tested, like the table and the Telegram summary here.
//!
//! A check may pass with a warning (a DNS record whose TTL keeps users on the old
//! primary long after the switch): it stays `pass`, the warning is in its detail, and
//! the table's last lines and the Telegram summary repeat it, so whoever reads only the
//! verdict still sees it. Every detail is scrubbed of every configured secret before it
//! is shown: the checks report what services and commands said.

pub(crate) mod checks;

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::edges::Edges;
pub use failover_watchdog_core::readiness::*;

/// Time the trial boot check gets beyond `trial_boot_timeout`: killing the command and
/// reading the rest of its output. The command itself is killed at its timeout.
const TRIAL_BOOT_GRACE: Duration = Duration::from_secs(5);

/// Runs every check concurrently, each within its own time limit.
pub async fn run(edges: &Edges) -> SmokeReport {
    let (config, scrubber) = (&edges.config, &edges.scrubber);
    let at = Timestamp::now();
    let limit = config.smoke.check_timeout;
    let (replication, sync, build, trial, endpoints, tokens, plan, watchdog, witnesses) = tokio::join!(
        bounded(CheckName::Replication, limit, checks::replication(edges)),
        bounded(
            CheckName::SyncDaemons,
            limit,
            checks::sync_daemons(&config.smoke)
        ),
        bounded(
            CheckName::BuildPresent,
            limit,
            checks::build_present(&config.smoke)
        ),
        bounded(
            CheckName::TrialBoot,
            config.smoke.trial_boot_timeout + TRIAL_BOOT_GRACE,
            checks::trial_boot(&config.smoke)
        ),
        bounded(
            CheckName::Endpoints,
            limit,
            checks::endpoints(&config.smoke)
        ),
        bounded(CheckName::ApiTokens, limit, checks::api_tokens(edges)),
        bounded(
            CheckName::PromotionPlan,
            limit,
            checks::promotion_plan(edges)
        ),
        bounded(
            CheckName::WatchdogAlive,
            limit,
            checks::watchdog_alive(edges)
        ),
        bounded(CheckName::Witnesses, limit, checks::witnesses(edges)),
    );
    let checks = [
        replication,
        sync,
        build,
        trial,
        endpoints,
        tokens,
        plan,
        watchdog,
        witnesses,
    ];
    // The last line: whatever a check let through, no secret is shown.
    let checks = checks
        .into_iter()
        .map(|c| c.scrubbed(|text| scrubber.scrub(text)))
        .collect();
    SmokeReport::new(&config.node.name, at, checks)
}

/// Runs one check; one that takes longer than `limit` fails.
async fn bounded(
    name: CheckName,
    limit: Duration,
    check: impl Future<Output = Finding>,
) -> CheckReport {
    let started = Instant::now();
    let finding = tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| {
            Finding::fail(format!(
                "no result within {}",
                humantime::format_duration(limit)
            ))
        });
    CheckReport::new(name, finding, started.elapsed().as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Scrubber;

    #[test]
    fn a_report_is_scrubbed_of_every_secret() {
        let secret = crate::secret::Secret::inline("cf-secret-token");
        let check = CheckReport::new(
            CheckName::ApiTokens,
            Finding::fail("HTTP 400: bad header Bearer cf-secret-token")
                .with_warnings(["cf-secret-token".to_string()]),
            1,
        )
        .scrubbed(|text| Scrubber::new([&secret]).scrub(text));
        assert_eq!(
            check.detail,
            "HTTP 400: bad header Bearer [redacted]; warning: [redacted]"
        );
        assert_eq!(check.warnings, ["[redacted]"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_runs_past_its_limit_fails() {
        let report = bounded(
            CheckName::Endpoints,
            Duration::from_secs(30),
            std::future::pending(),
        )
        .await;
        assert_eq!(report.result, Verdict::Fail);
        assert_eq!(report.detail, "no result within 30s");
        assert_eq!(report.duration_ms, 30_000);
    }
}
