//! Every alert the watchdog sends, as one type, and how each reads.
//!
//! An alert is a value ([`Alert`]) made where something happens and rendered only here
//! ([`Alert::render`]), so every message has the same shape: a one-line headline saying
//! what happened, on which node, and what to do; the details below it. Server error texts
//! are cut to what matters ([`shorten`]): a person reads these on a phone at night.

use crate::gtid::GtidPosition;
use crate::journal::{Journal, RejoinJournal, RejoinStep, StepName, Trigger};
use crate::report::human_duration;

/// Longest a detail line may be before it is cut.
const DETAIL_CHARS: usize = 600;

/// Something the team must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    // ---- Detection -------------------------------------------------------------------
    /// The primary's checks fail, but replication or a witness shows it alive.
    Degraded { why: String },
    /// The standby sees the primary down, but too few observers agree.
    NotAMajority { why: String },
    /// The standby's self-checks pass again after it was isolated.
    Reconnected,
    /// The primary answers again while automatic promotion was held: it is armed again.
    Rearmed,
    /// The threshold is reached, but the lag guard holds the automatic promotion.
    HeldByLagGuard { failures: u32, risk: String },
    /// The `pre_promote` hook refused the automatic promotion.
    HeldByPrePromote { error: String },
    /// The threshold was reached, but the primary answered the last look.
    LastLookAnswered { failures: u32 },
    /// An operator paused automatic promotion.
    Paused {
        until: String,
        reason: Option<String>,
    },
    /// An operator resumed automatic promotion.
    Resumed,
    /// A timed pause ran out.
    PauseRanOut,
    /// After promotion, the old primary answers again.
    OldPrimaryBack {
        /// Whether its database takes writes, when a `mysql` check read it.
        writable: Option<bool>,
        /// The checks that answered.
        answers: String,
    },
    /// The daemon cannot start: its promotion journal cannot be read.
    JournalUnreadable { error: String },

    // ---- The pair ----------------------------------------------------------------------
    /// This host is the primary and the peer's database is writable and not
    /// replicating too: two primaries.
    TwoPrimaries { peer: String, detail: String },
    /// This host is the primary and its standby does not replicate (or cannot be read).
    StandbyNotReplicating { peer: String, why: String },
    /// This host is the primary and its standby lags more than `max_lag`.
    StandbyLagging {
        peer: String,
        lag_seconds: u64,
        max_lag: String,
    },
    /// The standby replicates and is within `max_lag` again.
    StandbyHealthy { peer: String },
    /// This host became a standby while its application ran: its units were stopped.
    Demoted {
        units: Vec<String>,
        problem: Option<String>,
    },
    /// This host is a healthy standby again: its finished promotion was archived and
    /// automatic promotion is armed.
    RearmedAsStandby { archived: String },
    /// This host was promoted and the old primary is back, read-only and not
    /// replicating: it waits for `rejoin`.
    OldPrimaryWaiting { peer: String, detail: String },
    /// This host's replication settings contradict the config (empty: they match again).
    ReplicationDrift { drift: Vec<String> },
    /// This primary's semi-sync fell back to asynchronous (`false`: it is back).
    SemiSyncFellBack { fell_back: bool },
    /// This host's database is writable while DNS points elsewhere: it fenced itself
    /// (`fenced`), or it is told to (fencing it is turned off).
    NotServing { why: String, fenced: bool },

    // ---- Promotion -------------------------------------------------------------------
    /// A promotion starts (the opening alert; never blocks a step).
    Promoting { trigger: Trigger, reason: String },
    /// A promotion the daemon decided on could not start (its journal or `state_dir`
    /// refused it).
    PromotionNotStarted { why: String },
    /// An interrupted promotion is taken up again at `step`.
    Resuming { step: StepName },
    /// An operator retries a halted promotion from `step`.
    RetryingHalted { step: StepName },
    /// A step failed: the promotion halted.
    Halted {
        step: StepName,
        error: String,
        trigger: Trigger,
        /// The steps left undone.
        undone: Vec<StepName>,
    },
    /// Fencing the old primary failed, and the promotion went on (`require_fence` off).
    FenceFailed { summary: String },
    /// A `post_promote` or `on_failure` hook failed.
    HookFailed { hook: &'static str, problem: String },
    /// The promotion finished: the closing alert (the `notify` step).
    Promoted(Box<Journal>),
    /// A switchover could not fence or catch up, or was stopped before this host
    /// changed anything: the fence was undone (or could not be: `left`), the journal
    /// archived, this host its standby as before.
    SwitchoverAbandoned {
        why: String,
        /// Each undo that failed, with why: the primary may be left read-only.
        left: Vec<String>,
        /// An operator's stop (SIGTERM, SIGINT) ended it, not a failure.
        interrupted: bool,
    },
    /// A promotion stopped before its first step (an operator's stop): nothing changed.
    PromotionAbandoned { trigger: Trigger, why: String },

    // ---- Rejoin (on the old primary) ------------------------------------------------
    /// `rejoin` finished: this host is the peer's caught-up replica.
    Rejoined(Box<RejoinJournal>),
    /// `rejoin` refused: this host has transactions the peer lacks.
    RejoinRefused {
        peer: String,
        /// Each errant range with where to read it, one line each.
        errant: Vec<String>,
    },
    /// A `rejoin` step failed; the rejoin stopped there.
    RejoinFailed { step: RejoinStep, error: String },
    /// `rejoin` cannot work: the peer purged binary logs this host needs (found by the
    /// pre-checks, or by replication's error 1236). Only a rebuild from a backup of the
    /// peer helps; `how` says it.
    RejoinNeedsRebuild {
        peer: String,
        why: String,
        how: String,
    },

    // ---- Smoke test ------------------------------------------------------------------
    /// The smoke test's summary, as `smoke` renders it (its own headline first).
    SmokeReport { summary: String },
}

