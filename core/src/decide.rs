//! The decision core: every choice the daemon makes, as a pure state machine.
//!
//! The daemon (the binary crate's `daemon.rs`) observes and acts; this module decides. It is fed
//! [`Event`]s (a round's observations, the witnesses' answers, the last look, how a
//! promotion ended) and returns [`Action`]s (log this, send this alert, save the live
//! state, ask the witnesses, take a last look, promote) that the daemon executes in
//! order, feeding the results of the asking ones back as the next event. It never
//! awaits, never reads a clock (times come with each event) and touches no file,
//! socket or process, so every transition is a unit test without sleeps.
//!
//! Before an automatic promotion, in order: the failure count reaches the threshold,
//! nothing pauses it, replication silence is confirmed (not merely young), the lag guard
//! lets it go, and a last look at the primary still fails.
//!
//! The core also owns the cadence ([`crate::cadence`]): after every event that leaves
//! nothing to ask, the last action is [`Action::NextRound`], when the next round runs,
//! how long its checks may take, and whether the replica is watched until then (and
//! [`Action::AskWitnesses`] says how long the witnesses may take). A failed round, or a look
//! at the replica ([`Event::ReplicaWatched`]) that finds it lost or silent, makes the
//! pace suspect; a good round makes it calm again.

use std::time::Duration;

use jiff::Timestamp;

use crate::alert::Alert;
use crate::cadence::{Cadence, CadenceSettings, Glance, PaceChange, Schedule};
use crate::detect::{Detector, ReplicationSeen, RoundOutcome, Transition, lag_guard};
use crate::journal::{Outcome, PrimarySeen};
use crate::pairwatch::{PairAction, PairSettings, PairWatch, Standing};
use crate::report::RoundReport;
use crate::role::Role;
use crate::state::State;
use crate::status::{LiveState, Pause};
use crate::verdict::{
    ReplicaHears, Silence, SilenceTracker, Verdict, confirm_with_witnesses, judge, silence_window,
};
use crate::witness::WitnessReport;

/// What the core needs of the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub failures_before_promotion: u32,
    pub interval: Duration,
    /// `probe.suspect_interval`: the cadence while the primary is in doubt.
    pub suspect_interval: Duration,
    /// `probe.timeout`: each check of a calm round and of the last look.
    pub timeout: Duration,
    /// The longest `probe.witnesses[].timeout` (unused without witnesses).
    pub witness_timeout: Duration,
    /// The lag guard's limit.
    pub max_lag: Duration,
    pub split_brain_alert_every: Duration,
    pub confirm_with_replication: bool,
    /// `None`: derived from the replica's heartbeat period ([`silence_window`]).
    pub replication_silence: Option<Duration>,
    /// Whether `[[probe.witnesses]]` are configured.
    pub witnesses: bool,
    /// `[apps] stop_when_demoted` (acted on only with `[peer]`).
    pub stop_when_demoted: bool,
    /// `[apps] units`, named in the alert when a demoted host stops them.
    pub units: Vec<String>,
    /// `[peer] name`, for the alerts about it.
    pub peer_name: Option<String>,
    /// `[peer] fence_when_not_serving`.
    pub fence_when_not_serving: bool,
}

impl Settings {
    /// What the cadence needs of them.
    pub fn cadence(&self) -> CadenceSettings {
        CadenceSettings {
            interval: self.interval,
            suspect_interval: self.suspect_interval,
            timeout: self.timeout,
            failures_before_promotion: self.failures_before_promotion,
            witness_timeout: self.witnesses.then_some(self.witness_timeout),
        }
    }
}

/// The time, as each event brings it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock time: for `status`, pauses and the journal.
    pub wall: Timestamp,
    /// Monotonic time since the daemon started: for silence and repetition.
    pub since_start: Duration,
}

/// The replica's replication, as read this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// Not read (the daemon reads it only while it watches for promotion).
    NotRead,
    /// Could not be read, or the configured connection does not exist.
    Unreadable(String),
    /// The configured connection's state.
    Read(ReplicaReading),
}

/// The figures of the replica's status the decisions use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReading {
    /// Both threads running, no SQL error.
    pub replicating: bool,
    pub lag_seconds: Option<u64>,
    /// One line: threads, position, lag.
    pub summary: String,
    /// The IO thread is connected to the primary.
    pub io_connected: bool,
    /// Why it is not, when it is not ("Connecting: error reconnecting …").
    pub io_problem: String,
    /// Everything received (`Gtid_IO_Pos`) and the heartbeats received: together, what
    /// has arrived from the primary.
    pub gtid_io_pos: crate::gtid::GtidPosition,
    pub heartbeats: u64,
    pub heartbeat_period: Option<Duration>,
}

/// The pause marker, as read this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PauseMarker {
    Absent,
    Present(Pause),
    /// It exists but cannot be read: errs on the side of not promoting.
    Unreadable(String),
}

/// The promotion journal, as read at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalAtStart {
    None,
    Running,
    Promoted {
        at: Timestamp,
    },
    Halted,
    /// Cannot be read: no blind promotion, no blind refusal.
    Unreadable(String),
}

pub use crate::pairwatch::{DnsReading, PairReading, PeerDb, PeerReading};

