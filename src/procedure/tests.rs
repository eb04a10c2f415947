//! The runner with fake steps: every failure policy, resume after each step, a journal
//! that cannot be written, a stop between steps and in a step (each thing a stop may
//! mean), a deadline, scrubbing, the lock.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::*;
use crate::journal::{Journal, Outcome, Policy, Procedure, StepRecord, StepStatus};
use crate::secret::{Scrubber, Secret};
use crate::shutdown::Shutdown;
use crate::store::StateDir;

/// A fake procedure's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    /// Undone when `Fence` or `Wait` fail.
    Fence,
    Wait,
    Work,
    /// Its failure is recorded and the next step runs.
    Optional,
    /// Its failure leaves the procedure complete.
    Tell,
}

const STEPS: [Step; 5] = [
    Step::Fence,
    Step::Wait,
    Step::Work,
    Step::Optional,
    Step::Tell,
];

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self).unwrap();
        f.write_str(name.as_str().unwrap())
    }
}

/// The fake journal kind.
#[derive(Debug, PartialEq, Eq)]
enum Drill {}

#[derive(Debug, Serialize, Deserialize)]
struct DrillFile {
    version: u32,
    node: String,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    outcome: String,
    steps: Vec<StepRecord<Step>>,
}

impl Procedure for Drill {
    type Step = Step;
    type Record = ();
    type File = DrillFile;
    const NAME: &'static str = "drill";
    const VERSION: u32 = 1;
    const FILE: &'static str = "drill.json";

    fn steps(_: &()) -> &'static [Step] {
        &STEPS
    }

    fn policy(_: &(), step: Step) -> Policy<Step> {
        match step {
            Step::Fence | Step::Wait => Policy::Undo(&[Step::Fence, Step::Wait]),
            Step::Work => Policy::Halt,
            Step::Optional => Policy::GoOn,
            Step::Tell => Policy::Complete,
        }
    }

    fn to_file(j: &Journal<Drill>) -> DrillFile {
        DrillFile {
            version: j.version,
            node: j.node.clone(),
            started_at: j.started_at,
            finished_at: j.finished_at,
            outcome: format!("{:?}", j.outcome).to_lowercase(),
            steps: j.steps.clone(),
        }
    }

    fn from_file(f: DrillFile) -> Journal<Drill> {
        Journal {
            version: f.version,
            node: f.node,
            started_at: f.started_at,
            finished_at: f.finished_at,
            outcome: match f.outcome.as_str() {
                "done" => Outcome::Done,
                "halted" => Outcome::Halted,
                _ => Outcome::Running,
            },
            steps: f.steps,
            record: (),
        }
    }
}

/// What each fake step does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Does {
    Succeed,
    Fail,
    /// Takes an hour (its deadline is a minute).
    Hang,
    /// Asks for the stop, then succeeds.
    AskToStop,
    /// Its journal write is made impossible, then it succeeds.
    BreakTheDisk,
}

struct Fake {
    does: Vec<(Step, Does)>,
    /// Undoing fails.
    undo_fails: bool,
    /// What a stop means (the same wherever the journal stands).
    on_stop: OnStop<Step>,
    /// The steps a stop cuts short.
    interruptible: Vec<Step>,
    /// What happened, in order: "run fence", "undo fence", "halted work", ...
    log: Mutex<Vec<String>>,
    dir: std::path::PathBuf,
    trigger: Mutex<Option<crate::shutdown::Trigger>>,
}

impl Fake {
    fn new(dir: &std::path::Path, does: &[(Step, Does)]) -> Fake {
        Fake {
            does: does.to_vec(),
            undo_fails: false,
            on_stop: OnStop::Resume,
            interruptible: Vec::new(),
            log: Mutex::default(),
            dir: dir.to_path_buf(),
            trigger: Mutex::default(),
        }
    }

    fn note(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Steps for Fake {
    type Kind = Drill;

    fn name(&self) -> &'static str {
        "drill"
    }

    fn plan(&self) -> &'static [Step] {
        &STEPS
    }

