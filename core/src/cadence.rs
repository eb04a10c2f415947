//! The cadence of rounds: when the next round runs, how long each of its checks may
//! take, and how the replica is watched between rounds. Pure: times are passed in.
//!
//! Two paces. **Calm**: a round every `interval`, each check within `timeout`, and
//! between rounds a look at this host's own replica every [`CadenceSettings::watch_every`]
//! (a local read). **Suspect**: as soon as there is a reason to doubt the primary (a
//! round whose checks failed, the replica's IO thread losing the primary, replication
//! gone silent), a round every `suspect_interval`, until a good round clears the doubt
//! or the count reaches the threshold.
//!
//! A suspect round fits its cadence: each check is bounded by the cadence (half of it
//! with witnesses, whose answers get the other half), so a primary that drops packets
//! costs a round no more than the cadence, not the whole probe timeout. The last look
//! before a promotion keeps the whole timeout: a primary that is slow but alive answers
//! it and is not promoted over. Witnesses are asked only when a round would fail, and
//! get half the cadence then. Those that cannot answer within it (their own checks take
//! longer than that against a silent primary) get their whole timeout in the rounds
//! after: a round then takes longer than the cadence, but their vote is never cut off
//! for good.
//!
//! `suspect_interval = interval` is the calm pace throughout: rounds every `interval`,
//! each check within `timeout`, and no watching in between.
//!
//! The detection window these give, for a primary that dies (its replica's connection
//! reset at once) and one that falls silent (packets dropped), is
//! [`CadenceSettings::window`]; the README has the same formula.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::gtid::GtidPosition;

/// The watch reads the replica this many times per suspect interval...
pub const WATCHES_PER_SUSPECT_INTERVAL: u32 = 5;
/// ...at least once a second (a lost IO thread is noticed within a second)...
pub const LONGEST_WATCH_PERIOD: Duration = Duration::from_secs(1);
/// ...and at most ten times a second (a local query each time).
pub const SHORTEST_WATCH_PERIOD: Duration = Duration::from_millis(100);
/// Replication silent for more than this many of the replica's heartbeat periods is a
/// reason to doubt the primary (one late heartbeat is not).
pub const SILENT_HEARTBEATS: u32 = 2;

/// What the cadence needs of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CadenceSettings {
    /// `probe.interval`: the calm cadence.
    pub interval: Duration,
    /// `probe.suspect_interval`: the cadence while the primary is in doubt.
    pub suspect_interval: Duration,
    /// `probe.timeout`: each check of a calm round, and of the last look.
    pub timeout: Duration,
    pub failures_before_promotion: u32,
    /// The longest `probe.witnesses[].timeout`; `None` without witnesses.
    pub witness_timeout: Option<Duration>,
}

impl CadenceSettings {
    /// How often the replica is read between calm rounds; `None` when the suspect
    /// cadence is the calm one (today's behaviour: nothing happens between rounds).
    pub fn watch_every(&self) -> Option<Duration> {
        (self.suspect_interval < self.interval).then(|| {
            (self.suspect_interval / WATCHES_PER_SUSPECT_INTERVAL)
                .clamp(SHORTEST_WATCH_PERIOD, LONGEST_WATCH_PERIOD)
        })
    }

    /// How long each check of a round at `pace` may take (and the replica's read in it):
    /// `timeout` when calm; when suspect, at most the cadence, or half of it with
    /// witnesses (whose answers get the other half).
    pub fn checks_within(&self, pace: Pace) -> Duration {
        if pace == Pace::Calm || self.suspect_interval >= self.interval {
            return self.timeout;
        }
        let share = match self.witness_timeout {
            Some(_) => self.suspect_interval / 2,
            None => self.suspect_interval,
        };
        self.timeout.min(share)
    }

    /// How long each witness may take to answer. Witnesses are asked on a round that
    /// would fail, with the primary in doubt: half the suspect interval, at most the
    /// witness's own timeout. `None` (its own timeout) without a suspect pace, or when
    /// `witnesses_full` (they could not answer within that).
    pub fn witnesses_within(&self, witnesses_full: bool) -> Option<Duration> {
        let witness_timeout = self.witness_timeout?;
        (self.suspect_interval < self.interval && !witnesses_full)
            .then(|| witness_timeout.min(self.suspect_interval / 2))
    }