/// One round of observations.
#[derive(Debug, Clone)]
pub struct Round {
    /// The primary's checks and the self-checks (no witnesses yet).
    pub report: RoundReport,
    pub replication: Replication,
    pub pause: PauseMarker,
    /// The journal's outcome (`Some(None)`: no journal); `None` when it could not be
    /// read this round. The daemon follows a journal that another process changed (an
    /// operator's `--promote-now`).
    pub journal: Option<Option<Outcome>>,
    /// This host's role and, while it is the primary, its standby; `None` without
    /// `[peer]` (a standby-only setup: no roles acted on).
    pub pair: Option<Box<PairReading>>,
}

/// How a promotion the core asked for ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionEnd {
    /// It ran; the journal's outcome. `Running`: it stopped between steps for a shutdown.
    Ran(Outcome),
    /// The `pre_promote` hook refused it before anything changed.
    HeldByPrePromote(String),
    /// Refused: the journal says it already finished or halted, or `state_dir` cannot
    /// be used (a lock file the daemon may not open). Alerted: a promotion the daemon
    /// decided on did not start.
    Refused(String),
    /// Another process holds the promotion lock: it runs the promotion.
    Busy(String),
    /// The journal could not be written: the promotion halted (the promoter alerted).
    JournalFailed(String),
    /// Not started: the daemon is stopping. The next start decides again (or resumes a
    /// journal that says `running`).
    NotStarted,
}

/// What happened.
#[derive(Debug, Clone)]
pub enum Event {
    Round(Round),
    /// The answers to [`Action::AskWitnesses`].
    WitnessesAnswered(Vec<WitnessReport>),
    /// The round [`Action::TakeLastLook`] asked for.
    LastLook(RoundReport),
    /// The end of [`Action::Promote`].
    PromotionEnded(PromotionEnd),
    /// The end of [`Action::StopApps`]: `Err` says what failed.
    AppsStopped(Result<(), String>),
    /// The end of [`Action::ArchivePromotion`]: where the journal went, or why not.
    PromotionArchived(Result<String, String>),
    /// The end of [`Action::FenceSelf`]: its reason, and `Err` saying what failed.
    SelfFenced {
        why: String,
        result: Result<(), String>,
    },
    /// A look at the replica between calm rounds, as [`Schedule::watch_every`] asks.
    ReplicaWatched(Replication),
}

/// How loud a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Log(Level, String),
    Alert(Alert),
    /// Write [`Decider::live`] for `status`.
    SaveLive,
    /// Remove the pause marker (a timed pause ran out).
    RemovePause,
    /// Ask every witness, each within `within` when that is shorter than its own
    /// timeout (the cadence's bound); answer with [`Event::WitnessesAnswered`].
    AskWitnesses {
        within: Option<Duration>,
    },
    /// Run one more round of the primary's checks; answer with [`Event::LastLook`].
    TakeLastLook,
    /// Run (or resume) the automatic promotion; answer with [`Event::PromotionEnded`].
    Promote {
        reason: String,
        primary_last_seen: Option<PrimarySeen>,
    },
    /// Stop these application units (this host was demoted); answer with
    /// [`Event::AppsStopped`].
    StopApps(Vec<String>),
    /// Archive the finished promotion as `reset` does (this host is a healthy standby
    /// again); answer with [`Event::PromotionArchived`].
    ArchivePromotion,
    /// Make this host's database read-only and stop these units: it is writable while
    /// DNS points elsewhere; answer with [`Event::SelfFenced`].
    FenceSelf {
        units: Vec<String>,
        why: String,
    },
    /// Stop the daemon with this error (after the actions before it).
    Exit(String),
    /// When the next round runs, how long its checks may take, and how to watch the
    /// replica until then.
    NextRound(Schedule),
}

/// What the daemon is doing between rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Watching the primary; promotes at the threshold.
    Monitoring,
    /// A promotion runs (ours, or one an event said is in the journal).
    Promoting,
    /// Promoted: keeps probing (the split-brain watch), never promotes again.
    Promoted,
    /// A promotion halted: an operator decides (`--promote-now` retries it).
    Halted,
}

/// A round waiting for the daemon to come back with more.
#[derive(Debug, Clone)]
enum Pending {
    /// The witnesses are being asked about a failed round.
    Witnesses(Judged),
    /// The last look before promotion is being taken.
    LastLook { failures: u32, why: String },
}

/// A round judged so far.
#[derive(Debug, Clone)]
struct Judged {
    report: RoundReport,
    verdict: Verdict,
    /// False while the only evidence of silence is young: the round counts, but does
    /// not yet allow a promotion.
    confirmed: bool,
    pause: Option<Pause>,
}

/// The decisions and everything they remember.
#[derive(Debug, Clone)]
pub struct Decider {
    settings: Settings,
    mode: Mode,
    detector: Detector,
    silence: SilenceTracker,
    /// What `status` shows; saved on [`Action::SaveLive`].
    live: LiveState,
    pending: Option<Pending>,
    /// The pause hold was logged for this streak of failures.
    pause_logged: bool,
    /// The wait for confirmed silence was logged for this streak.
    waiting_logged: bool,
    /// What each host says about the pair, and what it remembers.
    pair: PairWatch,
    /// The last verdict was decided by the witnesses' vote.
    verdict_by_witnesses: bool,
    /// The journal as last read, and what to do with the next reading.
    journal: JournalWatch,
    /// The pace of rounds, their bounds and the replica's watch.
    cadence: Cadence,
}

