//! The witness's wire types: what a witness on a third host answers when the standby
//! asks whether *it* can reach the primary ([`Observation`], `GET /v1/primary` with the
//! bearer token), and how the standby records each witness's part in a round
//! ([`WitnessReport`]). The asking and the serving are edges of the binary crate; the
//! vote is [`crate::verdict::confirm_with_witnesses`].
//!
//! An answer names each check's type and result only: no targets, no details, no error
//! text, so it tells nothing of the witness's config beyond what the standby knows.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Where a witness answers, below its base URL.
pub const ENDPOINT: &str = "v1/primary";

/// A witness's answer: whether it can reach the primary, from its own checks.
///
/// It names each check's type and result only: no targets, no details, so an answer
/// tells nothing of the witness's config beyond what the standby already knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The witness's `node.name`.
    pub witness: String,
    /// The witness's checks failed (by its `fail_when`): it cannot reach the primary.
    pub primary_down: bool,
    /// When the checks started.
    pub at: Timestamp,
    pub checks: Vec<CheckSeen>,
}

/// One of the witness's checks, without its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSeen {
    #[serde(rename = "type")]
    pub kind: String,
    pub ok: bool,
}

impl Observation {
    /// The checks in a few words: "tcp, mysql failed" or "all 2 checks passed".
    pub fn summary(&self) -> String {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.kind.as_str())
            .collect();
        match (failed.len(), self.checks.len()) {
            (0, 1) => "its check passed".to_string(),
            (0, n) => format!("all {n} checks passed"),
            (f, n) if f == n => format!("{} failed", failed.join(", ")),
            (_, n) => format!("{} failed of {n} checks", failed.join(", ")),
        }
    }
}

/// What a witness said, as the standby records it in the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Said {
    /// It cannot reach the primary either.
    Down,
    /// It reaches the primary.
    Up,
    /// It did not answer, refused our token, or answered something else: it does not
    /// agree that the primary is down.
    NoAnswer,
}

/// One witness's part in a round, for the verdict, `status` and the alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessReport {
    /// The name from `[[probe.witnesses]]`.
    pub name: String,
    pub said: Said,
    /// The witness's checks in a few words, or why there was no answer.
    pub detail: String,
    pub duration_ms: u64,
}

impl WitnessReport {
    /// "ams1 saw it down (tcp failed)", for reasons and alerts.
    pub fn describe(&self) -> String {
        let what = match self.said {
            Said::Down => "saw it down",
            Said::Up => "reaches it",
            Said::NoAnswer => "did not answer",
        };
        format!("{} {what} ({})", self.name, self.detail)
    }
}