impl Alert {
    /// A halted promotion's alert, from its journal.
    pub fn halted(journal: &Journal, step: StepName, error: &str) -> Alert {
        Alert::Halted {
            step,
            error: error.to_string(),
            trigger: journal.record.trigger,
            undone: journal.pending_steps(),
        }
    }

    /// The message: the node and the headline, then the details.
    pub fn render(&self, node: &str) -> String {
        let (headline, details) = self.parts(node);
        let mut text = format!("[{node}] {headline}");
        for line in details.iter().filter(|l| !l.is_empty()) {
            text.push('\n');
            text.push_str(line);
        }
        text
    }

    /// A short name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::Degraded { .. } => "degraded",
            Alert::NotAMajority { .. } => "not_a_majority",
            Alert::Reconnected => "reconnected",
            Alert::Rearmed => "rearmed",
            Alert::HeldByLagGuard { .. } => "held_by_lag_guard",
            Alert::HeldByPrePromote { .. } => "held_by_pre_promote",
            Alert::LastLookAnswered { .. } => "last_look_answered",
            Alert::Paused { .. } => "paused",
            Alert::Resumed => "resumed",
            Alert::PauseRanOut => "pause_ran_out",
            Alert::OldPrimaryBack { .. } => "old_primary_back",
            Alert::JournalUnreadable { .. } => "journal_unreadable",
            Alert::TwoPrimaries { .. } => "two_primaries",
            Alert::StandbyNotReplicating { .. } => "standby_not_replicating",
            Alert::StandbyLagging { .. } => "standby_lagging",
            Alert::StandbyHealthy { .. } => "standby_healthy",
            Alert::Demoted { .. } => "demoted",
            Alert::RearmedAsStandby { .. } => "rearmed_as_standby",
            Alert::OldPrimaryWaiting { .. } => "old_primary_waiting",
            Alert::ReplicationDrift { drift } if drift.is_empty() => "replication_matches",
            Alert::ReplicationDrift { .. } => "replication_drift",
            Alert::SemiSyncFellBack { fell_back: true } => "semi_sync_fell_back",
            Alert::SemiSyncFellBack { fell_back: false } => "semi_sync_back",
            Alert::NotServing { .. } => "not_serving",
            Alert::Promoting { .. } => "promoting",
            Alert::PromotionNotStarted { .. } => "promotion_not_started",
            Alert::Resuming { .. } => "resuming",
            Alert::RetryingHalted { .. } => "retrying_halted",
            Alert::Halted { .. } => "halted",
            Alert::FenceFailed { .. } => "fence_failed",
            Alert::HookFailed { .. } => "hook_failed",
            Alert::Promoted(_) => "promoted",
            Alert::Rejoined(_) => "rejoined",
            Alert::RejoinRefused { .. } => "rejoin_refused",
            Alert::RejoinFailed { .. } => "rejoin_failed",
            Alert::SwitchoverAbandoned { .. } => "switchover_abandoned",
            Alert::PromotionAbandoned { .. } => "promotion_abandoned",
            Alert::RejoinNeedsRebuild { .. } => "rejoin_needs_rebuild",
            Alert::SmokeReport { .. } => "smoke_report",
        }
    }

    fn parts(&self, node: &str) -> (String, Vec<String>) {
        if let Alert::SmokeReport { summary } = self {
            return (summary.clone(), vec![]);
        }
        self.detection_parts()
            .or_else(|| self.pair_parts())
            .or_else(|| self.procedure_parts(node))
            .unwrap_or_else(|| (format!("{} alert", self.kind()), vec![]))
    }

    /// The alerts of detection and pausing; `None` for the others.
    fn detection_parts(&self) -> Option<(String, Vec<String>)> {
        let detail = |text: &str| shorten(text, DETAIL_CHARS);
        Some(match self {
            Alert::Degraded { why } => (
                "⚠️ degraded, not promoting: the primary is alive, but some of its checks fail. Look at the primary.".to_string(),
                vec![detail(why)],
            ),
            Alert::NotAMajority { why } => (
                "🛑 the primary looks down, but NOT promoting: not a majority of observers agree. Check the witnesses, or promote by hand (failover-watchdog --promote-now) if the primary is really down.".to_string(),
                vec![detail(why)],
            ),
            Alert::Reconnected => (
                "📶 the standby can talk again: it was cut off from its own self-checks (isolated). Nothing to do.".to_string(),
                vec!["It did not count those rounds against the primary.".to_string()],
            ),
            Alert::Rearmed => (
                "✅ the primary answers again; automatic promotion is armed again. Nothing to do.".to_string(),
                vec![],
            ),
            Alert::HeldByLagGuard { failures, risk } => (
                format!(
                    "🛑 NOT promoting automatically: the primary failed {failures} rounds in a row, but the standby may lack data. If you accept that: failover-watchdog --promote-now --yes"
                ),
                vec![
                    format!("Why held: {}", detail(risk)),
                    "Promoting now could lose what the standby never received.".to_string(),
                ],
            ),
            Alert::HeldByPrePromote { error } => (
                "🛑 NOT promoting automatically: the pre_promote hook refused. Check the hook; promote by hand with failover-watchdog --promote-now if the primary is really down.".to_string(),
                vec![detail(error)],
            ),
            Alert::LastLookAnswered { failures } => (
                "✋ the primary recovered at the last moment; not promoting. Nothing to do.".to_string(),
                vec![format!(
                    "It failed {failures} rounds in a row, then answered the last look before promotion. Watching it again."
                )],
            ),
            Alert::Paused { until, reason } => (
                format!(
                    "⏸ automatic promotion paused until {until}. Probing and alerts go on; --promote-now still works."
                ),
                vec![reason.as_ref().map_or(String::new(), |r| format!("Reason: {}", detail(r)))],
            ),
            Alert::Resumed => (
                "▶️ automatic promotion resumed by an operator.".to_string(),
                vec![],
            ),
            Alert::PauseRanOut => (
                "▶️ the timed pause has run out; automatic promotion is on again.".to_string(),
                vec![],
            ),
            Alert::OldPrimaryBack { writable, answers } => {
                old_primary_back(*writable, &detail(answers))
            }
            Alert::JournalUnreadable { error } => (
                "🛑 the watchdog cannot start: its promotion journal cannot be read. Automatic promotion is OFF until an operator repairs or moves the file.".to_string(),
                vec![detail(error)],
            ),
            _ => return None,
        })
    }

    /// The alerts about the pair's roles; `None` for the others.
    fn pair_parts(&self) -> Option<(String, Vec<String>)> {
        let detail = |text: &str| shorten(text, DETAIL_CHARS);
        Some(match self {
            Alert::TwoPrimaries { peer, detail: what } => (
                format!(
                    "🚨🚨 TWO PRIMARIES: this host is the primary and the peer ({peer}) is writable and not replicating too: both can take writes. Make one read-only now: on the host that should not serve, run failover-watchdog rejoin."
                ),
                vec![detail(what), "Nothing is changed automatically.".to_string()],
            ),
            Alert::StandbyNotReplicating { peer, why } => (
                format!(
                    "⚠️ the standby ({peer}) does not replicate from this primary: there is no failover until it does. Look at the standby."
                ),
                vec![detail(why)],
            ),
            Alert::StandbyLagging {
                peer,
                lag_seconds,
                max_lag,
            } => (
                format!(
                    "⚠️ the standby ({peer}) lags {lag_seconds} s behind this primary (max_lag {max_lag}): a failover now could lose data, so it would be held."
                ),
                vec![],
            ),
            Alert::StandbyHealthy { peer } => (
                format!("✅ the standby ({peer}) replicates and is caught up again. Nothing to do."),
                vec![],
            ),
            Alert::Demoted { units, problem } => (
                match problem {
                    None => "⬇️ this host is a standby again (read-only, replicating from its peer): its application units were stopped, so traffic drains to the primary.".to_string(),
                    Some(_) => "⚠️ this host is a standby again (read-only, replicating from its peer), but stopping its application units failed: stop them by hand.".to_string(),
                },
                vec![
                    format!("Units: {}", units.join(", ")),
                    problem.as_deref().map_or(String::new(), detail),
                ],
            ),
            Alert::OldPrimaryWaiting { peer, detail: what } => (
                format!(
                    "↩️ the old primary ({peer}) is back, read-only and not replicating: it waits to be rejoined. Run failover-watchdog rejoin on it."
                ),
                vec![detail(what)],
            ),
            Alert::ReplicationDrift { drift } if drift.is_empty() => (
                "✅ the replication settings match the config again. Nothing to do.".to_string(),
                vec![],
            ),
            Alert::ReplicationDrift { drift } => (
                "⚠️ the replication settings here contradict the config ([replication]): fix the channel (rejoin applies the config) or the config.".to_string(),
                drift.iter().map(|d| format!("• {}", detail(d))).collect(),
            ),
            Alert::SemiSyncFellBack { fell_back: true } => (
                "⚠️ semi-sync fell back to asynchronous on this primary: no replica acknowledges its commits, so a failover now could lose acknowledged writes. Look at the standby.".to_string(),
                vec!["Rpl_semi_sync_master_status is OFF while rpl_semi_sync_master_enabled is ON.".to_string()],
            ),
            Alert::SemiSyncFellBack { fell_back: false } => (
                "✅ semi-sync runs again on this primary: the standby acknowledges its commits. Nothing to do.".to_string(),
                vec![],
            ),
            Alert::NotServing { why, fenced: true } => (
                "🛡 this host fenced itself: its database is read-only and its units stopped, because DNS points at its peer. If this host should serve, decide which data wins first (the README's way back).".to_string(),
                vec![detail(why)],
            ),
            Alert::NotServing { why, fenced: false } => (
                "🚨 this host takes writes while DNS points at its peer: make it read-only (SET GLOBAL read_only = ON) and stop its application, or point DNS here, after deciding which data wins.".to_string(),
                vec![detail(why)],
            ),
            Alert::RearmedAsStandby { archived } => (
                "✅ this host is a healthy standby again (read-only, replicating from its peer, caught up): its finished promotion was archived and automatic promotion is armed.".to_string(),
                vec![format!("The journal is kept as {archived}.")],
            ),
            _ => return None,
        })
    }

    /// The alerts of the procedures (promotion, switchover, rejoin); `None` for the
    /// others.
    fn procedure_parts(&self, node: &str) -> Option<(String, Vec<String>)> {
        let detail = |text: &str| shorten(text, DETAIL_CHARS);
        Some(match self {
            Alert::Promoting { trigger, reason } => (
                format!(
                    "🚨 promoting to primary ({}). Nothing to do yet: the outcome follows.",
                    trigger_word(*trigger)
                ),
                vec![format!("Why: {}", detail(reason))],
            ),
            Alert::PromotionNotStarted { why } => (
                "🛑 the promotion this daemon decided on did NOT start: the primary looks dead and nothing was changed. Fix the cause, or promote by hand: failover-watchdog --promote-now --yes".to_string(),
                vec![format!("Why: {}", detail(why))],
            ),
            Alert::Resuming { step } => (
                format!(
                    "🔁 resuming the interrupted promotion of {node} at step {step}. Nothing to do yet: the outcome follows."
                ),
                vec![],
            ),
            Alert::RetryingHalted { step } => (
                format!(
                    "🔁 retrying the halted promotion from step {step} (by an operator)."
                ),
                vec![],
            ),
            Alert::Halted {
                step,
                error,
                trigger,
                undone,
            } => halted(*step, &detail(error), *trigger, undone),
            Alert::FenceFailed { summary } => (
                "⚠️ fencing the old primary failed; the promotion goes on (require_fence is off). Make sure the old primary is down or read-only.".to_string(),
                vec![detail(summary)],
            ),
            Alert::HookFailed { hook, problem } => (
                format!("⚠️ the {hook} hook failed. Check the hook."),
                vec![detail(problem)],
            ),
            Alert::Promoted(journal) => promoted(journal),
            Alert::SwitchoverAbandoned {
                why,
                left,
                interrupted,
            } => switchover_abandoned(&detail(why), left, *interrupted),
            Alert::PromotionAbandoned { trigger, why } => (
                format!(
                    "↩️ {} promotion ABANDONED before its first step, nothing changed: this host is still the standby.",
                    trigger.as_str()
                ),
                vec![detail(why)],
            ),
            Alert::Rejoined(journal) => rejoined(journal),
            Alert::RejoinRefused { peer, errant } => (
                format!(
                    "🛑 rejoin REFUSED: this host has transactions its peer {peer} lacks. Nothing was changed. Decide what to do with them (the README's rejoin section), then run rejoin again."
                ),
                errant.iter().map(|line| format!("• {}", detail(line))).collect(),
            ),
            Alert::RejoinNeedsRebuild { peer, why, how } => (
                format!(
                    "🛑 rejoin IMPOSSIBLE: the primary {peer} no longer has the binary logs this host needs, so it cannot catch up by replication. Rebuild this host from a backup of {peer} (how: below), then run rejoin again."
                ),
                vec![format!("Why: {}", detail(why)), format!("How: {how}")],
            ),
            Alert::RejoinFailed { step, error } => (
                format!(
                    "🛑 rejoin FAILED at step {step}. Fix the cause, then run failover-watchdog rejoin --yes again: it resumes there."
                ),
                vec![format!("Error: {}", detail(error))],
            ),
            _ => return None,
        })
    }
}