/// How the next reading of the journal is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JournalWatch {
    /// Last read with this outcome (`None`: no journal); a change is followed.
    Seen(Option<Outcome>),
    /// Unknown (our promotion could not write it): the next reading is taken as it
    /// is, without changing the mode.
    AdoptNext,
    /// Another process decides (it refused ours): the next reading sets the mode.
    FollowNext,
}

impl Decider {
    /// A core for a daemon starting now. Nothing it knew before it started is kept: a
    /// reading of the replica or of the primary made before this start proves nothing
    /// about the primary's last transactions (the standby may have been down while the
    /// primary took writes), so the lag guard holds until this daemon has seen the
    /// primary healthy itself.
    pub fn new(settings: Settings, pid: u32, now: Now) -> Decider {
        let live = LiveState::fresh(
            State::Monitoring,
            settings.failures_before_promotion,
            pid,
            now.wall,
        );
        let pair = PairWatch::new(PairSettings {
            peer_name: settings
                .peer_name
                .clone()
                .unwrap_or_else(|| "the peer".to_string()),
            split_brain_alert_every: settings.split_brain_alert_every,
            max_lag: settings.max_lag,
            stop_when_demoted: settings.stop_when_demoted,
            fence_when_not_serving: settings.fence_when_not_serving,
            units: settings.units.clone(),
        });
        Decider {
            cadence: Cadence::new(settings.cadence(), now.since_start),
            detector: Detector::new(settings.failures_before_promotion),
            settings,
            pair,
            mode: Mode::Monitoring,
            silence: SilenceTracker::default(),
            live,
            pending: None,
            pause_logged: false,
            waiting_logged: false,
            verdict_by_witnesses: false,
            journal: JournalWatch::Seen(None),
        }
    }

    /// The live state for `status`, as of the last event.
    pub fn live(&self) -> &LiveState {
        &self.live
    }

    /// The state name, as of the last event.
    pub fn state(&self) -> State {
        self.live.state
    }

    /// The next round, as the core last scheduled it (the first: at once).
    pub fn schedule(&self) -> Schedule {
        self.cadence.schedule(self.watches_replica())
    }

    /// Whether the next round should read the replica (only while watching for
    /// promotion: after one, replication is over).
    pub fn wants_replication(&self) -> bool {
        self.mode == Mode::Monitoring
    }

    /// Whether the daemon should warn at start about witnesses and the heartbeat (only
    /// when it will watch for promotion).
    pub fn watches(&self) -> bool {
        self.mode == Mode::Monitoring
    }

    /// The journal decides where we start. An interrupted promotion is resumed at once
    /// (the daemon says READY first); an unreadable journal alerts, then stops us.
    pub fn start(&mut self, journal: JournalAtStart, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        self.journal = JournalWatch::Seen(match journal {
            JournalAtStart::Running => Some(Outcome::Running),
            JournalAtStart::Promoted { .. } => Some(Outcome::Done),
            JournalAtStart::Halted => Some(Outcome::Halted),
            JournalAtStart::None | JournalAtStart::Unreadable(_) => None,
        });
        match journal {
            JournalAtStart::None => {}
            JournalAtStart::Promoted { at } => {
                log(
                    &mut out,
                    Level::Info,
                    format!("this node was promoted at {at}; not monitoring for promotion"),
                );
                self.mode = Mode::Promoted;
            }
            JournalAtStart::Halted => {
                log(
                    &mut out,
                    Level::Warn,
                    "a halted promotion is in the journal; waiting for an operator (--promote-now retries it)",
                );
                self.mode = Mode::Halted;
            }
            JournalAtStart::Running => {
                self.mode = Mode::Promoting;
                self.save(&mut out, now, None);
                out.push(Action::Promote {
                    reason: "resuming an interrupted promotion".to_string(),
                    primary_last_seen: self.live.primary_last_seen.clone(),
                });
                return out;
            }
            JournalAtStart::Unreadable(error) => {
                log(&mut out, Level::Error, format!("cannot start: {error}"));
                out.push(Action::Alert(Alert::JournalUnreadable {
                    error: error.clone(),
                }));
                out.push(Action::Exit(error));
                return out;
            }
        }
        self.save(&mut out, now, None);
        out
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle(&mut self, event: Event, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Round(round) => {
                self.cadence.round_began();
                self.on_round(round, now, &mut out);
            }
            Event::WitnessesAnswered(answers) => match self.pending.take() {
                Some(Pending::Witnesses(mut judged)) => {
                    judged.verdict = confirm_with_witnesses(judged.verdict, &answers);
                    if matches!(judged.verdict, Verdict::Inconclusive(_)) {
                        self.cadence.witnesses_fell_short();
                    }
                    judged.report.witnesses = answers;
                    self.conclude(judged, true, now, &mut out);
                }
                other => self.unexpected(other, "witness answers", &mut out),
            },
            Event::LastLook(report) => match self.pending.take() {
                Some(Pending::LastLook { failures, why }) => {
                    self.on_last_look(report, failures, &why, now, &mut out)
                }
                other => self.unexpected(other, "a last look", &mut out),
            },
            Event::PromotionEnded(end) => self.on_promotion_ended(end, now, &mut out),
            Event::AppsStopped(result) => {
                let actions = self.pair.apps_stopped(result);
                self.pair_actions(actions, &mut out);
            }
            Event::SelfFenced { why, result } => {
                let actions = self.pair.fenced_self(&why, result);
                self.pair_actions(actions, &mut out);
            }
            Event::PromotionArchived(result) => self.on_archived(result, now, &mut out),
            Event::ReplicaWatched(replication) => self.on_glance(replication, now, &mut out),
        }
        if self.pending.is_none() {
            self.cadence.conclude(now.since_start);
            out.push(Action::NextRound(self.schedule()));
        }
        out
    }

