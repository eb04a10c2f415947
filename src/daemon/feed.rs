//! What the daemon tells its metrics: [`crate::metrics`] is a sink of plain values, and
//! this is where the daemon's own types (the live state, the replica's status, a
//! promotion's result) become those values. The metric names and labels are the
//! sink's; what each value means (which outcome a promotion's result is, which states
//! exist) is decided here, beside the daemon that produces them.

use std::time::Duration;

use crate::alert::Alerter;
use crate::cadence::{CadenceShown, Pace};
use crate::journal::{Journal, Outcome, StepName, Trigger};
use crate::metrics::{
    CadenceSample, ChannelDeliveries, CheckSample, DaemonMetrics, ReplicationSample, SharedRegistry,
};
use crate::probe::RoundReport;
use crate::procedure::RunError;
use crate::replication::ReplicaStatus;
use crate::role::Role;
use crate::state::State;
use crate::status::LiveState;
use crate::witness::Said;

/// The daemon's metrics, fed from the daemon's values.
pub struct MetricsFeed(DaemonMetrics);

impl MetricsFeed {
    /// The daemon's registry, its values taken from `live` (what the decision core
    /// knows at start); alert deliveries are read from `alerter` at each scrape.
    pub fn new(alerter: Alerter, live: &LiveState) -> Self {
        let metrics = DaemonMetrics::new(move || {
            alerter
                .deliveries()
                .into_iter()
                .map(|c| ChannelDeliveries {
                    channel: c.channel,
                    sent: c.sent,
                    failed: c.failed,
                })
                .collect()
        });
        // The outcomes an automatic promotion usually ends in start at 0, so that a
        // rule's increase() sees the first one.
        metrics.promotions_from_zero(Trigger::Automatic.as_str(), &["promoted", "halted"]);
        let feed = MetricsFeed(metrics);
        feed.live(live);
        feed
    }

    /// What the server encodes.
    pub fn registry(&self) -> SharedRegistry {
        self.0.registry()
    }

    /// The decision core's view, each time the daemon saves it: the state, the count,
    /// the last round's checks and, when they were asked, the witnesses' answers.
    pub fn live(&self, live: &LiveState) {
        let metrics = &self.0;
        metrics.state(live.state.as_str(), &State::ALL.map(State::as_str));
        let roles = [Role::Primary, Role::Standby, Role::Unknown].map(Role::as_str);
        metrics.role(live.role.map(Role::as_str), &roles);
        metrics.failures(live.consecutive_failures, live.failures_before_promotion);
        if let Some(cadence) = &live.cadence {
            metrics.cadence(
                cadence_sample(cadence),
                &[Pace::Calm, Pace::Suspect].map(pace_name),
            );
        }
        let Some(round) = &live.last_probe else {
            return;
        };
        metrics.round(round.at, &check_samples(round));
        let answers = [Said::Down, Said::Up, Said::NoAnswer].map(said_name);
        for report in &round.witnesses {
            metrics.witness_said(&report.name, said_name(report.said), &answers, round.at);
        }
    }

    /// The replica's replication as just read; `None` when it could not be read (no
    /// such connection, an error, no answer in time).
    pub fn replication(&self, status: Option<&ReplicaStatus>) {
        self.0.replication(status.map(|status| ReplicationSample {
            lag_seconds: status.seconds_behind,
            io_running: status.io_running == "Yes",
            sql_running: status.sql_running == "Yes",
        }));
    }

    /// A promotion the daemon ran has ended (or was not started): counted by trigger
    /// and outcome; the journal's step durations replace the last promotion's.
    pub fn promotion_ended(&self, trigger: Trigger, result: &Result<Journal, RunError>) {
        let steps = result.as_ref().ok().map(step_durations);
        self.0
            .promotion(trigger.as_str(), outcome(result), steps.as_deref());
    }
}

/// The outcome label of a promotion's result.
fn outcome(result: &Result<Journal, RunError>) -> &'static str {
    match result {
        Ok(journal) => match journal.outcome {
            Outcome::Done => "promoted",
            Outcome::Halted => "halted",
            // Stopped between steps; the next start resumes it.
            Outcome::Running => "interrupted",
        },
        Err(RunError::Held(_)) => "held_by_pre_promote",
        Err(RunError::Journal { .. }) => "journal_failed",
        Err(RunError::Refused(_) | RunError::State(_)) => "refused",
        Err(RunError::Abandoned(_)) => "abandoned",
    }
}

/// How long each step of `journal` that ran took, in the trigger's order.
fn step_durations(journal: &Journal) -> Vec<(&'static str, Duration)> {
    StepName::for_trigger(journal.record.trigger)
        .iter()
        .filter_map(|&step| Some((step.as_str(), journal.step_duration(step)?)))
        .collect()
}

/// A round's checks of the primary, as the metrics take them.
fn check_samples(round: &RoundReport) -> Vec<CheckSample<'_>> {
    round
        .checks
        .iter()
        .map(|check| CheckSample {
            kind: &check.kind,
            target: &check.target,
            ok: check.ok,
            took: Duration::from_millis(check.duration_ms),
        })
        .collect()
}