    async fn open(&self, last: Option<Journal<Drill>>) -> Result<Journal<Drill>, RunError> {
        Ok(match last {
            Some(mut journal) => {
                journal.retry_halted();
                journal
            }
            None => Journal::start("node", (), Timestamp::UNIX_EPOCH),
        })
    }

    fn deadline(&self, _: Step) -> Duration {
        Duration::from_secs(60)
    }

    async fn preview(&self, step: Step) -> Preview {
        Preview::new(format!("does {step}"))
    }

    async fn run(&self, step: Step, _journal: &mut Journal<Drill>) -> anyhow::Result<String> {
        self.note(format!("run {step}"));
        let does = self
            .does
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(Does::Succeed, |(_, d)| *d);
        match does {
            Does::Succeed => Ok(format!("{step} done with the token s3cr3t-t0ken")),
            Does::Fail => anyhow::bail!("{step} broke (token s3cr3t-t0ken)"),
            Does::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok("never".into())
            }
            Does::AskToStop => {
                if let Some(trigger) = self.trigger.lock().unwrap().as_ref() {
                    trigger.stop();
                }
                Ok("asked to stop".into())
            }
            Does::BreakTheDisk => {
                // The temporary file's name taken by a directory: no write can land.
                std::fs::create_dir_all(self.dir.join("drill.tmp").join("x")).unwrap();
                Ok("the disk is gone".into())
            }
        }
    }

    async fn undo(&self, step: Step, _: &Journal<Drill>) -> anyhow::Result<String> {
        self.note(format!("undo {step}"));
        if self.undo_fails {
            anyhow::bail!("cannot undo {step}");
        }
        Ok(format!("{step} undone"))
    }

    fn on_stop(&self, _: &Journal<Drill>) -> OnStop<Step> {
        self.on_stop
    }

    fn interruptible(&self, step: Step) -> bool {
        self.interruptible.contains(&step)
    }

    async fn halted(&self, _: &Journal<Drill>, step: Step, error: &str) {
        self.note(format!("halted {step}: {error}"));
    }

    async fn abandoned(&self, _: &Journal<Drill>, step: Step, end: &Abandonment) {
        self.note(format!(
            "abandoned {step}{}{}",
            if end.interrupted { " by a stop" } else { "" },
            if end.left.is_empty() {
                String::new()
            } else {
                format!(", left: {}", end.left.join("; "))
            }
        ));
    }

    async fn finished(&self, _: &Journal<Drill>) {
        self.note("finished".into());
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    store: StateDir,
    scrubber: Scrubber,
    shutdown: Shutdown,
}

fn bench() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store = StateDir::new(dir.path());
    let secret = Secret::inline("s3cr3t-t0ken");
    Bench {
        store,
        scrubber: Scrubber::new([&secret]),
        shutdown: Shutdown::never(),
        _dir: dir,
    }
}

impl Bench {
    async fn run(&self, fake: &Fake) -> Result<Journal<Drill>, RunError> {
        Runner::with(&self.store, &self.scrubber, &self.shutdown)
            .run(fake, "pid 1 (test)")
            .await
    }

    fn on_disk(&self) -> Option<Journal<Drill>> {
        self.store.load::<Drill>().unwrap()
    }

    fn fake(&self, does: &[(Step, Does)]) -> Fake {
        Fake::new(self.store.path(), does)
    }
}

fn statuses(journal: &Journal<Drill>) -> Vec<StepStatus> {
    journal.steps.iter().map(|s| s.status).collect()
}

use StepStatus::{Done, Failed, Pending};

#[tokio::test]
async fn every_step_runs_in_order_and_the_journal_on_disk_says_done() {
    let bench = bench();
    let fake = bench.fake(&[]);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Done);
    let runs: Vec<String> = STEPS.iter().map(|s| format!("run {s}")).collect();
    assert_eq!(fake.log()[..5], runs[..]);
    assert_eq!(fake.log()[5], "finished");
    assert_eq!(bench.on_disk(), Some(journal));
}

