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
//! - the stop signal (SIGTERM, SIGINT), and what it means where the procedure stands
//!   ([`Steps::on_stop`], [`OnStop`]): stop before the next step for the next run to
//!   resume (the daemon's restart), halt there for an operator to take it up, undo what
//!   was done and abandon, or go on to the end because stopping would leave the pair
//!   not serving. A step that only waits ([`Steps::interruptible`]) is cut short by a
//!   stop; every other step runs to its end first;
//! - the failure policy: halt (alerted, the procedure's own halt hook run), undo the
//!   listed steps and abandon (the journal archived, even when an undo fails: what is
//!   left as it is is said), go on, or complete anyway;
//! - a journal that cannot be written: the procedure halts before its next step,
//!   alerted like a failed step.
//!
//! The dry run's printer ([`print_preview`]), the operator's confirmation ([`confirm`])
//! and how a command that ran a procedure ends ([`command_ended`]: its exit code and
//! what it says on stderr) live here too, once for every procedure.

use std::cell::Cell;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
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

    /// Undoes `step` (its policy, a later step's, or a stop said so); what it did, in
    /// words.
    async fn undo(&self, step: StepOf<Self>, _journal: &JournalOf<Self>) -> anyhow::Result<String> {
        anyhow::bail!("step {step} cannot be undone")
    }

    /// What a stop (SIGTERM, SIGINT) means with the journal as it stands. By default the
    /// procedure stops before its next step and the next run resumes it (the daemon's
    /// next start does).
    fn on_stop(&self, _journal: &JournalOf<Self>) -> OnStop<StepOf<Self>> {
        OnStop::Resume
    }

    /// Whether a stop cuts `step` short: a step that only waits (a catch-up), so
    /// cutting it changes nothing. Every other step runs to its end (or its deadline)
    /// before a stop is acted on.
    fn interruptible(&self, _step: StepOf<Self>) -> bool {
        false
    }

    /// The procedure halted at `step` with `error` (a failed step, or a journal that
    /// cannot be written): alert, run hooks. The journal says halted already.
    async fn halted(&self, journal: &JournalOf<Self>, step: StepOf<Self>, error: &str);

    /// The procedure was abandoned at `step` after its undo (`end` says why, what was
    /// undone and what could not be): alert.
    async fn abandoned(&self, _journal: &JournalOf<Self>, _step: StepOf<Self>, _end: &Abandonment) {
    }

    /// The procedure ran to its end (done): post hooks.
    async fn finished(&self, _journal: &JournalOf<Self>) {}
}

/// What a stop (SIGTERM, SIGINT) means for a procedure where its journal stands
/// ([`Steps::on_stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop<S: 'static> {
    /// Stop before the next step; the journal stays `running` and the next run resumes
    /// it (the daemon: its next start does).
    Resume,
    /// Halt before the next step (or in a step cut short), the journal saying so: the
    /// next run takes it up as an operator's retry.
    Halt,
    /// Undo these steps (the begun ones, last first) and abandon the procedure, its
    /// journal archived: nothing of it remains.
    Abandon(&'static [S]),
    /// Go on to the end: stopping here would leave the pair not serving.
    Finish,
}

impl<S> OnStop<S> {
    /// What the stop does, in words, for the log and the operator.
    pub fn says(&self, name: &str) -> String {
        match self {
            OnStop::Resume => {
                format!("the {name} stops before its next step; its next run resumes there")
            }
            OnStop::Halt => format!(
                "the {name} halts before its next step (a waiting step is cut short); run it again to take it up"
            ),
            OnStop::Abandon(_) => {
                format!("the {name} is undone and abandoned: nothing it did remains")
            }
            OnStop::Finish => format!(
                "the {name} is past its point of no return and goes on to its end, so the pair serves (interrupt again to exit at once)"
            ),
        }
    }
}