    /// Whether the replica is watched between calm rounds: only while this host
    /// watches a primary for promotion.
    fn watches_replica(&self) -> bool {
        self.mode == Mode::Monitoring && self.live.role != Some(Role::Primary)
    }

    /// A look at the replica between calm rounds: a lost IO thread or silence makes the
    /// pace suspect, and the next round due at once.
    fn on_glance(&mut self, replication: Replication, now: Now, out: &mut Vec<Action>) {
        if !self.watches_replica() {
            return;
        }
        match self
            .cadence
            .glance(glance(&replication), now.since_start, now.wall)
        {
            Some(PaceChange::WatchPaused(why)) => log(
                out,
                Level::Warn,
                format!(
                    "the replica could not be read between rounds ({why}); not read again until a round reads it"
                ),
            ),
            Some(change) => {
                self.on_pace_change(change, out);
                self.save(out, now, None);
            }
            None => {}
        }
    }

    /// Says a change of pace.
    fn on_pace_change(&self, change: PaceChange, out: &mut Vec<Action>) {
        let settings = self.cadence.settings();
        match change {
            PaceChange::Suspect(why) => log(
                out,
                Level::Warn,
                format!(
                    "suspect: re-probing every {} until the primary answers or fails {} rounds ({why})",
                    crate::cadence::short(settings.suspect_interval),
                    settings.failures_before_promotion
                ),
            ),
            PaceChange::Calm(why) => log(
                out,
                Level::Info,
                format!(
                    "calm: probing every {} again ({why})",
                    crate::cadence::short(settings.interval)
                ),
            ),
            PaceChange::WatchPaused(_) => {}
        }
    }

    /// The primary is in doubt (why): the suspect pace, said when it changes.
    fn doubt(&mut self, why: &str, now: Now, out: &mut Vec<Action>) {
        if let Some(change) = self.cadence.doubt(why, now.since_start, now.wall) {
            self.on_pace_change(change, out);
        }
    }

    /// The doubt is over, or nothing is left to hurry for (why): the calm pace, said
    /// when it changes.
    fn calm(&mut self, why: &'static str, now: Now, out: &mut Vec<Action>) {
        if let Some(change) = self.cadence.calm(why, now.since_start) {
            self.on_pace_change(change, out);
        }
    }

    fn unexpected(&mut self, pending: Option<Pending>, what: &str, out: &mut Vec<Action>) {
        // The daemon only sends these in answer to our action: a bug, said loudly.
        log(
            out,
            Level::Error,
            format!("internal: {what} arrived while waiting for {pending:?}; ignored"),
        );
        self.pending = pending;
    }

    fn on_round(&mut self, round: Round, now: Now, out: &mut Vec<Action>) {
        if let Some(journal) = round.journal {
            self.follow_journal(journal, out);
        }
        let pause = self.active_pause(round.pause, now, out);
        let report = round.report;
        let primary = self.read_pair(round.pair.as_deref(), &report, now, out);
        if self.mode != Mode::Monitoring || primary {
            // Promoting, promoted or halted: replication is over; only the checks
            // matter (the split-brain watch). A primary never promotes: its checks of
            // the peer count nothing.
            let verdict = judge(report.ok, &report.failures(), None, None);
            if primary {
                self.detector.alive();
                self.live.held = None;
            } else {
                self.detector.on_round(report.ok);
            }
            self.calm("nothing to decide: not watching for promotion", now, out);
            self.remember(&report, verdict);
            if self.mode == Mode::Monitoring {
                self.live.state = State::Serving;
            }
            self.save(out, now, Some(report));
            if self.mode == Mode::Promoting && round.journal == Some(Some(Outcome::Running)) {
                // A journal that says a promotion runs while no promotion of ours does:
                // a command interrupted without finishing it, or another process running
                // it. Taken up (the engine's lock tells the one from the other).
                out.push(Action::Promote {
                    reason: "taking up the promotion in the journal".to_string(),
                    primary_last_seen: None,
                });
            }
            return;
        }

        self.cadence
            .round_read(glance(&round.replication), now.since_start);
        let (seen, hears, heartbeat_period) = read_replication(round.replication, now);
        if seen.is_some() {
            self.cadence.heard_period(heartbeat_period);
        }
        if report.ok
            && let Some(seen) = seen
        {
            self.live.replication_seen = Some(seen);
        }
        let silence = self.settings.confirm_with_replication.then(|| {
            let window = silence_window(
                self.settings.replication_silence,
                heartbeat_period,
                self.settings.interval,
            );
            self.silence
                .observe(&hears, now.since_start, window, !report.ok)
        });
        let verdict = judge(
            report.ok,
            &report.failures(),
            report.self_check_failures().as_deref(),
            silence.as_ref(),
        );
        let judged = Judged {
            report,
            confirmed: !matches!(silence, Some(Silence::Young { .. })),
            verdict,
            pause,
        };
        if self.settings.witnesses && matches!(judged.verdict, Verdict::Failed(_)) {
            self.pending = Some(Pending::Witnesses(judged));
            out.push(Action::AskWitnesses {
                within: self.cadence.witnesses_within(),
            });
            return;
        }
        self.conclude(judged, false, now, out);
    }