/// The cadence in force, as the metrics take it.
fn cadence_sample(cadence: &CadenceShown) -> CadenceSample {
    let seconds = |s: f64| Duration::try_from_secs_f64(s).unwrap_or_default();
    let window = &cadence.detection_window;
    CadenceSample {
        pace: pace_name(cadence.pace),
        every: seconds(cadence.every_seconds),
        dead_within: seconds(window.dead_seconds),
        silent_within: window.silent_seconds.map(seconds),
    }
}

fn pace_name(pace: Pace) -> &'static str {
    match pace {
        Pace::Calm => "calm",
        Pace::Suspect => "suspect",
    }
}

fn said_name(said: Said) -> &'static str {
    match said {
        Said::Down => "down",
        Said::Up => "up",
        Said::NoAnswer => "no_answer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;
    use crate::metrics::{encode_openmetrics, to_text_format};
    use crate::probe::CheckReport;
    use crate::witness::WitnessReport;

    fn check(kind: &str, target: &str, ok: bool, duration_ms: u64) -> CheckReport {
        CheckReport {
            kind: kind.into(),
            target: target.into(),
            ok,
            detail: String::new(),
            duration_ms,
            gtid_binlog_pos: None,
            read_only: None,
        }
    }

    fn live(state: State, consecutive_failures: u32) -> LiveState {
        LiveState {
            state,
            consecutive_failures,
            failures_before_promotion: 5,
            last_probe: Some(RoundReport {
                at: "2026-11-23T21:00:00Z".parse().unwrap(),
                ok: false,
                checks: vec![
                    check("tcp", "198.51.100.10:3306", false, 1500),
                    check(
                        "http",
                        "https://probe:pw-secret@primary.example.com/health",
                        true,
                        20,
                    ),
                ],
                self_checks: Vec::new(),
                witnesses: Vec::new(),
            }),
            updated_at: "2026-11-23T21:00:02Z".parse().unwrap(),
            role: Some(Role::Standby),
            pid: 42,
            primary_last_seen: None,
            replication_seen: None,
            held: None,
            verdict: None,
            cadence: None,
        }
    }

    #[tokio::test]
    async fn the_cadence_in_force_and_its_detection_window_are_shown() {
        use crate::cadence::{Cadence, CadenceSettings};
        let settings = CadenceSettings {
            interval: Duration::from_secs(60),
            suspect_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            failures_before_promotion: 5,
            witness_timeout: None,
        };
        let mut cadence = Cadence::new(settings, Duration::ZERO);
        let mut state = live(State::Monitoring, 0);
        state.cadence = Some(cadence.shown(None));
        let metrics = MetricsFeed::new(log_only(), &state);
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_pace{pace="calm"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_round_interval_seconds"),
            Some(60.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_detection_window_seconds{fault="dead"}"#
            ),
            Some(21.0)
        );
        // The replica's heartbeat is not known yet: the silent window is not either.
        assert!(
            text.contains(r#"failover_watchdog_detection_window_seconds{fault="silent"} NaN"#),
            "{text}"
        );
        cadence.heard_period(Some(Duration::from_secs(5)));
        cadence.doubt(
            "a round failed",
            Duration::ZERO,
            jiff::Timestamp::UNIX_EPOCH,
        );
        state.cadence = Some(cadence.shown(Some(Duration::from_secs(15))));
        metrics.live(&state);
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_pace{pace="suspect"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"failover_watchdog_pace{pace="calm"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_round_interval_seconds"),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_detection_window_seconds{fault="silent"}"#
            ),
            Some(52.0)
        );
    }

    fn log_only() -> Alerter {
        Alerter::start(
            "db2",
            crate::alert::Channels::default(),
            crate::secret::Scrubber::none(),
        )
        .unwrap()
    }

    /// The value of the sample `name{labels}` (exactly as written) in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            Some(value.parse().unwrap())
        })
    }

    fn scrape(metrics: &MetricsFeed) -> String {
        to_text_format(&encode_openmetrics(&metrics.registry()))
    }

    #[tokio::test]
    async fn the_live_state_sets_the_state_the_count_and_the_checks() {
        let metrics = MetricsFeed::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_state{state="monitoring"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"failover_watchdog_state{state="suspect"}"#),
            Some(0.0)
        );

        metrics.live(&live(State::Suspect, 2));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, r#"failover_watchdog_role{role="standby"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"failover_watchdog_role{role="primary"}"#),
            Some(0.0)
        );
        for state in State::ALL {
            let series = format!("failover_watchdog_state{{state=\"{state}\"}}");
            let want = if state == State::Suspect { 1.0 } else { 0.0 };
            assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
        }
        assert_eq!(
            sample(&text, "failover_watchdog_consecutive_failures"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_failures_before_promotion"),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_up{type="tcp",target="198.51.100.10:3306"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_duration_seconds{type="tcp",target="198.51.100.10:3306"}"#
            ),
            Some(1.5)
        );
        // The endpoint asks for no token: a URL's password is not shown.
        assert!(!text.contains("pw-secret"), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_check_up{type="http",target="https://probe@primary.example.com/health"}"#
            ),
            Some(1.0)
        );
        let at: jiff::Timestamp = "2026-11-23T21:00:00Z".parse().unwrap();
        assert_eq!(
            sample(&text, "failover_watchdog_last_round_timestamp_seconds"),
            Some(at.as_second() as f64)
        );
        assert!(
            text.contains(&format!(
                "failover_watchdog_build_info{{version=\"{}\",commit=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                env!("FAILOVER_WATCHDOG_COMMIT")
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_witness_answer_stays_until_it_is_asked_again() {
        let metrics = MetricsFeed::new(log_only(), &live(State::Monitoring, 0));
        let mut asked = live(State::Suspect, 1);
        asked.last_probe.as_mut().unwrap().witnesses = vec![WitnessReport {
            name: "ams1".into(),
            said: Said::Down,
            detail: "tcp failed".into(),
            duration_ms: 12,
        }];
        metrics.live(&asked);
        // The next round asks nobody: what ams1 said last still shows.
        metrics.live(&live(State::Suspect, 2));
        let text = scrape(&metrics);
        for (said, want) in [("down", 1.0), ("up", 0.0), ("no_answer", 0.0)] {
            let series =
                format!("failover_watchdog_witness_said{{witness=\"ams1\",said=\"{said}\"}}");
            assert_eq!(sample(&text, &series), Some(want), "{series} in\n{text}");
        }
        assert!(
            sample(
                &text,
                r#"failover_watchdog_witness_last_asked_timestamp_seconds{witness="ams1"}"#
            )
            .is_some()
        );
    }

    #[tokio::test]
    async fn replication_shows_as_last_read_and_unknown_when_unreadable() {
        let metrics = MetricsFeed::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert!(
            sample(&text, "failover_watchdog_replication_lag_seconds")
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            sample(
                &text,
                "failover_watchdog_replication_last_read_timestamp_seconds"
            ),
            Some(0.0)
        );

        let status = ReplicaStatus {
            io_running: "Yes".into(),
            sql_running: "No".into(),
            seconds_behind: Some(7),
            ..ReplicaStatus::default()
        };
        metrics.replication(Some(&status));
        let text = scrape(&metrics);
        assert_eq!(
            sample(&text, "failover_watchdog_replication_lag_seconds"),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_io_running"),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_sql_running"),
            Some(0.0)
        );
        assert!(
            sample(
                &text,
                "failover_watchdog_replication_last_read_timestamp_seconds"
            )
            .unwrap()
                > 0.0
        );

        metrics.replication(None);
        let text = scrape(&metrics);
        assert!(
            sample(&text, "failover_watchdog_replication_lag_seconds")
                .unwrap()
                .is_nan()
        );
        assert_eq!(
            sample(&text, "failover_watchdog_replication_io_running"),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn promotions_count_by_trigger_and_outcome_with_each_steps_duration() {
        let metrics = MetricsFeed::new(log_only(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        let promoted =
            r#"failover_watchdog_promotions_total{trigger="automatic",outcome="promoted"}"#;
        assert_eq!(sample(&text, promoted), Some(0.0), "{text}");

        let start: jiff::Timestamp = "2026-11-23T21:00:00Z".parse().unwrap();
        let mut journal = Journal::new("db2", Trigger::Automatic, "test", start);
        for (i, step) in StepName::PROMOTION.into_iter().enumerate() {
            let began = start + jiff::SignedDuration::from_secs(i as i64 * 10);
            journal.begin(step, began);
            journal.finish(
                step,
                "done".into(),
                began + jiff::SignedDuration::from_millis(2500),
            );
        }
        metrics.promotion_ended(Trigger::Automatic, &Ok(journal));
        let refused = Err(RunError::refused("already promoted".to_string()));
        metrics.promotion_ended(Trigger::Automatic, &refused);
        let text = scrape(&metrics);
        assert_eq!(sample(&text, promoted), Some(1.0), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_promotions_total{trigger="automatic",outcome="refused"}"#
            ),
            Some(1.0)
        );
        for step in StepName::PROMOTION {
            let series =
                format!("failover_watchdog_promotion_step_duration_seconds{{step=\"{step}\"}}");
            assert_eq!(sample(&text, &series), Some(2.5), "{series} in\n{text}");
        }
    }

    /// Deliveries are the alerter's own counts, read at the scrape.
    #[tokio::test]
    async fn alert_deliveries_are_read_from_the_alerter_at_each_scrape() {
        let alerter = log_only();
        let metrics = MetricsFeed::new(alerter.clone(), &live(State::Monitoring, 0));
        let text = scrape(&metrics);
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_sent_total{channel="log"}"#
            ),
            Some(0.0)
        );
        alerter
            .send_and_confirm(&Alert::Rearmed, Duration::from_secs(5))
            .await
            .unwrap();
        let text = scrape(&metrics);
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_sent_total{channel="log"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"failover_watchdog_alerts_failed_total{channel="log"}"#
            ),
            Some(0.0)
        );
    }
}
