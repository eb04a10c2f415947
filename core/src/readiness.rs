//! The smoke test's verdicts (`smoke-test`, the standby's readiness checks): each
//! check's name, its finding, the report, its table and its Telegram summary, and what
//! the checks conclude from what they read ([`assess`]). The checks themselves (their
//! reading, each bounded by its timeout) are in the binary crate's `smoke` module.
//!
//! A check with nothing configured is `skip`, never `pass`.
//!
//! A check may pass with a warning (a DNS record whose TTL keeps users on the old
//! primary long after the switch): it stays `pass`, the warning is in its detail, and
//! the table's last lines and the Telegram summary repeat it, so whoever reads only the
//! verdict still sees it. Every detail is scrubbed of every configured secret before it
//! is shown: the checks report what services and commands said.

pub mod assess;

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::report::human_duration;

/// A failed check's detail is cut to this many characters in the Telegram summary (a
/// message holds at most 4096); the table and `--json` have it whole.
const SUMMARY_DETAIL_CHARS: usize = 400;

/// The checks, in the order they run and are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// IO and SQL threads running without error, lag under `max_lag`, read-only, GTID,
    /// heartbeat.
    Replication,
    /// Every `sync_units` unit active.
    SyncDaemons,
    /// Every `build_paths` path there, its newest file younger than `build_max_age`.
    BuildPresent,
    /// The `trial_boot` command exits 0 in time.
    TrialBoot,
    /// Every `urls` URL answers 2xx or 3xx.
    Endpoints,
    /// The Cloudflare token is active and finds each record; Telegram knows the bot.
    ApiTokens,
    /// The promotion could run: units known, grants held, `state_dir` writable, no stale
    /// or halted promotion.
    PromotionPlan,
    /// The daemon runs, monitors and has done a round lately.
    WatchdogAlive,
    /// Every `[[probe.witnesses]]` answers with our token and reaches the primary.
    Witnesses,
}

impl CheckName {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::Replication => "replication",
            CheckName::SyncDaemons => "sync_daemons",
            CheckName::BuildPresent => "build_present",
            CheckName::TrialBoot => "trial_boot",
            CheckName::Endpoints => "endpoints",
            CheckName::ApiTokens => "api_tokens",
            CheckName::PromotionPlan => "promotion_plan",
            CheckName::WatchdogAlive => "watchdog_alive",
            CheckName::Witnesses => "witnesses",
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing configured for it: not a pass, and not a failure either.
    Skip,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
        }
    }
}

/// What a check found: its verdict and, in one line, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub verdict: Verdict,
    pub detail: String,
    /// What does not fail the check but should be known (a long DNS TTL).
    pub warnings: Vec<String>,
}

impl Finding {
    pub fn pass(detail: impl Into<String>) -> Self {
        Self::new(Verdict::Pass, detail)
    }

    pub fn fail(detail: impl Into<String>) -> Self {
        Self::new(Verdict::Fail, detail)
    }

    pub fn skip(detail: impl Into<String>) -> Self {
        Self::new(Verdict::Skip, detail)
    }

    fn new(verdict: Verdict, detail: impl Into<String>) -> Self {
        Self {
            verdict,
            detail: detail.into(),
            warnings: Vec::new(),
        }
    }