/// Why a procedure was abandoned, what was undone, and what could not be.
#[derive(Debug, Clone, Default)]
pub struct Abandonment {
    /// The failed step and its error, or the stop.
    pub why: String,
    /// What each undo did, in words.
    pub undone: Vec<String>,
    /// Each step whose undo failed, with why: it may be left as it is.
    pub left: Vec<String>,
    /// A stop (SIGTERM, SIGINT) ended it, not a failure.
    pub interrupted: bool,
}

/// What a step's run ended with, for the runner's loop.
enum Flow {
    /// On to the next step.
    Next,
    /// The procedure stops here (a stop resumed later, or halted): the journal says so.
    Stop,
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
    /// A step failed (or a stop came) before the procedure changed anything of its own
    /// host: what it did elsewhere was undone (or said to be left as it is), the journal
    /// archived. Exit 1 (130 when a stop caused it).
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
    /// Whether what the stop means was said already (once is enough).
    told: Cell<bool>,
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
            told: Cell::new(false),
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
        if self.shutdown.requested() {
            // Asked before it began (during an operator's pre-checks): nothing to undo.
            return Err(RunError::Abandoned(format!(
                "{} not started, nothing changed: {}",
                steps.name(),
                stop_text(false)
            )));
        }
        let mut journal = steps.open(last).await?;
        if let Err(e) = store.save::<S::Kind>(&journal) {
            let step = journal.next_step().unwrap_or(journal.steps[0].name);
            return Err(self.halt_unrecorded(steps, &mut journal, step, e).await);
        }
        while let Some(step) = journal.next_step() {
            if self.shutdown.requested() {
                match steps.on_stop(&journal) {
                    OnStop::Finish => self.tell(&steps.on_stop(&journal), steps.name()),
                    OnStop::Resume => {
                        tracing::warn!(
                            "stopping before step {step}; the next run of the {} resumes there",
                            steps.name()
                        );
                        return Ok(journal);
                    }
                    OnStop::Halt => {
                        let why = format!("not started: {}", stop_text(false));
                        self.halt_on_stop(steps, step, &mut journal, why).await?;
                        return Ok(journal);
                    }
                    OnStop::Abandon(undo) => {
                        let why = format!("{} before step {step}", stop_text(false));
                        return Err(self
                            .abandon(steps, step, &mut journal, undo, why, true)
                            .await);
                    }
                }
            }
            if let Flow::Stop = self.step(steps, step, &mut journal).await? {
                return Ok(journal);
            }
        }
        if journal.outcome == Outcome::Done {
            steps.finished(&journal).await;
        }
        Ok(journal)
    }

    /// Says once what a stop means here.
    fn tell<S>(&self, on_stop: &OnStop<S>, name: &str) {
        if !self.told.replace(true) {
            tracing::warn!("a stop was asked for: {}", on_stop.says(name));
        }
    }

    /// One step between two journal writes: begin and save, run within its deadline
    /// (cut short by a stop when it only waits), finish or fail (by its policy) and save.
    async fn step<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
    ) -> Result<Flow, RunError> {
        let store = self.store;
        journal.begin(step, Timestamp::now());
        if let Err(e) = store.save::<S::Kind>(journal) {
            return Err(self.halt_unrecorded(steps, journal, step, e).await);
        }
        tracing::info!("step {step}: started");
        crashpoint::reached(&format!("before:{step}"));
        let started = Instant::now();
        let Some(result) = self.run_step(steps, step, journal).await else {
            return self.stopped_in(steps, step, journal).await;
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
                if let Some(abandoned) = self.failed(steps, step, journal, error).await {
                    return Err(abandoned);
                }
            }
        }
        match store.save::<S::Kind>(journal) {
            Ok(()) => Ok(Flow::Next),
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
                Ok(Flow::Next)
            }
            Err(e) => Err(self.halt_unrecorded(steps, journal, step, e).await),
        }
    }

    /// Runs `step` within its deadline. A stop while it runs is said once (what it
    /// means here); it cuts the step short (`None`) only when the step only waits and
    /// the stop does not mean going on to the end.
    async fn run_step<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
    ) -> Option<anyhow::Result<String>> {
        let on_stop = steps.on_stop(journal);
        let cut = steps.interruptible(step) && !matches!(on_stop, OnStop::Finish);
        let deadline = steps.deadline(step);
        let run = tokio::time::timeout(deadline, steps.run(step, journal));
        tokio::pin!(run);
        let mut watching = true;
        loop {
            tokio::select! {
                ended = &mut run => {
                    return Some(ended.unwrap_or_else(|_| {
                        Err(anyhow::anyhow!(
                            "step {step} did not finish within {}",
                            humantime::format_duration(deadline)
                        ))
                    }));
                }
                () = self.shutdown.wait(), if watching => {
                    if cut {
                        tracing::warn!("a stop was asked for: step {step} is cut short");
                        return None;
                    }
                    watching = false;
                    self.tell(&on_stop, steps.name());
                }
            }
        }
    }

    /// A stop cut `step` short: do what the stop means here.
    async fn stopped_in<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
    ) -> Result<Flow, RunError> {
        match steps.on_stop(journal) {
            OnStop::Abandon(undo) => {
                let why = format!("{} during step {step}", stop_text(false));
                Err(self.abandon(steps, step, journal, undo, why, true).await)
            }
            OnStop::Halt => {
                self.halt_on_stop(steps, step, journal, stop_text(true))
                    .await?;
                Ok(Flow::Stop)
            }
            // Left running in the journal, as a killed process leaves it: the next run
            // resumes the step.
            OnStop::Resume | OnStop::Finish => {
                tracing::warn!(
                    "stopped in step {step}; the next run of the {} resumes there",
                    steps.name()
                );
                Ok(Flow::Stop)
            }
        }
    }

    /// A stop halts the procedure at `step`: the journal says so, the halt hook runs.
    async fn halt_on_stop<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
        why: String,
    ) -> Result<(), RunError> {
        tracing::warn!("step {step}: {why}; the {} halts there", steps.name());
        journal.interrupt(step, why.clone(), Timestamp::now());
        if let Err(e) = self.store.save::<S::Kind>(journal) {
            return Err(self.halt_unrecorded(steps, journal, step, e).await);
        }
        steps.halted(journal, step, &why).await;
        Ok(())
    }

    /// `step` failed with `error`: record it and do what its policy says. `Some` ends
    /// the procedure here (abandoned after its undo).
    async fn failed<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
        error: String,
    ) -> Option<RunError> {
        let policy = journal.policy(step);
        if let Policy::Undo(undo) = policy {
            tracing::error!("step {step} failed, undoing the {}: {error}", steps.name());
            let why = format!("step {step} failed: {error}");
            return Some(self.abandon(steps, step, journal, undo, why, false).await);
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

    /// Undoes `undo` (the steps begun, last first) and abandons the procedure at `step`
    /// (`why`: its failure, or a stop): the journal records it and is archived, even
    /// when an undo fails. Those steps come before the procedure changes anything of its
    /// own host, so a journal kept halted there would only stand in a later
    /// procedure's way (a failover of a primary that died meanwhile): what could not be
    /// undone is said instead, in the error and the procedure's alert.
    async fn abandon<S: Steps>(
        &self,
        steps: &S,
        step: StepOf<S>,
        journal: &mut JournalOf<S>,
        undo: &'static [StepOf<S>],
        why: String,
        interrupted: bool,
    ) -> RunError {
        let mut end = Abandonment {
            why: self.scrubber.scrub(&why),
            interrupted,
            ..Abandonment::default()
        };
        for &earlier in undo.iter().rev() {
            let begun = journal
                .step(earlier)
                .is_some_and(|s| s.status != StepStatus::Pending);
            if !begun {
                continue;
            }
            match steps.undo(earlier, journal).await {
                Ok(what) => end.undone.push(self.scrubber.scrub(&what)),
                Err(e) => end
                    .left
                    .push(self.scrubber.scrub(&format!("{earlier}: {e:#}"))),
            }
        }
        let record = match end.left.is_empty() {
            true => format!("{}; abandoned", end.why),
            false => format!(
                "{}; abandoned, but undoing FAILED, so it may be left as it is: {}",
                end.why,
                end.left.join("; ")
            ),
        };
        journal.interrupt(step, record, Timestamp::now());
        // The archived file tells the end; when it cannot be written it keeps the last
        // record, which is archived all the same.
        if let Err(e) = self.store.save::<S::Kind>(journal) {
            tracing::warn!("the abandoned {} cannot be recorded: {e:#}", steps.name());
        }
        let archived = self.store.archive::<S::Kind>(Timestamp::now());
        tracing::warn!(
            "{} abandoned; undone: [{}]; left as it is: [{}]",
            steps.name(),
            end.undone.join("; "),
            end.left.join("; ")
        );
        steps.abandoned(journal, step, &end).await;
        RunError::Abandoned(abandoned_text(steps.name(), &end, archived))
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

/// "a stop (SIGTERM or SIGINT) was asked for", and when.
fn stop_text(during: bool) -> String {
    format!(
        "interrupted: a stop (SIGTERM or SIGINT) was asked for{}",
        if during { " while it ran" } else { "" }
    )
}

/// The error a command ends on when its procedure was abandoned.
fn abandoned_text(
    name: &str,
    end: &Abandonment,
    archived: anyhow::Result<Option<std::path::PathBuf>>,
) -> String {
    let undone = match end.undone.is_empty() {
        true => String::new(),
        false => format!("; undone: {}", end.undone.join("; ")),
    };
    let kept = match archived {
        Ok(path) => format!(
            "the journal is archived as {}",
            path.map_or("-".to_string(), |p| p.display().to_string())
        ),
        Err(e) => format!(
            "but the journal could not be archived ({e:#}): move it aside before the next run"
        ),
    };
    if end.left.is_empty() {
        format!(
            "{name} abandoned, nothing changed: {}{undone}; {kept}",
            end.why
        )
    } else {
        format!(
            "{name} abandoned, but undoing it FAILED, so this may be left as it is: {}. {}{undone}; {kept}, so it stands in the way of no failover",
            end.left.join("; "),
            end.why
        )
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

/// How a command that ran a procedure (`name`, taken up again by `again`) ends, from
/// its journal and whether a stop was asked for: 0 when it is done (saying so when a
/// stop came past its point of no return), else an error saying why on stderr: the
/// failed step and its error, or where it stopped, and what takes it up. A stop's
/// error exits 130.
pub fn command_ended<P: Procedure>(
    name: &str,
    again: &str,
    journal: &Journal<P>,
    interrupted: bool,
) -> anyhow::Result<ExitCode> {
    let why = match (journal.outcome, journal.failed_step()) {
        (Outcome::Done, _) => {
            if interrupted {
                eprintln!(
                    "note: a stop was asked for once the {name} was past its point of no return: it was finished, so the pair serves"
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        (Outcome::Halted, Some(failed)) => format!(
            "the {name} halted at step {}: {}; `{again}` takes it up from there",
            failed.name,
            failed.error.as_deref().unwrap_or("(no error recorded)")
        ),
        (_, _) => format!(
            "the {name} stopped before step {}; `{again}` resumes it there",
            journal
                .next_step()
                .map_or("-".to_string(), |step| step.to_string())
        ),
    };
    match interrupted {
        true => Err(crate::error::Interrupted(why).into()),
        false => Err(anyhow::anyhow!(why)),
    }
}

/// What a command's procedure run comes to: its journal and whether a stop was asked
/// for; or, its alerts flushed first, the error the command ends on (a stop's
/// abandonment exits 130, the rest as [`RunError::into_error`] says).
pub async fn command_ran<P: Procedure>(
    edges: &Edges,
    result: Result<Journal<P>, RunError>,
) -> anyhow::Result<(Journal<P>, bool)> {
    let interrupted = edges.shutdown.requested();
    match result {
        Ok(journal) => Ok((journal, interrupted)),
        Err(error) => {
            edges.flush_alerts().await;
            Err(match error {
                RunError::Abandoned(text) if interrupted => crate::error::Interrupted(text).into(),
                error => error.into_error(),
            })
        }
    }
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