    /// The round's verdict is final: count it, say what changed, and decide.
    fn conclude(&mut self, judged: Judged, by_witnesses: bool, now: Now, out: &mut Vec<Action>) {
        let Judged {
            report,
            verdict,
            confirmed,
            pause,
        } = judged;
        let outcome = match &verdict {
            Verdict::Ok => self.detector.on_round(true),
            Verdict::Failed(_) => self.detector.on_round(false),
            // Proof of life (the replica heard it after its checks failed, or a witness
            // reaches it) breaks the streak; not knowing holds it.
            Verdict::Degraded(_) => self.detector.alive(),
            Verdict::Inconclusive(_) => self.detector.hold(),
        };
        self.on_verdict_change(&verdict, by_witnesses, out);
        log_transition(
            outcome.transition,
            &report,
            self.settings.failures_before_promotion,
            out,
        );
        if report.ok
            && let Some(reason) = self.live.held.take()
        {
            log(
                out,
                Level::Info,
                format!(
                    "the primary answers again; automatic promotion is armed again (it was held: {reason})"
                ),
            );
            out.push(Action::Alert(Alert::Rearmed));
        }
        self.remember(&report, verdict.clone());
        let at_threshold = outcome
            .threshold_reached
            .then_some((confirmed, pause.is_some()));
        self.pace_after(&verdict, at_threshold, now, out);

        if !outcome.threshold_reached {
            self.pause_logged = false;
            self.waiting_logged = false;
        } else if self.live.held.is_none() {
            if let Some(pause) = &pause {
                if !std::mem::replace(&mut self.pause_logged, true) {
                    log(
                        out,
                        Level::Warn,
                        format!(
                            "the primary failed {} rounds, but automatic promotion is paused{}",
                            outcome.consecutive_failures,
                            pause
                                .reason
                                .as_ref()
                                .map_or(String::new(), |r| format!(": {r}"))
                        ),
                    );
                }
            } else if !confirmed {
                if !std::mem::replace(&mut self.waiting_logged, true) {
                    log(
                        out,
                        Level::Warn,
                        format!(
                            "the primary failed {} rounds; waiting for replication silence to confirm it before promoting",
                            outcome.consecutive_failures
                        ),
                    );
                }
            } else {
                return self.on_threshold(outcome, report, &verdict, now, out);
            }
        }
        self.save_monitoring(&verdict, pause.is_some(), now, Some(report), out);
    }

    /// The pace after a round: suspect while a failed (or inconclusive) round leaves the
    /// primary in doubt and there is something to hurry for; calm once it answers or
    /// proves alive, or the count is at the threshold with nothing to hurry for (paused,
    /// held). `at_threshold`: whether silence is confirmed and whether it is paused.
    /// Confirmed, neither paused nor held, the lag guard and the last look decide.
    fn pace_after(
        &mut self,
        verdict: &Verdict,
        at_threshold: Option<(bool, bool)>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let calm = match (verdict, at_threshold) {
            (Verdict::Ok, _) => "the primary answers",
            (Verdict::Degraded(_), _) => "the primary is alive (degraded)",
            (_, Some(_)) if self.live.held.is_some() => "automatic promotion is held",
            (_, Some((_, true))) => "automatic promotion is paused",
            (_, Some((true, false))) => return,
            (Verdict::Failed(why) | Verdict::Inconclusive(why), _) => {
                return self.doubt(why, now, out);
            }
        };
        self.calm(calm, now, out);
    }

    /// The threshold is reached, confirmed, and nothing is paused: the lag guard, then a
    /// last look.
    fn on_threshold(
        &mut self,
        outcome: RoundOutcome,
        report: RoundReport,
        verdict: &Verdict,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let failures = outcome.consecutive_failures;
        if let Err(risk) = lag_guard(self.live.replication_seen.as_ref(), self.settings.max_lag) {
            log(
                out,
                Level::Error,
                format!(
                    "the primary failed {failures} rounds, but automatic promotion is held: {risk}"
                ),
            );
            out.push(Action::Alert(Alert::HeldByLagGuard {
                failures,
                risk: risk.clone(),
            }));
            self.live.held = Some(risk);
            self.live.state = State::Halted;
            self.calm("automatic promotion is held", now, out);
            self.save(out, now, Some(report));
            return;
        }
        let why = match verdict {
            Verdict::Failed(why) => why.clone(),
            other => other.name().to_string(),
        };
        self.live.last_probe = Some(report);
        self.pending = Some(Pending::LastLook { failures, why });
        out.push(Action::TakeLastLook);
    }