/// A switchover abandoned: quiet when everything was undone, loud when the primary may
/// be left read-only.
fn switchover_abandoned(why: &str, left: &[String], interrupted: bool) -> (String, Vec<String>) {
    let headline = match (left.is_empty(), interrupted) {
        (true, false) => {
            "↩️ switchover ABANDONED, nothing changed: the primary takes writes again and this host is still its standby. Find out why it could not catch up before trying again."
        }
        (true, true) => {
            "↩️ switchover ABANDONED (stopped by an operator), nothing changed: the primary takes writes again and this host is still its standby."
        }
        (false, _) => {
            "🚨 switchover ABANDONED, but undoing the fence FAILED: the primary may still refuse writes. Check it now (SET GLOBAL read_only = OFF there). This host is its standby, armed to promote if the primary is dead."
        }
    };
    let mut details = vec![format!("Why: {why}")];
    details.extend(
        left.iter()
            .map(|l| format!("Not undone: {}", shorten(l, DETAIL_CHARS))),
    );
    (headline.to_string(), details)
}

/// The old primary answers after promotion: loud when its database takes writes.
fn old_primary_back(writable: Option<bool>, answers: &str) -> (String, Vec<String>) {
    if writable == Some(true) {
        return (
            "🚨🚨 SPLIT BRAIN: this node was promoted and the old primary is back with its database WRITABLE: two databases can take writes. Fence it now (SET GLOBAL read_only = ON, stop its application).".to_string(),
            vec![
                format!("It answers: {answers}."),
                "DNS stays on this standby and nothing is stopped automatically. Then, on the old primary: failover-watchdog rejoin.".to_string(),
            ],
        );
    }
    (
        format!(
            "⚠️ the old primary is back; its database is {}. Keep it out of service; then, on it: failover-watchdog rejoin.",
            if writable == Some(false) {
                "read-only"
            } else {
                "not reachable by the mysql check"
            }
        ),
        vec![
            format!("It answers: {answers}."),
            "DNS stays on this standby.".to_string(),
        ],
    )
}

