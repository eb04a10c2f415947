//! The one procedure engine. A procedure (a promotion, a switchover, a rejoin) is a list
//! of steps ([`Steps`]): each declares how long it may take, how it previews itself for
//! `--dry-run`, how it runs, how it is undone, and (in its journal's kind,
//! [`crate::journal::Procedure::policy`]) what its failure means. One [`Runner`] owns
//! everything around the steps:
//!
//! - the promotion lock in `state_dir` (one procedure at a time on a host: a rejoin
//!   never races a promotion);
//! - the journal, opened through the procedure (new, resumed or retried, or refused)
//!   and written before and after every step (write, fsync, rename), so a killed
//!   process resumes at the step it was in and never runs a finished step twice;
//! - each step's deadline, the crash points (test builds only), the scrubbing of every
//!   detail and error before the journal keeps it;
//! - the stop signal, looked at between steps: a stop leaves the journal `running`
//!   and says where the next run resumes;
//! - the failure policy: halt (alerted, the procedure's own halt hook run), undo the
//!   listed steps and abandon (the journal archived), go on, or complete anyway;
//! - a journal that cannot be written: the procedure halts before its next step,
//!   alerted like a failed step.
//!
//! The dry run's printer ([`print_preview`]) and the operator's confirmation
//! ([`confirm`]) live here too, once for every procedure.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::crashpoint;
use crate::edges::Edges;
use crate::error::{Refused, UsageError};
use crate::journal::{Journal, Outcome, Policy, Procedure, StepStatus};
use crate::secret::Scrubber;
use crate::shutdown::Shutdown;
use crate::store::{LockHeld, StateDir};

/// A procedure's journal kind, its steps' names.
pub type StepOf<S> = <<S as Steps>::Kind as Procedure>::Step;
/// A procedure's journal.
pub type JournalOf<S> = Journal<<S as Steps>::Kind>;

/// What a procedure's steps do. Implemented by each procedure; run only by [`Runner`].
// The futures are awaited where they are made (the runner never spawns them), so the
// auto-trait bounds `async fn` in a trait cannot name are never needed.
#[allow(async_fn_in_trait)]
pub trait Steps {
    /// The journal's kind: the step names, the record, the failure policies.
    type Kind: Procedure;

    /// "promotion", "switchover", "rejoin": for messages.
    fn name(&self) -> &'static str;

    /// The steps a new journal of this procedure has, in order (the dry run shows them).
    fn plan(&self) -> &'static [StepOf<Self>];

    /// The journal to run, from the one in `state_dir` (`None`: none there): a new one,
    /// the one there resumed or retried, or a refusal ([`RunError::Refused`]).
    async fn open(&self, last: Option<JournalOf<Self>>) -> Result<JournalOf<Self>, RunError>;

    /// How long `step` may take before it fails.
    fn deadline(&self, step: StepOf<Self>) -> Duration;

    /// What `step` would do, with its concrete targets, and what they look like now
    /// (read-only looks), for `--dry-run`.
    async fn preview(&self, step: StepOf<Self>) -> Preview;

    /// Runs `step`; its detail in words. May record what it learned in the journal.
    async fn run(
        &self,
        step: StepOf<Self>,
        journal: &mut JournalOf<Self>,
    ) -> anyhow::Result<String>;

    /// Undoes `step` (its policy or a later step's said so); what it did, in words.
    async fn undo(&self, step: StepOf<Self>, _journal: &JournalOf<Self>) -> anyhow::Result<String> {
        anyhow::bail!("step {step} cannot be undone")
    }

    /// The procedure halted at `step` with `error` (a failed step, or a journal that
    /// cannot be written): alert, run hooks. The journal says halted already.
    async fn halted(&self, journal: &JournalOf<Self>, step: StepOf<Self>, error: &str);

    /// The procedure was abandoned at `step` after its undo: alert.
    async fn abandoned(&self, _journal: &JournalOf<Self>, _step: StepOf<Self>, _why: &str) {}

    /// The procedure ran to its end (done): post hooks.
    async fn finished(&self, _journal: &JournalOf<Self>) {}
}