    /// The detection window: from the fault to the decision, at the longest. `heartbeat`
    /// is the replica's heartbeat period as last read; `confirm_after` how long its
    /// silence must last before it confirms a dead primary (`None`: replication does
    /// not confirm).
    pub fn window(
        &self,
        heartbeat: Option<Duration>,
        confirm_after: Option<Duration>,
    ) -> DetectionWindow {
        let rounds_after_first = self.failures_before_promotion.max(1) - 1;
        let last_look = self.timeout;
        let confirmed_by = |first_round_at: Duration, cadence: Duration| {
            let counted = first_round_at + cadence * rounds_after_first;
            confirm_after.map_or(counted, |silence| counted.max(silence + cadence))
        };
        let Some(watch) = self.watch_every() else {
            // One pace: the fault lands just after a round; the threshold is reached an
            // interval per round later.
            let interval = self.interval;
            let round = self.timeout + self.witness_timeout.unwrap_or_default();
            return DetectionWindow {
                dead: interval * self.failures_before_promotion.max(1),
                silent: Some(confirmed_by(interval, interval) + round + last_look),
            };
        };
        let cadence = self.suspect_interval;
        let witnesses = self.witnesses_within(false).unwrap_or_default();
        // A suspect round against a silent primary runs out its bounds; a calm round
        // that began just before the doubt runs out its whole timeout, which delays the
        // rounds after it by what it takes beyond a cadence.
        let round = self.checks_within(Pace::Suspect) + witnesses;
        let calm_round = self.timeout + witnesses;
        DetectionWindow {
            // The IO thread's connection is reset: the watch sees it at its next look;
            // a refused connection fails each round at once.
            dead: watch + cadence * rounds_after_first,
            // Noticed once SILENT_HEARTBEATS periods pass without a word (counted from
            // the watch's look after the last one arrived); then the rounds, the last
            // of them run out, and the last look its whole timeout.
            silent: heartbeat.map(|period| {
                let noticed = period * SILENT_HEARTBEATS + watch * 2;
                confirmed_by(noticed, cadence)
                    + calm_round.saturating_sub(cadence)
                    + round
                    + last_look
            }),
        }
    }
}

/// The next round, as the core schedules it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When it starts, in the core's monotonic time (since the daemon started); a time
    /// already past means at once.
    pub at: Duration,
    /// How long each of its checks of the primary, each self-check and the replica's
    /// read may take.
    pub checks_within: Duration,
    /// Read the replica this often until then ([`Glance`]); `None`: not at all.
    pub watch_every: Option<Duration>,
}

/// The pace of rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Rounds every `interval`; the replica watched in between.
    Calm,
    /// The primary is in doubt: rounds every `suspect_interval`.
    Suspect,
}

/// What one look at the replica between rounds found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Glance {
    /// It could not be read (why): no news of the primary either way.
    Unreadable(String),
    /// Its IO thread is not connected to the primary; why.
    Lost(String),
    /// Its IO thread is connected: what it has received (`Gtid_IO_Pos`, heartbeats) and
    /// its heartbeat period.
    Connected {
        received: (GtidPosition, u64),
        heartbeat_period: Option<Duration>,
    },
}

/// The replica between rounds: raises the doubt once when it loses the primary or
/// hears nothing for [`SILENT_HEARTBEATS`] heartbeat periods, and again only after it
/// has heard the primary since (a replica whose replication is stopped for good, with
/// a primary that answers, costs one suspect round, not one per look).
#[derive(Debug, Clone, Default)]
pub struct ReplicaWatch {
    received: Option<(GtidPosition, u64)>,
    /// When something last arrived, as the watch saw it.
    last_news: Duration,
    /// It may raise the doubt: it has seen the replica hear the primary since it last did.
    armed: bool,
}

impl ReplicaWatch {
    /// Watching again at `now` after rounds ran without it: silence counts from here.
    pub fn resume(&mut self, now: Duration) {
        self.last_news = now;
    }

