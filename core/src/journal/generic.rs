//! The generic journal: one type for every procedure, its steps' records, the outcome
//! and the failure policy. [`super`] says what it is for.

use std::fmt::{Debug, Display};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What a kind of procedure is, as its journal sees it.
pub trait Procedure: Sized + 'static {
    /// The names of its steps.
    type Step: Copy + Eq + Debug + Display + Serialize + DeserializeOwned + 'static;
    /// What its journal records besides the steps (why it started, positions, ...).
    type Record: Clone + Debug + PartialEq + Eq;
    /// The file's shape, as it always was.
    type File: Serialize + DeserializeOwned;
    /// "promotion", "rejoin": for messages ("the promotion journal ...").
    const NAME: &'static str;
    /// The file's layout version; another one is refused, naming the file.
    const VERSION: u32;
    /// Its file in `state_dir` (`promotion.json`); archived as `<stem>.<time>.json`.
    const FILE: &'static str;

    /// The steps of a journal with this record, in the order they run.
    fn steps(record: &Self::Record) -> &'static [Self::Step];
    /// What a failure of `step` means.
    fn policy(record: &Self::Record, step: Self::Step) -> Policy<Self::Step>;
    /// Where an operator's retry of a procedure halted at `failed` starts: the failed
    /// step itself, unless an earlier one must run again first (a rejoin's `catch_up`
    /// redoes `replicate`, whose settings may have been the cause).
    fn retry_from(_record: &Self::Record, failed: Self::Step) -> Self::Step {
        failed
    }
    /// The journal as its file holds it.
    fn to_file(journal: &Journal<Self>) -> Self::File;
    /// The journal from its file (not yet checked: [`Journal::validate`] does).
    fn from_file(file: Self::File) -> Journal<Self>;
    /// The kind of journal in words, for messages: [`Procedure::NAME`] unless a record
    /// says more (a promotion's trigger).
    fn kind(_record: &Self::Record) -> &'static str {
        Self::NAME
    }
    /// What the record learns when `step` finishes (a switchover's drill times).
    fn on_finish(_record: &mut Self::Record, _step: Self::Step, _now: Timestamp) {}
}

/// What a failed step means for the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy<S: 'static> {
    /// The procedure halts here; later steps stay pending until an operator retries it.
    Halt,
    /// These steps (begun ones, in reverse order) are undone and the procedure abandoned,
    /// its journal archived. Only steps before the procedure changes anything of its own
    /// host have this policy, so it is abandoned even when an undo fails: it must stand
    /// in no later procedure's way (a failover), and what could not be undone is said.
    Undo(&'static [S]),
    /// The failure is recorded and the next step runs.
    GoOn,
    /// The procedure is complete anyway (its effect is in place; only the telling failed).
    Complete,
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl StepStatus {
    /// The name used in the journal and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        }
    }
}

/// Where the procedure as a whole stands. Each file names these in its own words
/// (a promotion is `promoted` when done, a rejoin `rejoined`; a halted rejoin is
/// `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Steps are still to run (or a process running them was killed).
    Running,
    /// Every step is done (or failed where its policy lets the procedure go on).
    Done,
    /// A step failed and halted it; later steps were left undone.
    Halted,
}

/// One step's record, kept and shown the same way in every journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord<N> {
    pub name: N,
    pub status: StepStatus,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Times the step was started (more than one after a resume or a retry by hand).
    pub attempts: u32,
    /// What the step did, in words (shown in `status` and the closing alert).
    pub detail: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl<N> StepRecord<N> {
    /// A step not started yet.
    pub fn pending(name: N) -> Self {
        Self {
            name,
            status: StepStatus::Pending,
            started_at: None,
            finished_at: None,
            attempts: 0,
            detail: None,
            error: None,
        }
    }

    /// Started (again): running, one more attempt, the last error cleared.
    pub fn begin(&mut self, now: Timestamp) {
        self.status = StepStatus::Running;
        self.started_at = Some(now);
        self.finished_at = None;
        self.attempts += 1;
        self.error = None;
    }

    /// Done, with what it did.
    pub fn finish(&mut self, detail: String, now: Timestamp) {
        self.status = StepStatus::Done;
        self.finished_at = Some(now);
        self.detail = Some(detail);
    }

    /// Failed, with why.
    pub fn fail(&mut self, error: String, now: Timestamp) {
        self.status = StepStatus::Failed;
        self.finished_at = Some(now);
        self.error = Some(error);
    }

    /// To run again: pending, its attempts kept.
    pub fn reopen(&mut self) {
        self.status = StepStatus::Pending;
        self.finished_at = None;
        self.detail = None;
        self.error = None;
    }

    /// How long its last attempt took, once finished.
    pub fn duration(&self) -> Option<std::time::Duration> {
        let span = self.finished_at?.duration_since(self.started_at?);
        std::time::Duration::try_from(span).ok()
    }
}