/// What a step would do, for the dry run.
#[derive(Debug, Clone, Default)]
pub struct Preview {
    /// What it does, with its targets.
    pub does: String,
    /// More lines of targets, shown as they are.
    pub targets: Vec<String>,
    /// Read-only looks at the targets now: `Ok` what was seen, `Err` a problem a real
    /// run would likely halt on.
    pub now: Vec<Result<String, String>>,
}

impl Preview {
    pub fn new(does: impl Into<String>) -> Preview {
        Preview {
            does: does.into(),
            ..Preview::default()
        }
    }

    pub fn target(mut self, line: impl Into<String>) -> Preview {
        self.targets.push(line.into());
        self
    }

    pub fn now(mut self, seen: Result<String, String>) -> Preview {
        self.now.push(seen);
        self
    }
}

/// Why a procedure did not run, or stopped early; each says what it is, so the daemon
/// halts, holds or follows, and a command picks its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Nothing was done: refused (already done, another process holds the lock, a
    /// halted promotion the daemon must not retry). Exit 3: the source is [`Refused`]
    /// or [`LockHeld`].
    #[error("{0:#}")]
    Refused(anyhow::Error),
    /// A check before the first step said no (the `pre_promote` hook): nothing changed.
    #[error("{0}")]
    Held(String),
    /// `state_dir` could not be read or locked: nothing was done.
    #[error("{0:#}")]
    State(anyhow::Error),
    /// The journal could not be written at `step`: the procedure halted there, alerted.
    #[error("{what} halted at step {step}: {error}")]
    Journal {
        what: &'static str,
        step: String,
        error: String,
    },
    /// A step failed and its undo succeeded: nothing the procedure did remains, the
    /// journal is archived. Exit 1.
    #[error("{0}")]
    Abandoned(String),
}

impl RunError {
    /// A refusal: exit 3.
    pub fn refused(why: String) -> RunError {
        RunError::Refused(Refused(why).into())
    }

    /// The error a command ends on: a refusal keeps its cause ([`Refused`],
    /// [`LockHeld`]: exit 3), a `state_dir` problem its own (a config error there: 78);
    /// the rest exit 1.
    pub fn into_error(self) -> anyhow::Error {
        match self {
            RunError::Refused(e) | RunError::State(e) => e,
            other => anyhow::anyhow!(other),
        }
    }
}

/// Runs procedures on one host: its `state_dir`, its scrubber, its stop signal.
pub struct Runner<'a> {
    store: &'a StateDir,
    scrubber: &'a Scrubber,
    shutdown: &'a Shutdown,
}