    /// What a round read of the replica at `now`: the baseline the next look compares
    /// with (a round that found it hearing the primary arms the watch), never a doubt of
    /// its own (the round's verdict has its say).
    pub fn baseline(&mut self, glance: Glance, now: Duration) {
        if let Glance::Connected { received, .. } = glance
            && self.received.as_ref() != Some(&received)
        {
            self.received = Some(received);
            self.last_news = now;
            self.armed = true;
        }
    }

    /// One look at `now`; `Some(why)` when it is a new reason to doubt the primary.
    pub fn look(&mut self, glance: Glance, now: Duration) -> Option<String> {
        match glance {
            Glance::Unreadable(_) => None,
            Glance::Lost(why) => {
                self.received = None;
                std::mem::take(&mut self.armed)
                    .then(|| format!("the replica's IO thread lost the primary ({why})"))
            }
            Glance::Connected {
                received,
                heartbeat_period,
            } => {
                if self.received.as_ref() != Some(&received) {
                    self.received = Some(received);
                    self.last_news = now;
                    self.armed = true;
                    return None;
                }
                let period = heartbeat_period?;
                let silent = now.saturating_sub(self.last_news);
                (silent > period * SILENT_HEARTBEATS && std::mem::take(&mut self.armed)).then(
                    || {
                        format!(
                            "nothing arrived from the primary for {} (its heartbeat comes every {})",
                            short(silent),
                            short(period)
                        )
                    },
                )
            }
        }
    }
}

/// Why the primary is in doubt, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doubt {
    since: Duration,
    at: Timestamp,
    why: String,
}

/// The cadence's state: the pace, when the round in progress was due, and the watch.
#[derive(Debug, Clone)]
pub struct Cadence {
    settings: CadenceSettings,
    doubt: Option<Doubt>,
    /// When the round in progress (or, between rounds, the next one) is due.
    due: Duration,
    /// A round has begun and is not concluded.
    round_open: bool,
    /// When the core last left nothing to do: a round due earlier began then.
    idle_since: Duration,
    /// Witnesses could not answer within a suspect round's bound: they get their own
    /// timeout until the doubt clears.
    witnesses_full: bool,
    watch: ReplicaWatch,
    /// The replica's heartbeat period, as last read (for the window).
    heartbeat: Option<Duration>,
    /// A look could not read the replica: it is not watched again until a round reads
    /// it (a replica that cannot be read would be asked, and fail, every look).
    watch_paused: bool,
    /// This host's own database did not answer the last round: the next comes at the
    /// suspect interval, whatever the pace, so its return is met within it (a writable
    /// old primary coming back is fenced then, not a calm interval later).
    own_unanswered: bool,
}

/// A change of pace, to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaceChange {
    /// Calm to suspect: why.
    Suspect(String),
    /// Suspect to calm: why.
    Calm(&'static str),
    /// The replica could not be read between rounds (why): not watched until a round
    /// reads it. The pace is as it was.
    WatchPaused(String),
}

impl Cadence {
    /// Calm, with the first round due at `now` (since the start).
    pub fn new(settings: CadenceSettings, now: Duration) -> Cadence {
        Cadence {
            settings,
            doubt: None,
            due: now,
            round_open: false,
            idle_since: now,
            witnesses_full: false,
            watch: ReplicaWatch::default(),
            heartbeat: None,
            watch_paused: false,
            own_unanswered: false,
        }
    }

    pub fn pace(&self) -> Pace {
        if self.doubt.is_some() {
            Pace::Suspect
        } else {
            Pace::Calm
        }
    }

    pub fn settings(&self) -> &CadenceSettings {
        &self.settings
    }

    /// A round has begun (its observations have arrived): when it was due, or when the
    /// daemon was done with the last event, if that was later.
    pub fn round_began(&mut self) {
        self.round_open = true;
        self.due = self.due.max(self.idle_since);
    }

    /// There is a reason to doubt the primary: the suspect pace, from the next round on.
    /// `Some` when the pace changed.
    pub fn doubt(&mut self, why: &str, since: Duration, at: Timestamp) -> Option<PaceChange> {
        if self.doubt.is_some() || self.settings.suspect_interval >= self.settings.interval {
            return None;
        }
        self.doubt = Some(Doubt {
            since,
            at,
            why: why.to_string(),
        });
        Some(PaceChange::Suspect(why.to_string()))
    }