    /// The same finding with these warnings added.
    pub fn with_warnings(mut self, warnings: impl IntoIterator<Item = String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// A check made of parts: it fails naming every part that failed, or passes naming
    /// what each part found.
    pub fn from_parts(parts: impl IntoIterator<Item = Result<String, String>>) -> Self {
        let (fine, problems): (Vec<_>, Vec<_>) = parts.into_iter().partition(Result::is_ok);
        if problems.is_empty() {
            Finding::pass(fine.into_iter().flatten().collect::<Vec<_>>().join("; "))
        } else {
            Finding::fail(
                problems
                    .into_iter()
                    .filter_map(Result::err)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }
}

/// One row of the table, one element of `--json`'s `checks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub name: CheckName,
    pub result: Verdict,
    /// Why, in one line; each warning is in it too, as `warning: ...`.
    pub detail: String,
    /// What does not fail the check but should be known; often empty.
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

impl CheckReport {
    /// A check's report from its finding: the warnings are added to the detail.
    pub fn new(name: CheckName, finding: Finding, duration_ms: u64) -> Self {
        let mut detail = finding.detail;
        for warning in &finding.warnings {
            detail.push_str(&format!("; warning: {warning}"));
        }
        Self {
            name,
            result: finding.verdict,
            detail,
            warnings: finding.warnings,
            duration_ms,
        }
    }

    /// The report with every secret cut out of its texts.
    /// The report with its detail and warnings passed through `scrub` (every configured
    /// secret cut out: the checks report what services and commands said).
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> Self {
        Self {
            detail: scrub(&self.detail),
            warnings: self.warnings.iter().map(|w| scrub(w)).collect(),
            ..self
        }
    }
}

/// The whole smoke test: what `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    pub node: String,
    pub at: Timestamp,
    /// No check failed (skips do not count).
    pub ok: bool,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub checks: Vec<CheckReport>,
}

impl SmokeReport {
    pub fn new(node: &str, at: Timestamp, checks: Vec<CheckReport>) -> Self {
        let count = |verdict| checks.iter().filter(|c| c.result == verdict).count();
        let (passed, failed, skipped) = (
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Skip),
        );
        Self {
            node: node.to_string(),
            at,
            ok: failed == 0,
            passed,
            failed,
            skipped,
            checks,
        }
    }

    fn with(&self, verdict: Verdict) -> impl Iterator<Item = &CheckReport> {
        self.checks.iter().filter(move |c| c.result == verdict)
    }

    /// Every warning, as `(check, warning)`.
    fn warnings(&self) -> impl Iterator<Item = (CheckName, &str)> {
        self.checks
            .iter()
            .flat_map(|c| c.warnings.iter().map(|w| (c.name, w.as_str())))
    }

    fn names(&self, verdict: Verdict) -> String {
        self.with(verdict)
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The table: check, result, detail, duration; then the verdict.
    pub fn render(&self) -> String {
        // Details are padded to line the durations up, up to a point: one long detail
        // must not push every row off the screen.
        let width = self
            .checks
            .iter()
            .map(|c| c.detail.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(6, 72);
        let mut out = format!(
            "smoke test of {} at {} (read-only: nothing was changed)\n",
            self.node, self.at
        );
        out.push_str(&format!(
            "{:<15} {:<6} {:<width$} {}\n",
            "CHECK", "RESULT", "DETAIL", "DURATION"
        ));
        for check in &self.checks {
            out.push_str(&format!(
                "{:<15} {:<6} {:<width$} {}\n",
                check.name.as_str(),
                check.result.as_str(),
                check.detail,
                human_duration(Duration::from_millis(check.duration_ms))
            ));
        }
        out.push_str(&format!(
            "{} passed, {} failed, {} skipped (not configured): {}\n",
            self.passed,
            self.failed,
            self.skipped,
            if self.ok {
                "this standby is ready to take over"
            } else {
                "a takeover now would likely not work"
            }
        ));
        for (name, warning) in self.warnings() {
            out.push_str(&format!("warning: {}: {warning}\n", name.as_str()));
        }
        out
    }

    /// The Telegram summary: the verdict, then each failed check with its detail, then
    /// each warning, then the passed and the skipped ones by name. (The alerter puts the
    /// node first.)
    pub fn summary(&self) -> String {
        let total = self.checks.len();
        let mut lines = vec![if self.ok {
            format!(
                "✅ smoke test passed: {} of {total} checks passed; this standby is ready to take over.",
                self.passed
            )
        } else {
            format!(
                "🔴 smoke test FAILED: {} of {total} checks failed; a takeover now would likely not work.",
                self.failed
            )
        }];
        for failed in self.with(Verdict::Fail) {
            lines.push(format!(
                "❌ {}: {}",
                failed.name.as_str(),
                shorten(&failed.detail, SUMMARY_DETAIL_CHARS)
            ));
        }
        for (name, warning) in self.warnings() {
            lines.push(format!(
                "⚠️ {}: {}",
                name.as_str(),
                shorten(warning, SUMMARY_DETAIL_CHARS)
            ));
        }
        if self.passed > 0 {
            lines.push(format!("✅ passed: {}", self.names(Verdict::Pass)));
        }
        if self.skipped > 0 {
            lines.push(format!(
                "⏭ skipped (not configured): {}",
                self.names(Verdict::Skip)
            ));
        }
        lines.join("\n")
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(verdicts: &[(CheckName, Verdict, &str)]) -> SmokeReport {
        let checks = verdicts
            .iter()
            .map(|(name, result, detail)| CheckReport {
                name: *name,
                result: *result,
                detail: detail.to_string(),
                warnings: Vec::new(),
                duration_ms: 12,
            })
            .collect();
        SmokeReport::new("standby-fra1", Timestamp::UNIX_EPOCH, checks)
    }

    fn mixed() -> SmokeReport {
        report(&[
            (CheckName::Replication, Verdict::Pass, "threads running"),
            (CheckName::SyncDaemons, Verdict::Skip, "no sync_units"),
            (
                CheckName::BuildPresent,
                Verdict::Fail,
                "build is 40 days old",
            ),
            (CheckName::TrialBoot, Verdict::Skip, "no trial_boot"),
            (CheckName::Endpoints, Verdict::Pass, "HTTP 200"),
            (CheckName::ApiTokens, Verdict::Fail, "Cloudflare: HTTP 401"),
            (CheckName::PromotionPlan, Verdict::Pass, "units known"),
            (CheckName::WatchdogAlive, Verdict::Pass, "pid 812"),
        ])
    }

    #[test]
    fn the_summary_puts_failures_first_and_names_each() {
        let summary = mixed().summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].contains("FAILED: 2 of 8"), "{summary}");
        assert_eq!(lines[1], "❌ build_present: build is 40 days old");
        assert_eq!(lines[2], "❌ api_tokens: Cloudflare: HTTP 401");
        assert_eq!(
            lines[3],
            "✅ passed: replication, endpoints, promotion_plan, watchdog_alive"
        );
        assert_eq!(
            lines[4],
            "⏭ skipped (not configured): sync_daemons, trial_boot"
        );
    }

    #[test]
    fn a_summary_with_no_failure_says_ready_and_still_lists_skips() {
        let summary = report(&[
            (CheckName::Replication, Verdict::Pass, "ok"),
            (CheckName::TrialBoot, Verdict::Skip, "no trial_boot"),
        ])
        .summary();
        assert!(
            summary.starts_with("✅ smoke test passed: 1 of 2"),
            "{summary}"
        );
        assert!(!summary.contains('❌'), "{summary}");
        assert!(summary.contains("skipped (not configured): trial_boot"));
    }

    #[test]
    fn long_details_are_cut_in_the_summary_only() {
        let long = "x".repeat(5000);
        let report = report(&[(CheckName::TrialBoot, Verdict::Fail, &long)]);
        assert!(report.summary().chars().count() < 600);
        assert!(report.summary().contains('…'));
        assert!(report.render().contains(&long), "the table keeps it whole");
    }

    #[test]
    fn skips_do_not_fail_the_report() {
        let report = report(&[
            (CheckName::Replication, Verdict::Pass, "ok"),
            (CheckName::SyncDaemons, Verdict::Skip, "none"),
        ]);
        assert!(report.ok);
        assert_eq!((report.passed, report.failed, report.skipped), (1, 0, 1));
        assert!(!mixed().ok);
    }

    #[test]
    fn the_table_has_a_row_per_check_in_order_and_the_json_matches_it() {
        let report = mixed();
        let table = report.render();
        let rows: Vec<&str> = table.lines().skip(2).take(8).collect();
        let json = serde_json::to_value(&report).unwrap();
        let checks = json["checks"].as_array().unwrap();
        assert_eq!(checks.len(), rows.len());
        for (row, check) in rows.iter().zip(checks) {
            let columns: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(columns[0], check["name"], "{row}");
            assert_eq!(columns[1], check["result"], "{row}");
            assert!(row.contains(check["detail"].as_str().unwrap()), "{row}");
            assert!(row.ends_with("12 ms"), "{row}");
        }
        assert!(table.contains("4 passed, 2 failed, 2 skipped"), "{table}");
        assert_eq!(json["ok"], false);
        assert_eq!(json["failed"], 2);
    }

    #[test]
    fn a_check_of_parts_fails_naming_only_the_parts_that_failed() {
        let finding = Finding::from_parts([
            Ok("a.service active".to_string()),
            Err("b.service is inactive".to_string()),
            Err("c.service is failed".to_string()),
        ]);
        assert_eq!(
            finding,
            Finding::fail("b.service is inactive; c.service is failed")
        );
        let finding = Finding::from_parts([Ok("a".to_string()), Ok("b".to_string())]);
        assert_eq!(finding, Finding::pass("a; b"));
    }

    #[test]
    fn a_warning_passes_and_shows_in_the_detail_the_table_and_the_summary() {
        let finding = Finding::pass("Cloudflare API token active")
            .with_warnings(["www.example.com A has a long TTL".to_string()]);
        let check = CheckReport::new(CheckName::ApiTokens, finding, 12);
        assert_eq!(check.result, Verdict::Pass);
        assert_eq!(
            check.detail,
            "Cloudflare API token active; warning: www.example.com A has a long TTL"
        );
        let report = SmokeReport::new("standby-fra1", Timestamp::UNIX_EPOCH, vec![check]);
        assert!(report.ok);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["checks"][0]["warnings"],
            serde_json::json!(["www.example.com A has a long TTL"])
        );
        let table = report.render();
        assert!(
            table.ends_with("warning: api_tokens: www.example.com A has a long TTL\n"),
            "{table}"
        );
        let summary = report.summary();
        let lines: Vec<&str> = summary.lines().collect();
        assert!(lines[0].starts_with("✅ smoke test passed"), "{summary}");
        assert_eq!(lines[1], "⚠️ api_tokens: www.example.com A has a long TTL");
    }
}