    /// A primary that answers the last look is not dead, whatever the rounds before said.
    fn on_last_look(
        &mut self,
        last_look: RoundReport,
        failures: u32,
        why: &str,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if last_look.ok {
            log(
                out,
                Level::Warn,
                format!(
                    "the primary recovered at the last moment (it failed {failures} rounds, then answered the last look): not promoting"
                ),
            );
            out.push(Action::Alert(Alert::LastLookAnswered { failures }));
            self.calm("the primary answered the last look", now, out);
            self.detector.on_round(true);
            self.live.state = State::Monitoring;
            self.save(out, now, Some(last_look));
            return;
        }
        let last = last_look.failures();
        let mut reason = if why.starts_with(&last) {
            format!(
                "the primary failed {failures} consecutive probe rounds and the last look: {why}"
            )
        } else {
            format!(
                "the primary failed {failures} consecutive probe rounds ({why}), and the last look ({last})"
            )
        };
        reason.push_str(&self.detection_note(now));
        self.mode = Mode::Promoting;
        self.save(out, now, Some(last_look));
        out.push(Action::Promote {
            reason,
            primary_last_seen: self.live.primary_last_seen.clone(),
        });
    }

    /// How the decision came, for its reason: the pace, how long the primary was in
    /// doubt and why, and the detection window in force.
    fn detection_note(&self, now: Now) -> String {
        let shown = self.cadence.shown(self.confirm_after());
        let pace = match (
            self.cadence.doubted_for(now.since_start),
            self.cadence.why(),
        ) {
            (Some(doubted), Some(why)) => format!(
                "; decided at the suspect pace (every {}), {} after the first doubt ({})",
                crate::cadence::short(self.settings.suspect_interval),
                crate::cadence::short(doubted),
                crate::alert::shorten(why, 160)
            ),
            _ => format!(
                "; decided at the calm pace (every {})",
                crate::cadence::short(self.settings.interval)
            ),
        };
        format!("{pace}; detection window: {}", shown.window_line())
    }

    /// How long replication silence must last to confirm a dead primary, as the window
    /// counts it; `None` when replication does not confirm.
    fn confirm_after(&self) -> Option<Duration> {
        self.settings.confirm_with_replication.then(|| {
            silence_window(
                self.settings.replication_silence,
                self.cadence.heartbeat(),
                self.settings.interval,
            )
        })
    }

    fn on_promotion_ended(&mut self, end: PromotionEnd, now: Now, out: &mut Vec<Action>) {
        self.calm("a promotion ran", now, out);
        match end {
            PromotionEnd::Ran(outcome) => {
                self.journal = JournalWatch::Seen(Some(outcome));
                self.mode = match outcome {
                    Outcome::Done => Mode::Promoted,
                    Outcome::Halted => Mode::Halted,
                    // Stopped between steps for a shutdown: the next start resumes.
                    Outcome::Running => Mode::Promoting,
                };
            }
            PromotionEnd::HeldByPrePromote(error) => {
                // Held like the lag guard: once, until the primary answers again.
                log(out, Level::Error, error.clone());
                out.push(Action::Alert(Alert::HeldByPrePromote {
                    error: error.clone(),
                }));
                self.mode = Mode::Monitoring;
                self.live.held = Some(error);
            }
            PromotionEnd::Refused(why) => {
                // The journal says it is done or halted, or state_dir cannot be used:
                // never only logged (a refusal to promote is a missed failover until
                // someone acts). The journal decides from the next round on.
                log(
                    out,
                    Level::Error,
                    format!("automatic promotion not run: {why}"),
                );
                out.push(Action::Alert(Alert::PromotionNotStarted { why }));
                self.journal = JournalWatch::FollowNext;
                self.mode = Mode::Promoting;
            }
            PromotionEnd::Busy(holder) => {
                // Another process runs it (an operator's command): follow its journal.
                log(
                    out,
                    Level::Info,
                    format!("the promotion is run by another process: {holder}"),
                );
                self.journal = JournalWatch::FollowNext;
                self.mode = Mode::Promoting;
            }
            PromotionEnd::NotStarted => {
                log(
                    out,
                    Level::Warn,
                    "the daemon is stopping: the promotion was not started; the next start decides again",
                );
                self.mode = Mode::Monitoring;
                self.live.state = State::Suspect;
            }
            PromotionEnd::JournalFailed(error) => {
                // The file says whatever was last written: only a change of it counts.
                self.journal = JournalWatch::AdoptNext;
                log(
                    out,
                    Level::Error,
                    format!("promotion halted: the journal cannot be written: {error}"),
                );
                self.mode = Mode::Halted;
            }
        }
        // The last look stays the last probe shown.
        self.save(out, now, None);
    }

    /// Between our own promotions, the journal only changes by another process's hand
    /// (an operator's `--promote-now`, which may finish what we halted): follow it. An
    /// unchanged journal changes nothing, so a promotion halted because its journal could
    /// not be written stays halted though the file still says `running`.
    fn follow_journal(&mut self, journal: Option<Outcome>, out: &mut Vec<Action>) {
        let before = std::mem::replace(&mut self.journal, JournalWatch::Seen(journal));
        match before {
            JournalWatch::Seen(seen) if seen == journal => return,
            JournalWatch::AdoptNext => return,
            JournalWatch::Seen(_) | JournalWatch::FollowNext => {}
        }
        let mode = match journal {
            None => Mode::Monitoring,
            Some(Outcome::Running) => Mode::Promoting,
            Some(Outcome::Done) => Mode::Promoted,
            Some(Outcome::Halted) => Mode::Halted,
        };
        if mode != self.mode {
            log(
                out,
                Level::Warn,
                format!(
                    "the promotion journal changed ({}); following it",
                    journal.map_or("cleared", |o| match o {
                        Outcome::Running => "a promotion is running",
                        Outcome::Done => "promoted",
                        Outcome::Halted => "halted",
                    })
                ),
            );
            self.mode = mode;
        }
    }