impl<N: Display> StepRecord<N> {
    /// One line of `status`: name (padded to `width`), status, time taken, detail or
    /// error.
    pub fn render_line(&self, width: usize) -> String {
        let took = self.duration().map_or(String::new(), |d| {
            format!(" in {}", crate::report::human_duration(d))
        });
        format!(
            "  {:<width$} {:<8}{took} {}{}\n",
            self.name.to_string(),
            self.status.as_str(),
            self.detail.as_deref().unwrap_or(""),
            self.error
                .as_ref()
                .map_or(String::new(), |e| format!("ERROR: {e}"))
        )
    }
}

/// A procedure's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal<P: Procedure> {
    pub version: u32,
    /// This host.
    pub node: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub outcome: Outcome,
    pub steps: Vec<StepRecord<P::Step>>,
    /// What this kind of procedure records besides its steps.
    pub record: P::Record,
}

impl<P: Procedure> Journal<P> {
    /// A new procedure with every step pending.
    pub fn start(node: &str, record: P::Record, now: Timestamp) -> Self {
        Journal {
            version: P::VERSION,
            node: node.to_string(),
            started_at: now,
            finished_at: None,
            outcome: Outcome::Running,
            steps: P::steps(&record)
                .iter()
                .map(|&name| StepRecord::pending(name))
                .collect(),
            record,
        }
    }

    /// What a failure of `step` means in this journal.
    pub fn policy(&self, step: P::Step) -> Policy<P::Step> {
        P::policy(&self.record, step)
    }

    /// The step to run next: the first one not `done`, passing over failed ones whose
    /// policy lets the procedure go on. `None` once it is over or halted (a halted one is
    /// only taken up again by [`Journal::retry_halted`]).
    pub fn next_step(&self) -> Option<P::Step> {
        if self.outcome != Outcome::Running {
            return None;
        }
        self.steps
            .iter()
            .find(|s| !(s.status == StepStatus::Done || self.passed_over(s)))
            .map(|s| s.name)
    }

    /// A failed step the procedure went on from.
    fn passed_over(&self, step: &StepRecord<P::Step>) -> bool {
        step.status == StepStatus::Failed
            && matches!(self.policy(step.name), Policy::GoOn | Policy::Complete)
    }