/// A step failed: what, what is left undone, and how to retry.
fn halted(
    step: StepName,
    error: &str,
    trigger: Trigger,
    undone: &[StepName],
) -> (String, Vec<String>) {
    let undone = if undone.is_empty() {
        "nothing".to_string()
    } else {
        undone
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    (
        format!(
            "🛑 promotion HALTED at step {step}. Fix the cause, then retry with failover-watchdog --promote-now --yes"
        ),
        vec![
            format!("Error: {error}"),
            format!("Not done: {undone}."),
            format!("Trigger: {}.", trigger_word(trigger)),
        ],
    )
}

/// The closing alert: outcome, trigger, each step with its duration, the data accounting.
fn promoted(journal: &Journal) -> (String, Vec<String>) {
    let mut details = vec![
        format!("Trigger: {}.", trigger_word(journal.record.trigger)),
        format!("Why: {}", shorten(&journal.record.reason, DETAIL_CHARS)),
    ];
    for step in journal.steps.iter().filter(|s| s.name != StepName::Notify) {
        let took = journal
            .step_duration(step.name)
            .map_or("-".to_string(), human_duration);
        details.push(format!(
            "• {} {} in {took}: {}",
            step.name,
            step.status.as_str(),
            shorten(step.detail.as_deref().unwrap_or(""), DETAIL_CHARS)
        ));
    }
    if let Some(accounting) = journal.accounting() {
        details.push(format!("Data: {accounting}"));
    }
    if let Some(drill) = &journal.record.switchover {
        details.push(format!("Drill: {}", drill.summary()));
        let headline = if journal.peer_not_rejoined() {
            "⚠️ SWITCHED OVER: this host is now the primary, but the old primary does NOT replicate from it: run failover-watchdog rejoin on the old primary."
        } else {
            "✅ SWITCHED OVER: this host is now the primary and the old primary replicates from it. Nothing to do."
        };
        return (headline.to_string(), details);
    }
    (
        "✅ PROMOTED: this standby is now the primary. Check the application; failback is manual (the README's way back).".to_string(),
        details,
    )
}

/// The closing alert of a rejoin: the source, the positions, each step with its time.
fn rejoined(journal: &RejoinJournal) -> (String, Vec<String>) {
    let record = &journal.record;
    let mut details = vec![
        format!("Replicates from: {} ({}).", record.peer, record.source),
        format!(
            "Position before: {}; caught up to: {}.",
            or_none(&record.own_position),
            record
                .caught_up_to
                .as_ref()
                .map_or("-".to_string(), or_none)
        ),
    ];
    for step in journal
        .steps
        .iter()
        .filter(|s| s.name != RejoinStep::Notify)
    {
        let took = journal
            .step_duration(step.name)
            .map_or("-".to_string(), human_duration);
        details.push(format!(
            "• {} {} in {took}: {}",
            step.name,
            step.status.as_str(),
            shorten(step.detail.as_deref().unwrap_or(""), DETAIL_CHARS)
        ));
    }
    // The alert is the last step: the rejoin took until that step began.
    let end = journal
        .step(RejoinStep::Notify)
        .and_then(|s| s.started_at.or(s.finished_at))
        .or(journal.finished_at)
        .unwrap_or(journal.started_at);
    details.push(format!(
        "Took {} in all.",
        human_duration(journal.took(end))
    ));
    (
        format!(
            "✅ REJOINED: this host is now a read-only replica of {}, caught up. Nothing to do.",
            record.peer
        ),
        details,
    )
}

fn or_none(position: &GtidPosition) -> String {
    if position.is_empty() {
        "none".to_string()
    } else {
        position.to_string()
    }
}

fn trigger_word(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Automatic => "automatic",
        Trigger::Manual => "manual (--promote-now)",
        Trigger::Switchover => "planned switchover",
    }
}

