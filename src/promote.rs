//! The promotion (automatic, or an operator's `--promote-now`): its five steps as a
//! procedure ([`Failover`]) on the one engine ([`crate::procedure::Runner`]). The daemon
//! and `--promote-now` both run [`promote`]; there is no second copy. What it shares
//! with a switchover is [`crate::takeover`]'s; its own part is `make_writable`'s fence
//! of the old primary.
//!
//! `stop_replica` stops the replica once everything it received is applied;
//! `make_writable` fences the old primary, then `read_only = OFF`; `start_apps` starts
//! the units in order; `update_dns` points every record here; `notify` sends the
//! closing alert. A failure of any but `notify` halts the promotion (its journal's
//! policy): DNS never moves to a standby whose database is not writable.
//!
//! A stop (SIGTERM, SIGINT): the daemon's promotion stops before its next step and its
//! next start resumes it. An operator's `--promote-now` is abandoned when no step has
//! begun (nothing changed), and otherwise goes on to its end: a standby half promoted
//! serves nobody. A new `--promote-now` on the primary of a pair is refused
//! ([`not_the_primary`]): it would fence its standby and record a promotion of a host
//! that is the primary already.

use std::time::Duration;

use crate::alert::Alert;
use crate::edges::Edges;
use crate::error::Refused;
use crate::fence;
use crate::journal::{Journal, Outcome, PrimarySeen, Promotion, StepName, StepStatus, Trigger};
use crate::procedure::{Abandonment, OnStop, Preview, RunError, Runner, Steps};
use crate::role::{self, Role};
use crate::takeover::{self, command_env};

/// Runs (or resumes) a promotion under the promotion lock. `reason` says why, in words,
/// for the journal and the opening alert; `primary_last_seen` is where the primary was
/// when last read, for the data-loss accounting. A stop asked for between steps leaves
/// the journal running: the next start resumes there.
///
/// A switchover in the journal (interrupted, or halted and retried by an operator) is
/// taken up with the switchover's steps: its journal says which they are.
pub async fn promote(
    edges: &Edges,
    trigger: Trigger,
    reason: &str,
    primary_last_seen: Option<PrimarySeen>,
) -> Result<Journal, RunError> {
    let in_journal = edges.store.load_journal().map_err(RunError::State)?;
    if let Some(journal) = in_journal.filter(|j| j.record.trigger == Trigger::Switchover)
        && journal.outcome != Outcome::Done
    {
        return crate::switchover::resume(edges, trigger).await;
    }
    let failover = Failover {
        edges,
        trigger,
        reason: reason.to_string(),
        primary_last_seen,
    };
    Runner::new(edges)
        .run(&failover, &takeover::holder(trigger))
        .await
}

/// The promotion's steps.
pub struct Failover<'a> {
    pub edges: &'a Edges,
    pub trigger: Trigger,
    pub reason: String,
    pub primary_last_seen: Option<PrimarySeen>,
}

impl Steps for Failover<'_> {
    type Kind = Promotion;

    fn name(&self) -> &'static str {
        "promotion"
    }

    fn plan(&self) -> &'static [StepName] {
        &StepName::PROMOTION
    }

    async fn open(&self, last: Option<Journal>) -> Result<Journal, RunError> {
        if let Some(journal) = &last
            && journal.record.trigger == Trigger::Switchover
            && journal.outcome != Outcome::Done
        {
            // Only seen when it appeared after `promote` looked: the next run takes it
            // up with the switchover's steps.
            return Err(RunError::refused(
                "a switchover appeared in the journal meanwhile; run again to take it up"
                    .to_string(),
            ));
        }
        if last.is_none() && self.trigger == Trigger::Manual {
            not_the_primary(self.edges)
                .await
                .map_err(|refused| RunError::Refused(refused.into()))?;
        }
        takeover::open(
            self.edges,
            self.trigger,
            &self.reason,
            self.primary_last_seen.clone(),
            last,
            self.trigger == Trigger::Automatic,
        )
        .await
    }

    /// The daemon's promotion stops before its next step (its next start resumes it).
    /// An operator's is abandoned when nothing has begun, and otherwise finished.
    fn on_stop(&self, journal: &Journal) -> OnStop<StepName> {
        let begun = journal
            .steps
            .iter()
            .any(|s| s.status != StepStatus::Pending);
        match (self.trigger, begun) {
            (Trigger::Automatic, _) => OnStop::Resume,
            (_, false) => OnStop::Abandon(&[]),
            (_, true) => OnStop::Finish,
        }
    }

    async fn abandoned(&self, _journal: &Journal, _step: StepName, end: &Abandonment) {
        self.edges.alerter.send(&Alert::PromotionAbandoned {
            trigger: self.trigger,
            why: end.why.clone(),
        });
    }

    fn deadline(&self, step: StepName) -> Duration {
        takeover::deadline(&self.edges.config, step)
    }

    async fn preview(&self, step: StepName) -> Preview {
        match step {
            StepName::MakeWritable => takeover::preview_make_writable(self.edges, true).await,
            step => takeover::preview(self.edges, step).await,
        }
    }

    async fn run(&self, step: StepName, journal: &mut Journal) -> anyhow::Result<String> {
        match step {
            StepName::MakeWritable => fence_then_make_writable(self.edges, journal).await,
            step => takeover::run_shared(self.edges, step, journal).await,
        }
    }

    async fn halted(&self, journal: &Journal, step: StepName, error: &str) {
        takeover::halted(self.edges, journal, step, error).await;
    }

    async fn finished(&self, journal: &Journal) {
        takeover::finished(self.edges, journal).await;
    }
}

/// `make_writable` of a promotion: fence the old primary, then `read_only = OFF` here.
async fn fence_then_make_writable(edges: &Edges, journal: &mut Journal) -> anyhow::Result<String> {
    let env = command_env(journal, Some(StepName::MakeWritable));
    let fence = fence::fence_old_primary(edges, &env).await;
    journal.record.fence = Some(fence.clone());
    if !fence.ok {
        if edges.config.promotion.require_fence {
            anyhow::bail!(
                "fencing the old primary failed and require_fence is set, so nothing was made writable: {}",
                fence.summary()
            );
        }
        tracing::error!(
            "fencing the old primary failed; going on: {}",
            fence.summary()
        );
        edges.alerter.send(&Alert::FenceFailed {
            summary: fence.summary(),
        });
    }
    let writable = edges.own.make_writable().await?;
    Ok(format!("fence: {}; {writable}", fence.summary()))
}

/// Refused when this host is the primary of a pair: with `[peer]`, its own database is
/// writable and not replicating. A promotion of it would fence its standby (the old
/// primary's fence) and record a promotion of a host that serves already. Nothing is
/// refused when the database cannot be read (a promotion would say why it halts).
pub async fn not_the_primary(edges: &Edges) -> Result<(), Refused> {
    let Some(peer) = &edges.config.peer else {
        return Ok(());
    };
    let Ok(state) = edges.own.state().await else {
        return Ok(());
    };
    if role::derive(state.read_only, state.replica.as_ref(), Some(peer.source())) != Role::Primary {
        return Ok(());
    }
    Err(Refused(format!(
        "this host ({}) is the primary of its pair: its database is writable and not replicating, so a promotion would only fence its standby {} and record a promotion of a host that serves already. Nothing was changed. To make {} the primary, run `failover-watchdog switchover` there",
        edges.own.describe(),
        peer.name,
        peer.name
    )))
}