    /// The step that was running when a process died, if any: a resume says so.
    pub fn interrupted_step(&self) -> Option<P::Step> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Running)
            .map(|s| s.name)
    }

    /// The record of `step`; `None` only in a journal that fails [`Journal::validate`].
    pub fn step(&self, step: P::Step) -> Option<&StepRecord<P::Step>> {
        self.steps.iter().find(|s| s.name == step)
    }

    fn step_mut(&mut self, step: P::Step) -> Option<&mut StepRecord<P::Step>> {
        self.steps.iter_mut().find(|s| s.name == step)
    }

    /// Marks `step` as running. (A step without a record, in a journal that fails
    /// [`Journal::validate`], is left as it is: the runner only begins
    /// [`Journal::next_step`].)
    pub fn begin(&mut self, step: P::Step, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.begin(now);
        }
    }

    /// Marks `step` as done; the procedure is done once no step is left.
    pub fn finish(&mut self, step: P::Step, detail: String, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.finish(detail, now);
        }
        P::on_finish(&mut self.record, step, now);
        if self.next_step().is_none() && self.outcome == Outcome::Running {
            self.outcome = Outcome::Done;
            self.finished_at = Some(now);
        }
    }

    /// Marks `step` as failed, and the procedure as its policy says: halted (also for an
    /// undo, which the runner then attempts), going on, or complete anyway.
    pub fn fail(&mut self, step: P::Step, error: String, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.fail(error, now);
        }
        match self.policy(step) {
            Policy::GoOn => {
                if self.next_step().is_none() {
                    self.outcome = Outcome::Done;
                    self.finished_at = Some(now);
                }
            }
            Policy::Complete => {
                self.outcome = Outcome::Done;
                self.finished_at = Some(now);
            }
            Policy::Halt | Policy::Undo(_) => {
                self.outcome = Outcome::Halted;
                self.finished_at = Some(now);
            }
        }
    }

    /// Marks `step` as failed with `error` and the procedure as halted there, whatever
    /// the step's policy: a stop (SIGTERM, SIGINT) ended it, and the next run takes it
    /// up as an operator's retry.
    pub fn interrupt(&mut self, step: P::Step, error: String, now: Timestamp) {
        if let Some(record) = self.step_mut(step) {
            record.fail(error, now);
        }
        self.outcome = Outcome::Halted;
        self.finished_at = Some(now);
    }

    /// Takes a halted procedure up again (an operator's retry after fixing the cause):
    /// the failed step runs again (from the earlier step its kind says must run again
    /// first, [`Procedure::retry_from`]); finished steps before that stay finished.
    pub fn retry_halted(&mut self) {
        if self.outcome != Outcome::Halted {
            return;
        }
        let failed = self.failed_step().map(|s| s.name);
        let from = failed.map(|failed| P::retry_from(&self.record, failed));
        // Reopened from `from` through the failed step, so no step after a pending one
        // looks started (the journal would not validate).
        if let (Some(failed), Some(from)) = (failed, from)
            && from != failed
        {
            let mut again = false;
            for step in &mut self.steps {
                again |= step.name == from;
                if again {
                    step.reopen();
                }
                if step.name == failed {
                    break;
                }
            }
        }
        self.outcome = Outcome::Running;
        self.finished_at = None;
    }

    /// The step that halted the procedure, if one did.
    pub fn failed_step(&self) -> Option<&StepRecord<P::Step>> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Failed && !self.passed_over(s))
    }

    /// The steps not started, in order (a halted procedure's undone steps).
    pub fn pending_steps(&self) -> Vec<P::Step> {
        self.steps
            .iter()
            .filter(|s| s.status == StepStatus::Pending)
            .map(|s| s.name)
            .collect()
    }

    /// How long a finished step took.
    pub fn step_duration(&self, step: P::Step) -> Option<std::time::Duration> {
        self.step(step)?.duration()
    }

    /// From the start to `now`, or to the end once it is over.
    pub fn took(&self, now: Timestamp) -> std::time::Duration {
        let end = self.finished_at.unwrap_or(now);
        std::time::Duration::try_from(end.duration_since(self.started_at)).unwrap_or_default()
    }

    /// Whether the journal describes its procedure: the steps of its kind
    /// ([`Procedure::steps`]), once each, in that order, and an outcome that fits them.
    /// A journal read from disk is checked with this before it is used, because one
    /// without its steps would look like a procedure with nothing left to do, and one
    /// whose outcome contradicts its steps would leave every reader guessing.
    pub fn validate(&self) -> Result<(), String> {
        let expected = P::steps(&self.record);
        let found: Vec<P::Step> = self.steps.iter().map(|s| s.name).collect();
        if found != expected {
            return Err(step_list_problem(P::kind(&self.record), expected, &found));
        }
        self.outcome_problem().map_or(Ok(()), Err)
    }

    /// What is inconsistent between the outcome and the steps, if anything.
    fn outcome_problem(&self) -> Option<String> {
        let running = self
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Running)
            .count();
        let started_after_pending = self
            .steps
            .iter()
            .skip_while(|s| s.status != StepStatus::Pending)
            .any(|s| s.status != StepStatus::Pending);
        let halting_failure = self.failed_step().is_some();
        let problem = match self.outcome {
            _ if running > 1 => "more than one step is running",
            _ if started_after_pending => "a step after a pending one has started",
            Outcome::Running if self.next_step().is_none() => {
                "its outcome is running, yet no step is left to run"
            }
            Outcome::Running if running == 1 && halting_failure => {
                "its outcome is running, yet one step runs while another has failed"
            }
            Outcome::Done if self.steps.iter().any(|s| s.status == StepStatus::Pending) => {
                "it is over, yet steps are pending"
            }
            Outcome::Done if running > 0 || halting_failure => {
                "it is over, yet a step runs or failed where it must halt"
            }
            Outcome::Halted if !halting_failure && running == 0 => "it halted, yet no step failed",
            _ => return None,
        };
        Some(format!("{problem} (outcome {:?})", self.outcome).to_lowercase())
    }
}

/// Why a journal's steps are not its procedure's.
fn step_list_problem<S: Copy + Eq + Display>(name: &str, expected: &[S], found: &[S]) -> String {
    let missing: Vec<S> = expected
        .iter()
        .copied()
        .filter(|n| !found.contains(n))
        .collect();
    let unexpected: Vec<S> = found
        .iter()
        .copied()
        .filter(|n| !expected.contains(n))
        .collect();
    let repeated: Vec<S> = expected
        .iter()
        .copied()
        .filter(|n| found.iter().filter(|f| *f == n).count() > 1)
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("{} missing", names(&missing)));
    }
    if !unexpected.is_empty() {
        problems.push(format!("{} not one of its steps", names(&unexpected)));
    }
    if !repeated.is_empty() {
        problems.push(format!("{} more than once", names(&repeated)));
    }
    if problems.is_empty() {
        problems.push("out of order".to_string());
    }
    let found = if found.is_empty() {
        "it has no steps".to_string()
    } else {
        format!("its steps are [{}]: {}", names(found), problems.join(", "))
    };
    format!(
        "{found}; a {name} journal has exactly these {}, in this order: {}",
        count_in_words(expected.len()),
        names(expected)
    )
}

fn count_in_words(n: usize) -> String {
    match n {
        5 => "five".to_string(),
        6 => "six".to_string(),
        8 => "eight".to_string(),
        n => n.to_string(),
    }
}

/// "stop_replica, make_writable", for messages.
fn names<S: Display>(steps: &[S]) -> String {
    steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl<P: Procedure> Serialize for Journal<P> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        P::to_file(self).serialize(serializer)
    }
}

impl<'de, P: Procedure> Deserialize<'de> for Journal<P> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        P::File::deserialize(deserializer).map(P::from_file)
    }
}