    /// The doubt is over (a good round, proof of life, or nothing left to hurry for):
    /// the calm pace. `Some` when the pace changed.
    pub fn calm(&mut self, why: &'static str, now: Duration) -> Option<PaceChange> {
        self.witnesses_full = false;
        self.doubt.take()?;
        self.watch.resume(now);
        Some(PaceChange::Calm(why))
    }

    /// The witnesses' vote fell short of a majority while their answers were cut to fit
    /// the cadence: they get their own timeout until the doubt clears.
    pub fn witnesses_fell_short(&mut self) {
        if self.witnesses_within().is_some() {
            self.witnesses_full = true;
        }
    }

    /// How long each witness asked now may take; `None`: its own timeout.
    pub fn witnesses_within(&self) -> Option<Duration> {
        self.settings.witnesses_within(self.witnesses_full)
    }

    /// Nothing is left to do at `now`. A round in progress is over: the next is due one
    /// cadence after it began, or at once when that has passed.
    pub fn conclude(&mut self, now: Duration) {
        self.idle_since = now;
        if std::mem::take(&mut self.round_open) {
            let every = match (self.pace(), self.own_unanswered) {
                (Pace::Calm, false) => self.settings.interval,
                (Pace::Suspect, _) | (_, true) => self.settings.suspect_interval,
            };
            self.due = (self.due + every).max(now);
        }
    }

    /// A look at the replica between calm rounds. A new reason to doubt the primary makes
    /// the pace suspect and the next round due at once; returns the change. One that
    /// could not read it pauses the watch until a round reads it.
    pub fn glance(&mut self, glance: Glance, now: Duration, at: Timestamp) -> Option<PaceChange> {
        if let Glance::Connected {
            heartbeat_period, ..
        } = &glance
        {
            self.heartbeat = *heartbeat_period;
        }
        if self.doubt.is_some() || self.round_open || self.watch_paused {
            return None;
        }
        if let Glance::Unreadable(why) = glance {
            self.watch_paused = true;
            return Some(PaceChange::WatchPaused(why));
        }
        let why = self.watch.look(glance, now)?;
        let change = self.doubt(&why, now, at)?;
        self.due = now;
        Some(change)
    }

    /// Whether this host's own database answered the round in progress (see
    /// `own_unanswered`).
    pub fn own_database_answered(&mut self, answered: bool) {
        self.own_unanswered = !answered;
    }

    /// The replica's heartbeat period as a round read it.
    pub fn heard_period(&mut self, period: Option<Duration>) {
        self.heartbeat = period;
    }

    /// What a round read of the replica: the watch's baseline. One that read it
    /// resumes a watch paused by a look that could not.
    pub fn round_read(&mut self, glance: Glance, now: Duration) {
        if !matches!(glance, Glance::Unreadable(_)) && std::mem::take(&mut self.watch_paused) {
            self.watch.resume(now);
        }
        self.watch.baseline(glance, now);
    }