#[tokio::test]
async fn a_halting_failure_stops_before_the_next_step_and_says_so() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Work, Does::Fail)]);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Halted);
    assert_eq!(statuses(&journal), [Done, Done, Failed, Pending, Pending]);
    let log = fake.log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[3].starts_with("halted work: work broke"), "{log:?}");
    assert_eq!(bench.on_disk().unwrap().outcome, Outcome::Halted);
}

#[tokio::test]
async fn a_failure_that_goes_on_is_recorded_and_the_next_step_runs() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Optional, Does::Fail)]);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Done);
    assert_eq!(statuses(&journal), [Done, Done, Done, Failed, Done]);
    assert!(fake.log().contains(&"run tell".to_string()));
    assert!(!fake.log().iter().any(|l| l.starts_with("halted")));
}

#[tokio::test]
async fn a_failure_of_the_telling_step_leaves_the_procedure_complete() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Tell, Does::Fail)]);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Done);
    assert_eq!(statuses(&journal), [Done, Done, Done, Done, Failed]);
    assert_eq!(fake.log().last().unwrap(), "finished");
}

#[tokio::test]
async fn an_undoing_failure_undoes_the_begun_steps_last_first_and_archives_the_journal() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Wait, Does::Fail)]);
    let error = bench.run(&fake).await.unwrap_err();
    assert!(matches!(error, RunError::Abandoned(_)), "{error}");
    assert!(error.to_string().contains("fence undone"), "{error}");
    assert_eq!(
        fake.log(),
        [
            "run fence",
            "run wait",
            "undo wait",
            "undo fence",
            "abandoned wait"
        ]
    );
    assert_eq!(bench.on_disk(), None, "archived");
    let archived = std::fs::read_dir(bench.store.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("drill."));
    assert!(archived);
}

/// Issue 18, item 7: a switchover whose fence and its undo both failed halted, and the
/// halted journal stood between a primary that died then and its failover. Steps whose
/// failure undoes come before the procedure changes its own host: it is abandoned
/// (the journal archived) even when an undo fails, saying what is left as it is.
#[tokio::test]
async fn an_undo_that_fails_abandons_all_the_same_and_says_what_is_left_as_it_is() {
    let bench = bench();
    let mut fake = bench.fake(&[(Step::Wait, Does::Fail)]);
    fake.undo_fails = true;
    let error = bench.run(&fake).await.unwrap_err();
    let RunError::Abandoned(text) = &error else {
        panic!("{error}");
    };
    assert!(
        text.contains("undoing it FAILED") && text.contains("fence: cannot undo fence"),
        "{text}"
    );
    assert!(text.contains("stands in the way of no failover"), "{text}");
    assert_eq!(
        bench.on_disk(),
        None,
        "archived: nothing is left in the way"
    );
    assert_eq!(
        fake.log(),
        [
            "run fence",
            "run wait",
            "undo wait",
            "undo fence",
            "abandoned wait, left: wait: cannot undo wait; fence: cannot undo fence"
        ]
    );
    assert_eq!(crate::error::exit_code_for(&error.into_error()), 1);
}

/// A stop that means abandoning: the begun steps are undone and the journal archived.
#[tokio::test]
async fn a_stop_that_abandons_undoes_the_begun_steps_and_archives_the_journal() {
    let mut bench = bench();
    let (shutdown, trigger) = Shutdown::new();
    bench.shutdown = shutdown;
    let mut fake = bench.fake(&[(Step::Fence, Does::AskToStop)]);
    fake.on_stop = OnStop::Abandon(&[Step::Fence, Step::Wait]);
    *fake.trigger.lock().unwrap() = Some(trigger);
    let error = bench.run(&fake).await.unwrap_err();
    let RunError::Abandoned(text) = &error else {
        panic!("{error}");
    };
    assert!(
        text.contains("drill abandoned, nothing changed: interrupted")
            && text.contains("before step wait")
            && text.contains("fence undone"),
        "{text}"
    );
    assert_eq!(
        fake.log(),
        ["run fence", "undo fence", "abandoned wait by a stop"]
    );
    assert_eq!(bench.on_disk(), None);
}