impl<'a> Runner<'a> {
    pub fn new(edges: &'a Edges) -> Runner<'a> {
        Runner::with(&edges.store, &edges.scrubber, &edges.shutdown)
    }

    /// A runner on these parts alone (what the runner itself needs of the edges).
    pub fn with(store: &'a StateDir, scrubber: &'a Scrubber, shutdown: &'a Shutdown) -> Runner<'a> {
        Runner {
            store,
            scrubber,
            shutdown,
        }
    }

    /// Runs (or resumes) the procedure under the promotion lock: opens its journal, then
    /// every step not done, each between two journal writes. `holder` says who we are
    /// in the lock file. Returns the journal as it ends: done, halted, or still running
    /// when a stop was asked for between steps.
    pub async fn run<S: Steps>(&self, steps: &S, holder: &str) -> Result<JournalOf<S>, RunError> {
        let store = self.store;
        let _lock = store.lock_promotion(holder).map_err(|e| {
            if e.is::<LockHeld>() {
                RunError::Refused(e)
            } else {
                RunError::State(e)
            }
        })?;
        let last = store.load::<S::Kind>().map_err(RunError::State)?;
        let mut journal = steps.open(last).await?;
        if let Err(e) = store.save::<S::Kind>(&journal) {
            let step = journal.next_step().unwrap_or(journal.steps[0].name);
            return Err(self.halt_unrecorded(steps, &mut journal, step, e).await);
        }
        while let Some(step) = journal.next_step() {
            if self.shutdown.requested() {
                tracing::warn!(
                    "stopping before step {step}; the next run of the {} resumes there",
                    steps.name()
                );
                return Ok(journal);
            }
            self.step(steps, step, &mut journal).await?;
        }
        if journal.outcome == Outcome::Done {
            steps.finished(&journal).await;
        }
        Ok(journal)
    }

    /// One step between two journal writes: begin and save, run within its deadline,
    /// finish or fail (by its policy) and save.
    async fn step<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
    ) -> Result<(), RunError> {
        let store = self.store;
        journal.begin(step, Timestamp::now());
        if let Err(e) = store.save::<S::Kind>(journal) {
            return Err(self.halt_unrecorded(steps, journal, step, e).await);
        }
        tracing::info!("step {step}: started");
        crashpoint::reached(&format!("before:{step}"));
        let started = Instant::now();
        let deadline = steps.deadline(step);
        let result = match tokio::time::timeout(deadline, steps.run(step, journal)).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "step {step} did not finish within {}",
                humantime::format_duration(deadline)
            )),
        };
        crashpoint::reached(&format!("after:{step}"));
        match result {
            Ok(detail) => {
                let detail = self.scrubber.scrub(&detail);
                tracing::info!(
                    "step {step}: done in {} ms: {detail}",
                    started.elapsed().as_millis()
                );
                journal.finish(step, detail, Timestamp::now());
            }
            Err(error) => {
                let error = self.scrubber.scrub(&format!("{error:#}"));
                if let Some(end) = self.failed(steps, step, journal, error).await {
                    return end;
                }
            }
        }
        match store.save::<S::Kind>(journal) {
            Ok(()) => Ok(()),
            Err(e) if journal.outcome == Outcome::Halted => {
                // Halted and alerted already; the file still says the step runs.
                Err(RunError::Journal {
                    what: steps.name(),
                    step: step.to_string(),
                    error: format!("{e:#}"),
                })
            }
            Err(e) if journal.outcome == Outcome::Done => {
                // Its effect is in place and nothing is left to run: a resume would
                // only say it again.
                tracing::error!("the {} is done but cannot be recorded: {e:#}", steps.name());
                Ok(())
            }
            Err(e) => Err(self.halt_unrecorded(steps, journal, step, e).await),
        }
    }

    /// `step` failed with `error`: record it and do what its policy says. `Some` ends
    /// the procedure here (an undo that succeeded, or one that halted and was saved).
    async fn failed<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
        error: String,
    ) -> Option<Result<(), RunError>> {
        let policy = journal.policy(step);
        if let Policy::Undo(undo) = policy {
            return Some(self.undo(steps, step, journal, undo, error).await);
        }
        journal.fail(step, error.clone(), Timestamp::now());
        match policy {
            Policy::GoOn | Policy::Complete => {
                tracing::error!("step {step} failed; the {} goes on: {error}", steps.name());
            }
            Policy::Halt | Policy::Undo(_) => {
                tracing::error!("step {step} failed, the {} halted: {error}", steps.name());
                steps.halted(journal, step, &error).await;
            }
        }
        None
    }

    /// Undoes `undo` (the steps begun, last first) after `step` failed. All undone: the
    /// journal is archived and the procedure abandoned. An undo that fails: the
    /// procedure halts there, saying what is left as it is.
    async fn undo<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
        undo: &'static [StepOf<S>],
        error: String,
    ) -> Result<(), RunError> {
        tracing::error!("step {step} failed, undoing the {}: {error}", steps.name());
        let mut undone = Vec::new();
        for &earlier in undo.iter().rev() {
            let begun = journal
                .step(earlier)
                .is_some_and(|s| s.status != StepStatus::Pending);
            if !begun {
                continue;
            }
            match steps.undo(earlier, journal).await {
                Ok(what) => undone.push(self.scrubber.scrub(&what)),
                Err(e) => {
                    let error = self.scrubber.scrub(&format!(
                        "{error}; undoing {earlier} FAILED too, so it is left as it is: {e:#}"
                    ));
                    journal.fail(step, error.clone(), Timestamp::now());
                    steps.halted(journal, step, &error).await;
                    return match self.store.save::<S::Kind>(journal) {
                        Ok(()) => Ok(()),
                        Err(e) => Err(RunError::Journal {
                            what: steps.name(),
                            step: step.to_string(),
                            error: format!("{error}; and the journal cannot be written: {e:#}"),
                        }),
                    };
                }
            }
        }
        journal.fail(step, error.clone(), Timestamp::now());
        let why = format!("step {step} failed: {error}; {}", undone.join("; "));
        tracing::info!("{} abandoned, undone: {}", steps.name(), undone.join("; "));
        let archived = self.store.archive::<S::Kind>(Timestamp::now());
        steps.abandoned(journal, step, &why).await;
        Err(RunError::Abandoned(match archived {
            Ok(path) => format!(
                "{} abandoned, nothing changed: {why}; the journal is archived as {}",
                steps.name(),
                path.map_or("-".to_string(), |p| p.display().to_string())
            ),
            Err(e) => format!(
                "{} abandoned, nothing changed: {why}; but the journal could not be archived ({e:#}): move it aside before the next run",
                steps.name()
            ),
        }))
    }

    /// The journal cannot be written at `step`: the procedure halts here, before its next
    /// step, as a failed step would: alerted (that needs no disk), the halt hook run,
    /// and one more try to record it. The file keeps what was last written, so a later
    /// run resumes from there once the disk is back.
    async fn halt_unrecorded<S: Steps>(
        &self,
        steps: &S,
        journal: &mut JournalOf<S>,
        step: StepOf<S>,
        error: anyhow::Error,
    ) -> RunError {
        let error = self.scrubber.scrub(&format!(
            "the {} journal cannot be written, so the {} stops before its next step: {error:#}",
            S::Kind::NAME,
            steps.name()
        ));
        if let Some(record) = journal.steps.iter_mut().find(|s| s.name == step) {
            record.fail(error.clone(), Timestamp::now());
        }
        journal.outcome = Outcome::Halted;
        journal.finished_at = Some(Timestamp::now());
        tracing::error!("step {step}: {error}");
        steps.halted(journal, step, &error).await;
        if self.store.save::<S::Kind>(journal).is_ok() {
            tracing::info!("the halted {} is recorded after all", steps.name());
        }
        RunError::Journal {
            what: steps.name(),
            step: step.to_string(),
            error,
        }
    }
}