    /// The replica's heartbeat period, as last read.
    pub fn heartbeat(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// The next round; the replica is watched until then when `watch` (the daemon
    /// watches for promotion as a standby) and the pace is calm.
    pub fn schedule(&self, watch: bool) -> Schedule {
        Schedule {
            at: self.due,
            checks_within: self.settings.checks_within(self.pace()),
            watch_every: self
                .settings
                .watch_every()
                .filter(|_| watch && self.doubt.is_none() && !self.watch_paused),
        }
    }

    /// What `status` shows. `confirm_after`: as for [`CadenceSettings::window`].
    pub fn shown(&self, confirm_after: Option<Duration>) -> CadenceShown {
        let every = match self.pace() {
            Pace::Calm => self.settings.interval,
            Pace::Suspect => self.settings.suspect_interval,
        };
        let window = self.settings.window(self.heartbeat, confirm_after);
        CadenceShown {
            pace: self.pace(),
            every_seconds: every.as_secs_f64(),
            interval_seconds: self.settings.interval.as_secs_f64(),
            suspect_interval_seconds: self.settings.suspect_interval.as_secs_f64(),
            watch_seconds: self.settings.watch_every().map(|w| w.as_secs_f64()),
            since: self.doubt.as_ref().map(|d| d.at),
            why: self.doubt.as_ref().map(|d| d.why.clone()),
            detection_window: WindowShown {
                dead_seconds: window.dead.as_secs_f64(),
                silent_seconds: window.silent.map(|s| s.as_secs_f64()),
            },
        }
    }

    /// How long the primary has been in doubt at `now`, if it is.
    pub fn doubted_for(&self, now: Duration) -> Option<Duration> {
        self.doubt.as_ref().map(|d| now.saturating_sub(d.since))
    }

    /// Why the primary is in doubt, if it is.
    pub fn why(&self) -> Option<&str> {
        self.doubt.as_ref().map(|d| d.why.as_str())
    }
}

/// The longest from a fault to the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectionWindow {
    /// A primary that dies: connections refused, its replica's connection reset.
    pub dead: Duration,
    /// A primary that falls silent (packets dropped, no reset): `None` when the
    /// replica's heartbeat period is unknown (off, or not read yet).
    pub silent: Option<Duration>,
}

/// The cadence in force, as `status --json` shows it (`cadence`) and the live state
/// keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CadenceShown {
    pub pace: Pace,
    /// Seconds between rounds now.
    pub every_seconds: f64,
    /// `probe.interval` and `probe.suspect_interval`, in seconds.
    pub interval_seconds: f64,
    pub suspect_interval_seconds: f64,
    /// How often the replica is read between calm rounds; `null` when it is not.
    pub watch_seconds: Option<f64>,
    /// Since when, and why, the primary is in doubt (the suspect pace).
    pub since: Option<Timestamp>,
    pub why: Option<String>,
    pub detection_window: WindowShown,
}

/// [`DetectionWindow`], in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowShown {
    pub dead_seconds: f64,
    pub silent_seconds: Option<f64>,
}

impl CadenceShown {
    /// "suspect: re-probing every 5 s, 2 of 5 failed" or "calm: probing every 60 s".
    pub fn line(&self, failures: u32, of: u32) -> String {
        match self.pace {
            Pace::Suspect => format!("suspect: {}", self.re_probing(failures, of)),
            Pace::Calm => format!("calm: probing every {}", seconds(self.every_seconds)),
        }
    }

    /// "re-probing every 5 s, 2 of 5 failed".
    pub fn re_probing(&self, failures: u32, of: u32) -> String {
        format!(
            "re-probing every {}, {failures} of {of} failed",
            seconds(self.every_seconds)
        )
    }

    /// "a dead primary within 21 s, a silent one within 52 s".
    pub fn window_line(&self) -> String {
        let window = &self.detection_window;
        format!(
            "a dead primary within {}, a silent one within {}",
            seconds(window.dead_seconds),
            window.silent_seconds.map_or_else(
                || "(unknown: the replica's heartbeat is off or not read yet)".to_string(),
                seconds
            )
        )
    }
}

/// Seconds for people: "5 s", "500 ms", "1.5 s".
fn seconds(value: f64) -> String {
    short(Duration::try_from_secs_f64(value).unwrap_or_default())
}