/// Issue 18, item 8: Ctrl-C during a switchover's catch-up was waited out and left both
/// databases read-only. A step that only waits is cut short by a stop, and the stop does
/// what it means there.
#[tokio::test(start_paused = true)]
async fn a_stop_cuts_a_waiting_step_short_and_does_what_it_means_there() {
    let mut bench = bench();
    let (shutdown, trigger) = Shutdown::new();
    bench.shutdown = shutdown;
    let mut fake = bench.fake(&[(Step::Wait, Does::Hang)]);
    fake.on_stop = OnStop::Abandon(&[Step::Fence, Step::Wait]);
    fake.interruptible = vec![Step::Wait];
    let stop = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        trigger.stop();
    });
    let started = tokio::time::Instant::now();
    let error = bench.run(&fake).await.unwrap_err();
    stop.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "cut short, not waited out to the deadline: {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("during step wait"), "{error}");
    assert_eq!(
        fake.log(),
        [
            "run fence",
            "run wait",
            "undo wait",
            "undo fence",
            "abandoned wait by a stop"
        ]
    );
}

/// A stop that halts, between steps or in a waiting step: the journal says the step
/// was interrupted and the procedure halted (no `running` journal left with nobody to
/// run it), and the halt hook tells.
#[tokio::test(start_paused = true)]
async fn a_stop_that_halts_records_the_interruption_in_the_journal() {
    for cut in [false, true] {
        let mut bench = bench();
        let (shutdown, trigger) = Shutdown::new();
        bench.shutdown = shutdown;
        let mut fake = match cut {
            false => bench.fake(&[(Step::Wait, Does::AskToStop)]),
            true => bench.fake(&[(Step::Work, Does::Hang)]),
        };
        fake.on_stop = OnStop::Halt;
        fake.interruptible = vec![Step::Work];
        match cut {
            false => *fake.trigger.lock().unwrap() = Some(trigger),
            true => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    trigger.stop();
                });
            }
        }
        let journal = bench.run(&fake).await.unwrap();
        assert_eq!(journal.outcome, Outcome::Halted, "cut {cut}");
        assert_eq!(statuses(&journal), [Done, Done, Failed, Pending, Pending]);
        let error = journal.step(Step::Work).unwrap().error.clone().unwrap();
        let expected = match cut {
            false => "not started: interrupted",
            true => "interrupted: a stop (SIGTERM or SIGINT) was asked for while it ran",
        };
        assert!(error.starts_with(expected), "cut {cut}: {error}");
        assert_eq!(bench.on_disk(), Some(journal), "cut {cut}");
        assert!(fake.log().last().unwrap().starts_with("halted work"));
        // The next run (no stop asked for) takes it up from there.
        bench.shutdown = Shutdown::never();
        let again = bench.fake(&[]);
        assert_eq!(bench.run(&again).await.unwrap().outcome, Outcome::Done);
        assert_eq!(again.log()[0], "run work");
    }
}

/// A stop past the point of no return: nothing is cut short, every step runs.
#[tokio::test]
async fn a_stop_that_means_finishing_lets_every_step_run() {
    let mut bench = bench();
    let (shutdown, trigger) = Shutdown::new();
    bench.shutdown = shutdown;
    let mut fake = bench.fake(&[(Step::Wait, Does::AskToStop)]);
    fake.on_stop = OnStop::Finish;
    fake.interruptible = vec![Step::Work];
    *fake.trigger.lock().unwrap() = Some(trigger);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Done);
    assert_eq!(fake.log().last().unwrap(), "finished");
}