    /// The pair's news, as the pair watch ([`crate::pairwatch`]) reads it: the role
    /// (logged when it changes), the peer, the drift, a demoted host's units, a healthy
    /// standby's re-arming, a host writable while DNS points elsewhere.
    /// The pair's part of a round; whether this host is a primary.
    fn read_pair(
        &mut self,
        pair: Option<&PairReading>,
        report: &RoundReport,
        now: Now,
        out: &mut Vec<Action>,
    ) -> bool {
        // A host that would fence itself looks again soon when its own database is
        // down: its return is met within the suspect interval.
        self.cadence.own_database_answered(
            !self.settings.fence_when_not_serving || pair.is_none_or(|p| p.read_only.is_some()),
        );
        match pair {
            Some(pair) => {
                self.on_pair(pair, report, now, out);
                pair.role == Role::Primary
            }
            None => {
                if self.mode == Mode::Promoted {
                    // Without [peer] the old primary is watched through its checks.
                    let actions = self.pair.promoted_without_peer(report, now.since_start);
                    self.pair_actions(actions, out);
                }
                false
            }
        }
    }

    fn on_pair(
        &mut self,
        pair: &PairReading,
        report: &RoundReport,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        if self.live.role != Some(pair.role) {
            log(
                out,
                Level::Info,
                format!("this host's role: {} ({})", pair.role, pair.detail),
            );
            self.live.role = Some(pair.role);
        }
        let standing = Standing {
            promoted: self.mode == Mode::Promoted,
            procedure_in_hand: matches!(self.mode, Mode::Promoting | Mode::Halted),
        };
        let actions = self.pair.observe(pair, report, standing, now.since_start);
        self.pair_actions(actions, out);
    }

    /// The pair watch's requests, as the daemon's actions.
    fn pair_actions(&mut self, actions: Vec<PairAction>, out: &mut Vec<Action>) {
        for action in actions {
            out.push(match action {
                PairAction::Alert(alert) => Action::Alert(alert),
                PairAction::Log { error, text } => {
                    Action::Log(if error { Level::Error } else { Level::Warn }, text)
                }
                PairAction::StopApps(units) => Action::StopApps(units),
                PairAction::FenceSelf { units, why } => Action::FenceSelf { units, why },
                PairAction::ArchivePromotion => Action::ArchivePromotion,
            });
        }
    }

    fn on_archived(&mut self, result: Result<String, String>, now: Now, out: &mut Vec<Action>) {
        match result {
            Ok(archived) => {
                log(
                    out,
                    Level::Info,
                    format!(
                        "the finished promotion is archived as {archived}; watching the primary again, automatic promotion armed"
                    ),
                );
                out.push(Action::Alert(Alert::RearmedAsStandby { archived }));
                self.mode = Mode::Monitoring;
                self.journal = JournalWatch::Seen(None);
                self.detector.alive();
                self.pair.rearmed();
                self.live.state = State::Monitoring;
                self.save(out, now, None);
            }
            // Tried again next round.
            Err(problem) => log(
                out,
                Level::Error,
                format!("cannot archive the finished promotion: {problem}"),
            ),
        }
    }

    /// The pause in force this round, if any; a timed pause that ran out is announced
    /// and removed.
    fn active_pause(
        &mut self,
        marker: PauseMarker,
        now: Now,
        out: &mut Vec<Action>,
    ) -> Option<Pause> {
        match marker {
            PauseMarker::Absent => None,
            PauseMarker::Present(pause) if pause.active_at(now.wall) => Some(pause),
            PauseMarker::Present(_) => {
                log(
                    out,
                    Level::Info,
                    "the pause has run out; automatic promotion is on again",
                );
                out.push(Action::Alert(Alert::PauseRanOut));
                out.push(Action::RemovePause);
                None
            }
            PauseMarker::Unreadable(error) => {
                log(
                    out,
                    Level::Error,
                    format!("{error}; treating automatic promotion as paused"),
                );
                Some(Pause {
                    since: now.wall,
                    until: None,
                    reason: Some("unreadable pause marker".into()),
                })
            }
        }
    }

    /// Logs (and for some, alerts) when the verdict changes kind. A verdict the
    /// witnesses' vote decided is a kind of its own: "the replica still hears the
    /// primary" and "a witness still reaches it" are different news.
    fn on_verdict_change(&mut self, verdict: &Verdict, by_witnesses: bool, out: &mut Vec<Action>) {
        let before = self.live.verdict.as_ref().map_or("ok", Verdict::name);
        let before_by_witnesses = std::mem::replace(&mut self.verdict_by_witnesses, by_witnesses);
        if (before, before_by_witnesses) == (verdict.name(), by_witnesses) {
            return;
        }
        match verdict {
            Verdict::Inconclusive(why) if by_witnesses => {
                log(
                    out,
                    Level::Error,
                    format!("the primary looks down, but not promoting: {why}"),
                );
                out.push(Action::Alert(Alert::NotAMajority { why: why.clone() }));
            }
            Verdict::Inconclusive(why) => log(
                out,
                Level::Warn,
                format!("the standby may be isolated; not counting rounds: {why}"),
            ),
            Verdict::Degraded(why) => {
                log(out, Level::Warn, format!("degraded, not promoting: {why}"));
                out.push(Action::Alert(Alert::Degraded { why: why.clone() }));
            }
            Verdict::Ok | Verdict::Failed(_) => {}
        }
        if before == verdict.name() {
            // Same kind, another cause: said above; nothing ended.
            return;
        }
        match before {
            "inconclusive" if before_by_witnesses => log(
                out,
                Level::Info,
                format!("no longer short of a majority: {}", verdict.name()),
            ),
            "inconclusive" => {
                log(
                    out,
                    Level::Info,
                    "the standby can reach its self-checks again",
                );
                out.push(Action::Alert(Alert::Reconnected));
            }
            "degraded" => log(
                out,
                Level::Info,
                format!("no longer degraded: {}", verdict.name()),
            ),
            _ => {}
        }
    }