/// A duration for people: "5 s", "500 ms", "1.5 s", "52 s".
pub fn short(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The shipped defaults: interval 60 s, suspect 5 s, timeout 10 s, 5 failures.
    fn shipped(witness_timeout: Option<Duration>) -> CadenceSettings {
        CadenceSettings {
            interval: s(60),
            suspect_interval: s(5),
            timeout: s(10),
            failures_before_promotion: 5,
            witness_timeout,
        }
    }

    fn connected(pos: &str, heartbeats: u64) -> Glance {
        Glance::Connected {
            received: (GtidPosition::parse(pos).unwrap(), heartbeats),
            heartbeat_period: Some(s(5)),
        }
    }

    #[test]
    fn the_shipped_defaults_decide_a_dead_primary_within_30_s_and_a_silent_one_within_60_s() {
        let window = shipped(None).window(Some(s(5)), Some(s(15)));
        // 1 s watch + 4 x 5 s.
        assert_eq!(window.dead, s(21));
        // 2 x 5 s heartbeats + 2 x 1 s looks, + 4 x 5 s; a calm round begun just before
        // runs 5 s past its cadence; the last round's 5 s, the last look's 10 s.
        assert_eq!(window.silent, Some(s(52)));
        // With witnesses each suspect round is half checks, half witnesses; the calm
        // round's witnesses are asked within 2.5 s too.
        let with = shipped(Some(s(20))).window(Some(s(5)), Some(s(15)));
        assert_eq!((with.dead, with.silent), (s(21), Some(ms(54_500))));
        // Without a known heartbeat, silence is not noticed between rounds.
        assert_eq!(shipped(None).window(None, None).silent, None);
    }

    #[test]
    fn suspect_interval_equal_to_interval_is_todays_cadence() {
        let today = CadenceSettings {
            suspect_interval: s(60),
            ..shipped(None)
        };
        assert_eq!(today.watch_every(), None);
        for pace in [Pace::Calm, Pace::Suspect] {
            assert_eq!(today.checks_within(pace), s(10));
        }
        let today_with = CadenceSettings {
            witness_timeout: Some(s(20)),
            ..today
        };
        assert_eq!(today_with.witnesses_within(false), None);
        let window = today.window(Some(s(5)), Some(s(15)));
        assert_eq!(window.dead, s(300));
        // 5 x 60 s, the fifth round's 10 s, the last look's 10 s.
        assert_eq!(window.silent, Some(s(320)));
        let mut cadence = Cadence::new(today, s(0));
        assert_eq!(
            cadence.doubt("a failed round", s(1), Timestamp::UNIX_EPOCH),
            None
        );
        assert_eq!(cadence.pace(), Pace::Calm);
    }

    #[test]
    fn a_suspect_round_fits_its_cadence() {
        assert_eq!(shipped(None).watch_every(), Some(s(1)));
        assert_eq!(shipped(None).checks_within(Pace::Suspect), s(5));
        assert_eq!(shipped(None).checks_within(Pace::Calm), s(10));
        let with = shipped(Some(s(20)));
        assert_eq!(with.checks_within(Pace::Suspect), ms(2500));
        assert_eq!(with.witnesses_within(false), Some(ms(2500)));
        // Witnesses that could not answer within the cadence get their own timeout.
        assert_eq!(with.witnesses_within(true), None);
        // Scaled down by ten: a look every 100 ms.
        let scaled = CadenceSettings {
            interval: s(6),
            suspect_interval: ms(500),
            timeout: s(1),
            failures_before_promotion: 5,
            witness_timeout: Some(s(2)),
        };
        assert_eq!(scaled.watch_every(), Some(ms(100)));
        assert_eq!(scaled.checks_within(Pace::Suspect), ms(250));
    }

    #[test]
    fn the_watch_raises_the_doubt_once_per_loss_and_again_only_after_hearing_the_primary() {
        let mut watch = ReplicaWatch::default();
        assert_eq!(watch.look(connected("0-1-5", 1), s(0)), None);
        assert_eq!(watch.look(connected("0-1-5", 2), s(4)), None);
        let lost = watch
            .look(Glance::Lost("Connecting: error reconnecting".into()), s(5))
            .unwrap();
        assert!(
            lost.contains("IO thread lost the primary (Connecting"),
            "{lost}"
        );
        // Still lost: said once.
        assert_eq!(watch.look(Glance::Lost("Connecting".into()), s(6)), None);
        // Unreadable says nothing either way.
        assert_eq!(watch.look(Glance::Unreadable("refused".into()), s(7)), None);
        // Connected and hearing again: armed; then silent for more than two periods.
        assert_eq!(watch.look(connected("0-1-5", 3), s(8)), None);
        assert_eq!(watch.look(connected("0-1-5", 3), s(18)), None);
        let silent = watch.look(connected("0-1-5", 3), s(19)).unwrap();
        assert!(
            silent.contains("nothing arrived from the primary for 11 s"),
            "{silent}"
        );
        assert_eq!(watch.look(connected("0-1-5", 3), s(30)), None);
        // News re-arms it.
        assert_eq!(watch.look(connected("0-1-6", 3), s(31)), None);
        assert!(watch.look(Glance::Lost("No".into()), s(32)).is_some());
    }

    #[test]
    fn a_replica_that_never_heard_the_primary_raises_nothing() {
        let mut watch = ReplicaWatch::default();
        assert_eq!(watch.look(Glance::Lost("No".into()), s(0)), None);
        // Heartbeats off: silence is no evidence.
        let quiet = Glance::Connected {
            received: (GtidPosition::parse("0-1-5").unwrap(), 0),
            heartbeat_period: None,
        };
        assert_eq!(watch.look(quiet.clone(), s(1)), None);
        assert_eq!(watch.look(quiet, s(100)), None);
    }

    #[test]
    fn rounds_run_a_cadence_after_they_were_due_or_at_once_when_late() {
        let mut cadence = Cadence::new(shipped(None), s(0));
        assert_eq!(cadence.schedule(true).at, s(0));
        cadence.round_began();
        cadence.conclude(s(1));
        assert_eq!(cadence.schedule(true).at, s(60));
        assert_eq!(cadence.schedule(true).watch_every, Some(s(1)));
        // Concluding twice does not move it again.
        cadence.conclude(s(2));
        assert_eq!(cadence.schedule(true).at, s(60));
        cadence.round_began();
        cadence.doubt("tcp refused", s(70), Timestamp::UNIX_EPOCH);
        cadence.conclude(s(70));
        let next = cadence.schedule(true);
        assert_eq!((next.at, next.watch_every), (s(70), None));
        assert_eq!(next.checks_within, s(5));
        cadence.round_began();
        cadence.conclude(s(71));
        assert_eq!(cadence.schedule(true).at, s(75));
        assert_eq!(
            cadence.calm("the primary answers", s(76)),
            Some(PaceChange::Calm("the primary answers"))
        );
    }

    #[test]
    fn a_glance_between_rounds_makes_the_next_round_due_at_once() {
        let mut cadence = Cadence::new(shipped(None), s(0));
        cadence.round_began();
        cadence.conclude(s(1));
        assert_eq!(
            cadence.glance(connected("0-1-5", 1), s(2), Timestamp::UNIX_EPOCH),
            None
        );
        let change = cadence.glance(
            Glance::Lost("Connecting".into()),
            s(3),
            Timestamp::UNIX_EPOCH,
        );
        assert!(matches!(change, Some(PaceChange::Suspect(_))), "{change:?}");
        let next = cadence.schedule(true);
        assert_eq!((next.at, next.watch_every), (s(3), None));
        let shown = cadence.shown(None);
        assert_eq!(shown.pace, Pace::Suspect);
        assert_eq!(
            shown.line(0, 5),
            "suspect: re-probing every 5 s, 0 of 5 failed"
        );
        assert_eq!(
            shown.window_line(),
            "a dead primary within 21 s, a silent one within 52 s"
        );
    }

    #[test]
    fn a_replica_that_cannot_be_read_is_not_watched_until_a_round_reads_it() {
        let mut cadence = Cadence::new(shipped(None), s(0));
        cadence.round_began();
        cadence.conclude(s(1));
        let change = cadence.glance(
            Glance::Unreadable("access denied".into()),
            s(2),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            change,
            Some(PaceChange::WatchPaused("access denied".into()))
        );
        assert_eq!(cadence.pace(), Pace::Calm);
        assert_eq!(cadence.schedule(true).watch_every, None);
        // A round that cannot read it either keeps it paused; one that can resumes it.
        cadence.round_read(Glance::Unreadable("access denied".into()), s(60));
        assert_eq!(cadence.schedule(true).watch_every, None);
        cadence.round_read(connected("0-1-5", 1), s(120));
        assert_eq!(cadence.schedule(true).watch_every, Some(s(1)));
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(short(s(5)), "5 s");
        assert_eq!(short(ms(500)), "500 ms");
        assert_eq!(short(ms(1500)), "1.5 s");
    }
}