/// For every step: a journal on disk with the steps before it done resumes at it and
/// never runs a finished step again.
#[tokio::test]
async fn a_journal_resumes_after_each_step() {
    for done in 0..STEPS.len() {
        let bench = bench();
        let mut journal: Journal<Drill> = Journal::start("node", (), Timestamp::UNIX_EPOCH);
        for &step in &STEPS[..done] {
            journal.begin(step, Timestamp::UNIX_EPOCH);
            journal.finish(step, "before".into(), Timestamp::UNIX_EPOCH);
        }
        if done < STEPS.len() {
            // Killed inside the step: the file says it runs.
            journal.begin(STEPS[done], Timestamp::UNIX_EPOCH);
        }
        bench.store.save(&journal).unwrap();
        let fake = bench.fake(&[]);
        let ended = bench.run(&fake).await.unwrap();
        assert_eq!(ended.outcome, Outcome::Done, "after {done}");
        let ran: Vec<String> = STEPS[done..].iter().map(|s| format!("run {s}")).collect();
        assert_eq!(fake.log()[..ran.len()], ran[..], "after {done}");
        assert_eq!(ended.steps[done].attempts, 2, "after {done}");
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_halts_before_the_next_step_and_says_so() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Wait, Does::BreakTheDisk)]);
    let error = bench.run(&fake).await.unwrap_err();
    let RunError::Journal { step, error, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(step, "wait");
    assert!(
        error.contains("the drill journal cannot be written"),
        "{error}"
    );
    let log = fake.log();
    assert_eq!(log[..2], ["run fence", "run wait"]);
    assert!(log[2].starts_with("halted wait"), "{log:?}");
    assert!(!log.contains(&"run work".to_string()), "{log:?}");
}

#[tokio::test]
async fn a_stop_asked_for_during_a_step_lets_it_finish_and_stops_before_the_next() {
    let mut bench = bench();
    let (shutdown, trigger) = Shutdown::new();
    bench.shutdown = shutdown;
    let fake = bench.fake(&[(Step::Wait, Does::AskToStop)]);
    *fake.trigger.lock().unwrap() = Some(trigger);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Running);
    assert_eq!(statuses(&journal), [Done, Done, Pending, Pending, Pending]);
    assert_eq!(bench.on_disk(), Some(journal));
    assert_eq!(fake.log(), ["run fence", "run wait"]);
}

#[tokio::test(start_paused = true)]
async fn a_step_past_its_deadline_fails_by_its_policy() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Work, Does::Hang)]);
    let journal = bench.run(&fake).await.unwrap();
    assert_eq!(journal.outcome, Outcome::Halted);
    let error = journal.step(Step::Work).unwrap().error.clone().unwrap();
    assert_eq!(error, "step work did not finish within 1m");
}

#[tokio::test]
async fn details_and_errors_are_scrubbed_before_the_journal_keeps_them() {
    let bench = bench();
    let fake = bench.fake(&[(Step::Work, Does::Fail)]);
    bench.run(&fake).await.unwrap();
    let text = std::fs::read_to_string(bench.store.path().join("drill.json")).unwrap();
    assert!(!text.contains("s3cr3t-t0ken"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    let halted = fake
        .log()
        .into_iter()
        .find(|l| l.starts_with("halted"))
        .unwrap();
    assert!(
        halted.contains("[redacted]"),
        "the halt hook is told the scrubbed text: {halted}"
    );
}

#[tokio::test]
async fn a_second_runner_is_refused_naming_the_holder() {
    let bench = bench();
    let _held = bench
        .store
        .lock_promotion("pid 7 (an operator's rejoin)")
        .unwrap();
    let fake = bench.fake(&[]);
    let error = bench.run(&fake).await.unwrap_err();
    assert!(matches!(error, RunError::Refused(_)), "{error}");
    assert!(error.to_string().contains("pid 7"), "{error}");
    assert!(fake.log().is_empty());
    assert_eq!(crate::error::exit_code_for(&error.into_error()), 3);
}

/// A stop asked for before the runner began: no journal is opened, nothing is run.
#[tokio::test]
async fn a_stop_before_the_procedure_begins_starts_nothing() {
    let mut bench = bench();
    let (shutdown, trigger) = Shutdown::new();
    bench.shutdown = shutdown;
    trigger.stop();
    let fake = bench.fake(&[]);
    let error = bench.run(&fake).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("drill not started, nothing changed"),
        "{error}"
    );
    assert!(fake.log().is_empty());
    assert_eq!(bench.on_disk(), None);
}
