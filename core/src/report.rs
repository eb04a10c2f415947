//! What a probe round found: each check's result ([`CheckReport`]), the round as a
//! whole ([`RoundReport`]: the primary's checks, the standby's self-checks and what the
//! witnesses said), and how a round's checks make its verdict by `fail_when`
//! ([`round_ok`]). The probing itself is an edge of the binary crate (`probe.rs`).

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::gtid::GtidPosition;
use crate::witness::WitnessReport;

/// When a probe round counts as failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailWhen {
    /// A round fails when any check fails.
    Any,
    /// A round fails only when every check fails.
    All,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub ok: bool,
    pub detail: String,
    pub duration_ms: u64,
    /// The primary's `@@gtid_binlog_pos`, read by a `mysql` check that answered: what the
    /// primary had committed at that moment (for the data-loss accounting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_binlog_pos: Option<GtidPosition>,
    /// The primary's `@@global.read_only`, read by a `mysql` check that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// One round's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundReport {
    pub at: Timestamp,
    /// The primary's checks passed (by `fail_when`).
    pub ok: bool,
    pub checks: Vec<CheckReport>,
    /// The standby's own `self_checks`, run in the same round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_checks: Vec<CheckReport>,
    /// What the witnesses said, when they were asked (a failed round, with witnesses).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessReport>,
}

impl RoundReport {
    /// The failed self-checks in one line; `None` when none failed.
    pub fn self_check_failures(&self) -> Option<String> {
        let failed: Vec<String> = self
            .self_checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}: {}", c.kind, c.target, c.detail))
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    /// Whether the primary's database takes writes, if a `mysql` check read it.
    pub fn primary_writable(&self) -> Option<bool> {
        self.checks.iter().find_map(|c| c.read_only.map(|r| !r))
    }

    /// The checks that passed, in one line.
    pub fn answers(&self) -> String {
        let answered: Vec<String> = self
            .checks
            .iter()
            .filter(|c| c.ok)
            .map(|c| format!("{} {}", c.kind, c.target))
            .collect();
        answered.join(", ")
    }

    /// The primary's GTID position, if a `mysql` check read it this round.
    pub fn primary_gtid(&self) -> Option<&GtidPosition> {
        self.checks.iter().find_map(|c| c.gtid_binlog_pos.as_ref())
    }

    /// The failed checks in one line, for logs and the opening alert.
    pub fn failures(&self) -> String {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{} {}: {}", c.kind, c.target, c.detail))
            .collect();
        if failed.is_empty() {
            "no check failed".to_string()
        } else {
            failed.join("; ")
        }
    }
}

/// The round's verdict from its checks' results.
pub fn round_ok(fail_when: FailWhen, checks: impl IntoIterator<Item = bool>) -> bool {
    let results: Vec<bool> = checks.into_iter().collect();
    match fail_when {
        FailWhen::Any => results.iter().all(|ok| *ok),
        FailWhen::All => results.iter().any(|ok| *ok),
    }
}

/// A duration for people: "8 ms", "1.2 s".
pub fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A long duration for people, in days from one day up: humantime's months (30.44
/// days) turn "35d" into "1month 4days 13h 26m 24s".
pub fn format_days(d: Duration) -> String {
    const DAY: u64 = 86400;
    let (days, rest) = (
        d.as_secs() / DAY,
        d - Duration::from_secs(d.as_secs() / DAY * DAY),
    );
    match (days, rest.is_zero()) {
        (0, _) => humantime::format_duration(d).to_string(),
        (1, true) => "1day".to_string(),
        (days, true) => format!("{days}days"),
        (days, false) => format!("{days}days {}", humantime::format_duration(rest)),
    }
}

/// An error with its causes, on one line (reqwest's top-level message alone says
/// little), without the repetitions some crates put in their own messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        for part in cause.to_string().split(": ") {
            if parts.last().is_none_or(|last| last != part)
                && !parts.iter().any(|p| p.contains(part))
            {
                parts.push(part.to_string());
            }
        }
        next = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(8)), "8 ms");
        assert_eq!(human_duration(Duration::from_millis(1234)), "1.2 s");
    }

    #[test]
    fn fail_when_any_and_all() {
        assert!(round_ok(FailWhen::Any, [true, true]));
        assert!(!round_ok(FailWhen::Any, [true, false]));
        assert!(round_ok(FailWhen::All, [true, false]));
        assert!(!round_ok(FailWhen::All, [false, false]));
    }

    #[test]
    fn error_chains_drop_repeated_parts() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let wrapped =
            std::io::Error::other(format!("Input/output error: Input/output error: {io}"));
        assert_eq!(
            error_chain(&wrapped),
            "Input/output error: Connection refused (os error 111)"
        );
    }
}