/// Cuts an outside error text to what a person needs: MariaDB's reconnect boilerplate
/// ("- retry-time: 1 maximum-retries: 100000 message:") goes, runs of white space fold,
/// and a text still longer than `max` characters loses its middle: a reason opens with
/// what failed and ends with who confirmed it, and both matter.
pub fn shorten(text: &str, max: usize) -> String {
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some(start) = text.find(" - retry-time:") {
        let Some(message) = text[start..].find("message: ") else {
            break;
        };
        text.replace_range(start..start + message + "message: ".len(), ": ");
    }
    let count = text.chars().count();
    if count <= max {
        return text;
    }
    let head = max.saturating_sub(3) * 2 / 3;
    let tail = max.saturating_sub(3) - head;
    let mut cut: String = text.chars().take(head).collect();
    cut.push_str(" … ");
    cut.extend(text.chars().skip(count - tail));
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECONNECT: &str = "the replica's IO thread is not connected (Connecting: error reconnecting to master 'repl@127.0.0.1:40001' - retry-time: 1  maximum-retries: 100000  message: Can't connect to MySQL server on '127.0.0.1' (111 \"Connection refused\"))";

    #[test]
    fn mariadbs_reconnect_boilerplate_is_cut_to_its_message() {
        let short = shorten(RECONNECT, 400);
        assert_eq!(
            short,
            "the replica's IO thread is not connected (Connecting: error reconnecting to master 'repl@127.0.0.1:40001': Can't connect to MySQL server on '127.0.0.1' (111 \"Connection refused\"))"
        );
    }

    #[test]
    fn a_long_text_loses_its_middle_on_a_character_boundary() {
        let long = format!("{}{}", "é".repeat(1000), "the end");
        let short = shorten(&long, 30);
        assert_eq!(short.chars().count(), 30);
        assert!(
            short.contains(" … ") && short.ends_with("the end"),
            "{short}"
        );
        assert_eq!(shorten("short", 10), "short");
    }

    #[test]
    #[allow(clippy::too_many_lines, reason = "one value of every alert, listed")]
    fn every_alert_opens_with_one_headline_naming_the_node() {
        let journal = Journal::new("n", Trigger::Automatic, "why", jiff::Timestamp::UNIX_EPOCH);
        let alerts = [
            Alert::Degraded { why: "w".into() },
            Alert::NotAMajority { why: "w".into() },
            Alert::Reconnected,
            Alert::Rearmed,
            Alert::HeldByLagGuard {
                failures: 3,
                risk: "r".into(),
            },
            Alert::HeldByPrePromote { error: "e".into() },
            Alert::LastLookAnswered { failures: 3 },
            Alert::Paused {
                until: "resume".into(),
                reason: Some("r".into()),
            },
            Alert::Resumed,
            Alert::PauseRanOut,
            Alert::OldPrimaryBack {
                writable: Some(true),
                answers: "tcp x".into(),
            },
            Alert::OldPrimaryBack {
                writable: None,
                answers: "tcp x".into(),
            },
            Alert::JournalUnreadable { error: "e".into() },
            Alert::Promoting {
                trigger: Trigger::Automatic,
                reason: "r".into(),
            },
            Alert::Resuming {
                step: StepName::StartApps,
            },
            Alert::RetryingHalted {
                step: StepName::UpdateDns,
            },
            Alert::PromotionNotStarted {
                why: "cannot open the lock file: Permission denied".into(),
            },
            Alert::halted(&journal, StepName::UpdateDns, "HTTP 403"),
            Alert::FenceFailed {
                summary: "s".into(),
            },
            Alert::HookFailed {
                hook: "post_promote",
                problem: "exit 1".into(),
            },
            Alert::Promoted(Box::new(journal.clone())),
            Alert::TwoPrimaries {
                peer: "p".into(),
                detail: "d".into(),
            },
            Alert::StandbyNotReplicating {
                peer: "p".into(),
                why: "w".into(),
            },
            Alert::StandbyLagging {
                peer: "p".into(),
                lag_seconds: 40,
                max_lag: "30s".into(),
            },
            Alert::StandbyHealthy { peer: "p".into() },
            Alert::Demoted {
                units: vec!["app.service".into()],
                problem: None,
            },
            Alert::Demoted {
                units: vec!["app.service".into()],
                problem: Some("exit 5".into()),
            },
            Alert::RearmedAsStandby {
                archived: "/x".into(),
            },
            Alert::OldPrimaryWaiting {
                peer: "p".into(),
                detail: "read_only ON".into(),
            },
            Alert::ReplicationDrift {
                drift: vec!["replication.heartbeat_period: 30.000 s".into()],
            },
            Alert::ReplicationDrift { drift: vec![] },
            Alert::SemiSyncFellBack { fell_back: true },
            Alert::SemiSyncFellBack { fell_back: false },
            Alert::NotServing {
                why: "DNS elsewhere".into(),
                fenced: true,
            },
            Alert::NotServing {
                why: "DNS elsewhere".into(),
                fenced: false,
            },
            Alert::Rejoined(Box::new(RejoinJournal::rejoin(
                "n",
                "peer",
                "h:1",
                GtidPosition::parse("0-1-5").unwrap(),
                jiff::Timestamp::UNIX_EPOCH,
            ))),
            Alert::RejoinRefused {
                peer: "peer".into(),
                errant: vec!["0-1-6".into()],
            },
            Alert::RejoinFailed {
                step: RejoinStep::CatchUp,
                error: "e".into(),
            },
            Alert::SwitchoverAbandoned {
                why: "w".into(),
                left: vec!["fence_primary: cannot connect".into()],
                interrupted: false,
            },
            Alert::PromotionAbandoned {
                trigger: Trigger::Manual,
                why: "w".into(),
            },
            Alert::RejoinNeedsRebuild {
                peer: "p".into(),
                why: "w".into(),
                how: "h".into(),
            },
        ];
        for alert in alerts {
            let text = alert.render("standby-9");
            let headline = text.lines().next().unwrap();
            assert!(
                headline.starts_with("[standby-9] "),
                "{}: {text}",
                alert.kind()
            );
            assert!(
                headline.chars().count() < 260,
                "{}: {headline}",
                alert.kind()
            );
        }
    }

    #[test]
    fn the_halted_alert_names_the_step_what_is_undone_and_how_to_retry() {
        let mut journal = Journal::new("n", Trigger::Automatic, "why", jiff::Timestamp::UNIX_EPOCH);
        journal.begin(StepName::StopReplica, jiff::Timestamp::UNIX_EPOCH);
        journal.finish(
            StepName::StopReplica,
            "ok".into(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        journal.begin(StepName::MakeWritable, jiff::Timestamp::UNIX_EPOCH);
        journal.fail(
            StepName::MakeWritable,
            "boom".into(),
            jiff::Timestamp::UNIX_EPOCH,
        );
        let text = Alert::halted(&journal, StepName::MakeWritable, "boom").render("s");
        assert!(text.contains("HALTED at step make_writable"), "{text}");
        assert!(text.contains("--promote-now --yes"), "{text}");
        assert!(
            text.contains("Not done: start_apps, update_dns, notify."),
            "{text}"
        );
        assert!(text.contains("Error: boom"), "{text}");
    }

    #[test]
    fn a_switchover_closes_with_its_drill_and_says_when_the_old_primary_needs_rejoin() {
        let t = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        let mut journal = Journal::new("n", Trigger::Switchover, "planned", t(0));
        let drill = journal.record.switchover.as_mut().unwrap();
        let position = GtidPosition::parse("0-1-9").unwrap();
        drill.fenced_at = Some(t(0));
        drill.final_position = Some(position.clone());
        drill.applied_position = Some(position);
        drill.lost = Some(false);
        for step in StepName::SWITCHOVER {
            journal.begin(step, t(1));
            journal.finish(step, "ok".into(), t(1));
        }
        let text = Alert::Promoted(Box::new(journal.clone())).render("s");
        assert!(
            text.contains("SWITCHED OVER") && text.contains("Nothing to do"),
            "{text}"
        );
        assert!(text.contains("Trigger: planned switchover."), "{text}");
        assert!(
            text.contains("Drill: writes refused for 1.000 s") && text.contains("nothing lost"),
            "{text}"
        );
        journal.fail(StepName::RejoinPeer, "no IO thread".into(), t(2));
        let text = Alert::Promoted(Box::new(journal)).render("s");
        assert!(text.contains("failover-watchdog rejoin"), "{text}");

        let abandoned = |left: Vec<String>| {
            Alert::SwitchoverAbandoned {
                why: "catch_up failed".into(),
                left,
                interrupted: false,
            }
            .render("s")
        };
        let quiet = abandoned(Vec::new());
        assert!(
            quiet.contains("ABANDONED, nothing changed") && quiet.contains("catch_up failed"),
            "{quiet}"
        );
        // Issue 18, item 7: an undo that failed said the peer "still refuses writes"
        // from a halted journal; now it is said loudly, and this host is armed.
        let loud = abandoned(vec!["fence_primary: cannot connect".into()]);
        assert!(
            loud.contains("undoing the fence FAILED")
                && loud.contains("may still refuse writes")
                && loud.contains("Not undone: fence_primary: cannot connect")
                && loud.contains("armed to promote"),
            "{loud}"
        );
    }
}