/// The dry run of a procedure: every step, numbered, with what it does and its targets,
/// then what the journal says it did already or what its targets look like now.
/// Returns how many looks found a problem.
pub async fn print_preview<S: Steps>(steps: &S, journal: Option<&JournalOf<S>>) -> usize {
    let names = match journal {
        Some(j) => <S::Kind as Procedure>::steps(&j.record),
        None => steps.plan(),
    };
    let mut failed = 0;
    for (n, &step) in names.iter().enumerate() {
        failed += print_step(steps, n + 1, step, journal.and_then(|j| j.step(step))).await;
    }
    failed
}

async fn print_step<S: Steps>(
    steps: &S,
    n: usize,
    step: StepOf<S>,
    record: Option<&crate::journal::StepRecord<StepOf<S>>>,
) -> usize {
    let preview = steps.preview(step).await;
    println!(" {n}. {step}: {}", preview.does);
    for target in &preview.targets {
        println!("     {target}");
    }
    if let Some(done) = record.filter(|r| r.status == StepStatus::Done) {
        println!(
            "     already done: {}",
            done.detail.as_deref().unwrap_or("")
        );
        return 0;
    }
    let mut failed = 0;
    for seen in preview.now {
        match seen {
            Ok(seen) => println!("     now: {seen}"),
            Err(problem) => {
                failed += 1;
                println!("     CHECK FAILED: {problem}");
            }
        }
    }
    failed
}

/// Asks the operator at the terminal to type `yes` to `question`; refuses (exit 2)
/// when stdin is not a terminal: nobody to ask (`command` needs `--yes`).
pub fn confirm(command: &str, question: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(UsageError(format!(
            "{command} needs --yes when stdin is not a terminal (nobody to ask)"
        ))
        .into());
    }
    print!("{question} Type 'yes': ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != "yes" {
        return Err(Refused("not confirmed; nothing was changed".to_string()).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