    /// Keeps the verdict and what the round read of the primary.
    fn remember(&mut self, report: &RoundReport, verdict: Verdict) {
        self.live.verdict = Some(verdict);
        if let Some(gtid) = report.primary_gtid() {
            self.live.primary_last_seen = Some(PrimarySeen {
                gtid: gtid.clone(),
                at: report.at,
            });
        }
    }

    /// Saves a monitoring round's state: held, isolated, degraded, paused, suspect or
    /// monitoring, in that order.
    fn save_monitoring(
        &mut self,
        verdict: &Verdict,
        paused: bool,
        now: Now,
        report: Option<RoundReport>,
        out: &mut Vec<Action>,
    ) {
        self.live.state = if self.live.held.is_some() {
            State::Halted
        } else if paused {
            State::Paused
        } else {
            match verdict {
                Verdict::Inconclusive(_) => State::Isolated,
                Verdict::Degraded(_) => State::Degraded,
                _ if self.detector.consecutive_failures() > 0 => State::Suspect,
                _ => State::Monitoring,
            }
        };
        self.save(out, now, report);
    }

    /// Updates the live state (the state from the mode, outside monitoring) and asks for
    /// it to be saved.
    fn save(&mut self, out: &mut Vec<Action>, now: Now, report: Option<RoundReport>) {
        match self.mode {
            Mode::Monitoring if self.live.held.is_some() => self.live.state = State::Halted,
            Mode::Monitoring => {}
            Mode::Promoting => self.live.state = State::Promoting,
            Mode::Promoted => self.live.state = State::Promoted,
            Mode::Halted => self.live.state = State::Halted,
        }
        self.live.consecutive_failures = self.detector.consecutive_failures();
        self.live.cadence = Some(self.cadence.shown(self.confirm_after()));
        if report.is_some() {
            self.live.last_probe = report;
        }
        self.live.updated_at = now.wall;
        out.push(Action::SaveLive);
    }
}

/// The replica's reading, as the lag guard keeps it and as the silence tracker hears it,
/// with the heartbeat period it reported.
fn read_replication(
    replication: Replication,
    now: Now,
) -> (Option<ReplicationSeen>, ReplicaHears, Option<Duration>) {
    let unreadable = |detail: String| {
        let seen = ReplicationSeen {
            at: now.wall,
            replicating: false,
            lag_seconds: None,
            detail: detail.clone(),
        };
        (Some(seen), ReplicaHears::Nothing(detail), None)
    };
    match replication {
        Replication::NotRead => (None, ReplicaHears::NotAsked, None),
        Replication::Unreadable(detail) => unreadable(detail),
        Replication::Read(reading) => {
            let seen = ReplicationSeen {
                at: now.wall,
                replicating: reading.replicating,
                lag_seconds: reading.lag_seconds,
                detail: reading.summary,
            };
            let hears = if reading.io_connected {
                ReplicaHears::Connected {
                    gtid_io_pos: reading.gtid_io_pos,
                    heartbeats: reading.heartbeats,
                }
            } else {
                ReplicaHears::Nothing(format!(
                    "the replica's IO thread is not connected ({})",
                    reading.io_problem
                ))
            };
            (Some(seen), hears, reading.heartbeat_period)
        }
    }
}

/// The replica's reading, as the cadence's watch takes it.
fn glance(replication: &Replication) -> Glance {
    match replication {
        Replication::NotRead => Glance::Unreadable("not read".to_string()),
        Replication::Unreadable(why) => Glance::Unreadable(why.clone()),
        Replication::Read(reading) if reading.io_connected => Glance::Connected {
            received: (reading.gtid_io_pos.clone(), reading.heartbeats),
            heartbeat_period: reading.heartbeat_period,
        },
        Replication::Read(reading) => Glance::Lost(reading.io_problem.clone()),
    }
}

fn log(out: &mut Vec<Action>, level: Level, text: impl Into<String>) {
    out.push(Action::Log(level, text.into()));
}

fn log_transition(
    transition: Option<Transition>,
    report: &RoundReport,
    threshold: u32,
    out: &mut Vec<Action>,
) {
    match transition {
        None => {}
        Some(Transition::FirstFailure) => log(
            out,
            Level::Warn,
            format!(
                "primary check failed (1 of {threshold}): {}",
                report.failures()
            ),
        ),
        Some(Transition::Recovered { after_failures }) => log(
            out,
            Level::Info,
            format!("primary recovered after {after_failures} failed rounds"),
        ),
        Some(Transition::ThresholdReached) => log(
            out,
            Level::Error,
            format!(
                "primary failed {threshold} rounds in a row: {}",
                report.failures()
            ),
        ),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod cadence_tests;
