//! How this host takes the primary's place: the parts a promotion ([`crate::promote`])
//! and a switchover ([`crate::switchover`]) share. How a promotion's journal is opened
//! (new after `pre_promote`, retried, resumed, or refused), the steps after the fence
//! (`stop_replica`, `make_writable`'s own half, `start_apps`, `update_dns`, `notify`),
//! every step's deadline, their dry-run previews, and the hooks (`on_failure`,
//! `post_promote`, with the `FAILOVER_*` environment).

use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::future::join_all;
use jiff::Timestamp;
use tokio::time::Instant;

use crate::alert::Alert;
use crate::config::{Config, DnsRecordConfig};
use crate::edges::Edges;
use crate::journal::{DnsChange, Journal, Outcome, PrimarySeen, StepName, Trigger};
use crate::procedure::{Preview, RunError};
use crate::retry::{Backoff, Failure, retry_until};
use crate::shell;
use crate::systemd;

/// `make_writable` is two statements; it gets this long.
const MAKE_WRITABLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for `stop_replica` beyond `apply_timeout`: connecting, stopping, resetting.
const STOP_REPLICA_SLACK: Duration = Duration::from_secs(30);
/// How long `notify` waits for the closing alert: room for the alert queued before it
/// (the opening one) and its own delivery budget.
pub const NOTIFY_TIMEOUT: Duration =
    Duration::from_secs(2 * crate::alert::DELIVERY_BUDGET.as_secs() + 5);

/// Who holds the promotion lock, for a loser's refusal.
pub fn holder(trigger: Trigger) -> String {
    format!(
        "pid {} ({} promotion) since {}",
        std::process::id(),
        match trigger {
            Trigger::Automatic => "the daemon's automatic",
            Trigger::Manual => "a --promote-now",
            Trigger::Switchover => "a switchover",
        },
        Timestamp::now()
    )
}

/// The journal a promotion (or a switchover) runs: a new one (after `pre_promote`, with
/// the opening alert), a halted one an operator retries, or an interrupted one resumed;
/// or a refusal: one already finished, or a halted one the daemon (`by_daemon`) must
/// not retry.
pub async fn open(
    edges: &Edges,
    trigger: Trigger,
    reason: &str,
    primary_last_seen: Option<PrimarySeen>,
    last: Option<Journal>,
    by_daemon: bool,
) -> Result<Journal, RunError> {
    let node = &edges.config.node.name;
    match last {
        None => {
            let mut journal = Journal::new(node, trigger, reason, Timestamp::now());
            journal.record.primary_last_seen = primary_last_seen;
            pre_promote(edges, &journal).await?;
            edges.alerter.send(&Alert::Promoting {
                trigger,
                reason: reason.to_string(),
            });
            Ok(journal)
        }
        Some(journal) if journal.outcome == Outcome::Done => Err(RunError::refused(format!(
            "{node} was already promoted at {} ({:?} trigger); after a failback, clear it with the procedure in the README",
            journal.finished_at.unwrap_or(journal.started_at),
            journal.record.trigger
        ))),
        Some(mut journal) if journal.outcome == Outcome::Halted => {
            if by_daemon {
                return Err(RunError::refused(
                    "a halted promotion is in the journal; an operator retries it with --promote-now".to_string(),
                ));
            }
            let failed = journal
                .failed_step()
                .map_or(StepName::StopReplica, |s| s.name);
            tracing::warn!("retrying the halted promotion from step {failed}");
            edges.alerter.send(&Alert::RetryingHalted { step: failed });
            journal.retry_halted();
            Ok(journal)
        }
        Some(journal) => {
            match journal.next_step() {
                Some(step) => {
                    tracing::warn!("resuming the interrupted promotion at step {step}");
                    edges.alerter.send(&Alert::Resuming { step });
                }
                None => tracing::warn!("resuming the interrupted promotion at its end"),
            }
            Ok(journal)
        }
    }
}

/// How long `rejoin_peer` waits for the old primary's replication to run.
pub const REJOIN_CONFIRM: Duration = Duration::from_secs(30);
/// Time for a switchover's step beyond its own wait: connecting, a few statements.
const STEP_SLACK: Duration = Duration::from_secs(10);

/// How long each step of a promotion's (or a switchover's) journal may take.
pub fn deadline(config: &Config, step: StepName) -> Duration {
    let peer = |wait: fn(&crate::config::PeerConfig) -> Duration| {
        config.peer.as_ref().map_or(Duration::ZERO, wait)
    };
    match step {
        StepName::StopReplica => config.replica.apply_timeout + STOP_REPLICA_SLACK,
        // Fencing first: the database (connect, then its own timeout), the command.
        StepName::MakeWritable => {
            MAKE_WRITABLE_TIMEOUT + config.probe.timeout + 2 * config.promotion.fence_timeout
        }
        StepName::StartApps => config.apps.start_timeout * (config.apps.units.len().max(1) as u32),
        StepName::UpdateDns => config.dns.update_timeout,
        StepName::Notify => NOTIFY_TIMEOUT,
        // Connecting, then the drain.
        StepName::FencePrimary => {
            config.probe.timeout + peer(|p| p.write_drain_timeout) + STEP_SLACK
        }
        StepName::CatchUp => config.probe.timeout + peer(|p| p.switchover_timeout) + STEP_SLACK,
        StepName::RejoinPeer => 2 * config.probe.timeout + REJOIN_CONFIRM + STEP_SLACK,
    }
}

/// The longest a whole promotion may take: every step's deadline (a switchover's,
/// which has the most) and every hook's (`pre_promote`, then `on_failure` or
/// `post_promote`). systemd's watchdog is stretched by this much while one runs.
pub fn longest(config: &Config) -> Duration {
    StepName::SWITCHOVER
        .iter()
        .map(|step| deadline(config, *step))
        .sum::<Duration>()
        + 2 * config.promotion.hook_timeout
}

/// Runs one of the steps a promotion and a switchover share (all but `make_writable`
/// and a switchover's own).
pub async fn run_shared(
    edges: &Edges,
    step: StepName,
    journal: &mut Journal,
) -> anyhow::Result<String> {
    match step {
        StepName::StopReplica => {
            let r = &edges.config.replica;
            let (positions, detail) = edges
                .own
                .stop_after_applying(r.apply_timeout, r.reset_replica)
                .await?;
            journal.record.gtid = Some(positions);
            Ok(detail)
        }
        StepName::MakeWritable => edges.own.make_writable().await,
        StepName::StartApps => start_apps(&edges.config).await,
        StepName::UpdateDns => point_dns_here(edges, journal).await,
        StepName::Notify => notify(edges, journal).await,
        StepName::FencePrimary | StepName::CatchUp | StepName::RejoinPeer => Err(anyhow!(
            "step {step} belongs to a switchover, not to a {} promotion",
            journal.record.trigger.as_str()
        )),
    }
}

/// The closing alert, confirmed delivered within [`NOTIFY_TIMEOUT`].
async fn notify(edges: &Edges, journal: &Journal) -> anyhow::Result<String> {
    let alert = Alert::Promoted(Box::new(journal.clone()));
    match edges.alerter.send_and_confirm(&alert, NOTIFY_TIMEOUT).await {
        Ok(()) => Ok(match &journal.record.switchover {
            // `status` shows the drill with the step.
            Some(drill) => format!("closing alert delivered; {}", drill.summary()),
            None => "closing alert delivered".to_string(),
        }),
        // Kept whole in the journal: the team may have to read it there.
        Err(e) => Err(anyhow!(
            "closing alert {e}; it said:\n{}",
            edges.alerter.render(&alert)
        )),
    }
}

/// The promotion halted at `step`: say so, alert, run `on_failure`.
pub async fn halted(edges: &Edges, journal: &Journal, step: StepName, error: &str) {
    edges.alerter.send(&Alert::halted(journal, step, error));
    hook(
        edges,
        "on_failure",
        &edges.config.promotion.on_failure,
        journal,
        Some(step),
    )
    .await;
}

/// The promotion serves: run `post_promote`.
pub async fn finished(edges: &Edges, journal: &Journal) {
    hook(
        edges,
        "post_promote",
        &edges.config.promotion.post_promote,
        journal,
        None,
    )
    .await;
}

/// The `pre_promote` hook, before a new promotion's first step: a non-zero exit (or a
/// hook that cannot run) stops the promotion before anything is changed.
async fn pre_promote(edges: &Edges, journal: &Journal) -> Result<(), RunError> {
    let Some(command) = &edges.config.promotion.pre_promote else {
        return Ok(());
    };
    let env = command_env(journal, None);
    let timeout = edges.config.promotion.hook_timeout;
    let problem = match shell::run("pre_promote", command, &env, timeout, &edges.scrubber).await {
        Ok(done) if done.success() => return Ok(()),
        Ok(done) => format!("{}: {}", done.describe(), done.tail),
        Err(e) => format!("{e:#}"),
    };
    Err(RunError::Held(format!(
        "the pre_promote hook stopped the promotion before its first step: {problem}"
    )))
}

/// Runs `post_promote` or `on_failure`; a failure is logged and alerted, nothing more.
async fn hook(
    edges: &Edges,
    name: &'static str,
    command: &Option<String>,
    journal: &Journal,
    step: Option<StepName>,
) {
    let Some(command) = command else { return };
    let env = command_env(journal, step);
    let timeout = edges.config.promotion.hook_timeout;
    let problem = match shell::run(name, command, &env, timeout, &edges.scrubber).await {
        Ok(done) if done.success() => return,
        Ok(done) => format!("{}: {}", done.describe(), done.tail),
        Err(e) => format!("{e:#}"),
    };
    tracing::error!("the {name} hook failed: {problem}");
    edges.alerter.send(&Alert::HookFailed {
        hook: name,
        problem,
    });
}

async fn start_apps(config: &Config) -> anyhow::Result<String> {
    let units = &config.apps.units;
    for unit in units {
        systemd::start_unit(unit, config.apps.start_timeout)
            .await
            .with_context(|| format!("starting {unit}"))?;
        tracing::info!("{unit} is active");
    }
    Ok(if units.is_empty() {
        "no units configured".to_string()
    } else {
        format!("active: {}", units.join(", "))
    })
}

/// Every record at once; each is found, changed and read back with retries inside the
/// step's deadline.
async fn point_dns_here(edges: &Edges, journal: &mut Journal) -> anyhow::Result<String> {
    let deadline = Instant::now() + edges.config.dns.update_timeout;
    let records = &edges.config.dns.records;
    let results = join_all(
        records
            .iter()
            .map(|record| point_record(edges, record, deadline)),
    )
    .await;
    let mut errors = Vec::new();
    let mut done = Vec::new();
    let changes = &mut journal.record.dns_changes;
    for (record, result) in records.iter().zip(results) {
        match result {
            Ok(mut change) => {
                // A resumed step sees the record already moved; keep what it was before.
                if let Some(earlier) = changes.iter().find(|c| c.record_id == change.record_id) {
                    change.previous_content = earlier.previous_content.clone();
                }
                done.push(format!(
                    "{} {} -> {} (was {})",
                    change.name, change.record_type, change.content, change.previous_content
                ));
                changes.retain(|c| c.record_id != change.record_id);
                changes.push(change);
            }
            Err(e) => errors.push(format!("{} {}: {e:#}", record.name, record.record_type)),
        }
    }
    if errors.is_empty() {
        Ok(done.join("; "))
    } else {
        Err(anyhow!("{}", errors.join("; ")))
    }
}

async fn point_record(
    edges: &Edges,
    record: &DnsRecordConfig,
    deadline: Instant,
) -> anyhow::Result<DnsChange> {
    let cf = &edges.cloudflare;
    let (zone, name, kind, target) = (
        &record.zone_id,
        &record.name,
        &record.record_type,
        &record.content,
    );
    let found = retry_until(
        &format!("finding {name} {kind}"),
        deadline,
        Backoff::API,
        || cf.find_record(zone, name, kind),
    )
    .await?;
    if !record.points_at(&found.content) {
        retry_until(
            &format!("updating {name} {kind}"),
            deadline,
            Backoff::API,
            || cf.set_content(zone, &found.id, target),
        )
        .await?;
    }
    let read_back = retry_until(
        &format!("reading back {name} {kind}"),
        deadline,
        Backoff::API,
        || cf.get_record(zone, &found.id),
    )
    .await?;
    if !record.points_at(&read_back.content) {
        anyhow::bail!("read back {} instead of {target}", read_back.content);
    }
    Ok(DnsChange {
        name: name.clone(),
        record_type: kind.clone(),
        zone_id: zone.clone(),
        record_id: found.id,
        previous_content: found.content,
        content: read_back.content,
    })
}

/// What operator commands are told, as `FAILOVER_*` environment variables.
pub fn command_env(journal: &Journal, step: Option<StepName>) -> Vec<(&'static str, String)> {
    let record = &journal.record;
    let gtid = record.gtid.clone().unwrap_or_default();
    vec![
        ("FAILOVER_NODE", journal.node.clone()),
        ("FAILOVER_TRIGGER", record.trigger.as_str().to_string()),
        ("FAILOVER_REASON", record.reason.clone()),
        (
            "FAILOVER_STEP",
            step.map_or(String::new(), |s| s.as_str().to_string()),
        ),
        ("FAILOVER_GTID_RECEIVED", gtid.received.canonical()),
        ("FAILOVER_GTID_APPLIED", gtid.applied.canonical()),
        (
            "FAILOVER_PRIMARY_LAST_SEEN_GTID",
            record
                .primary_last_seen
                .as_ref()
                .map_or(String::new(), |p| p.gtid.canonical()),
        ),
    ]
}

/// The dry run of a step a promotion and a switchover share (`make_writable` aside).
pub async fn preview(edges: &Edges, step: StepName) -> Preview {
    let config = &edges.config;
    match step {
        StepName::StopReplica => preview_stop_replica(edges).await,
        StepName::MakeWritable => preview_make_writable(edges, false).await,
        StepName::StartApps => preview_start_apps(config).await,
        StepName::UpdateDns => preview_update_dns(edges).await,
        StepName::Notify => Preview::new(match &config.telegram {
            Some(t) => format!(
                "the closing alert to Telegram chat {} via {}",
                t.chat_id, t.api_url
            ),
            None => "the closing alert to the log (no [telegram] configured)".to_string(),
        }),
        StepName::FencePrimary | StepName::CatchUp | StepName::RejoinPeer => {
            Preview::new("a switchover's step")
        }
    }
}

async fn preview_stop_replica(edges: &Edges) -> Preview {
    let r = &edges.config.replica;
    let preview = Preview::new(format!(
        "on {} (replication connection {:?}) stop the IO thread, wait up to {} for everything received to be applied (MASTER_GTID_WAIT), STOP SLAVE{}",
        edges.own.describe(),
        r.connection_name,
        humantime::format_duration(r.apply_timeout),
        if r.reset_replica {
            ", RESET SLAVE ALL"
        } else {
            ""
        }
    ));
    preview.now(match edges.own.replica_status().await {
        Ok(Some(status)) => match &status.sql_error {
            Some(error) => Err(error.to_string()),
            None => Ok(status.summary()),
        },
        Ok(None) => Err(format!(
            "no replication connection {:?} on the replica",
            r.connection_name
        )),
        Err(e) => Err(format!("{e:#}")),
    })
}

/// `fences`: whether this `make_writable` fences the old primary first (a promotion's
/// does; a switchover's primary is fenced by `fence_primary`).
pub async fn preview_make_writable(edges: &Edges, fences: bool) -> Preview {
    let fence = match (&edges.old_primary, fences) {
        (_, false) => "no fence_command: the primary is fenced already; ".to_string(),
        (Some(old), true) => format!("fence {} (read_only = ON, clients cut); ", old.describe()),
        (None, true) => String::new(),
    };
    let preview = Preview::new(format!(
        "{fence}SET GLOBAL read_only = OFF on {}:{}, then read it back",
        edges.config.replica.host, edges.config.replica.port
    ));
    preview.now(match edges.own.read_only().await {
        Ok(read_only) => Ok(format!(
            "read_only = {}",
            if read_only { "ON" } else { "OFF" }
        )),
        Err(e) => Err(format!("{e:#}")),
    })
}

async fn preview_start_apps(config: &Config) -> Preview {
    let units = &config.apps.units;
    let mut preview = Preview::new(format!(
        "systemctl start, in order: {} (each within {})",
        if units.is_empty() {
            "(no units)".to_string()
        } else {
            units.join(", ")
        },
        humantime::format_duration(config.apps.start_timeout)
    ));
    for unit in units {
        preview = preview.now(
            systemd::active_state(unit, Duration::from_secs(10))
                .await
                .map(|state| format!("{unit} is {state}"))
                .map_err(|e| format!("{unit}: {e:#}")),
        );
    }
    preview
}

async fn preview_update_dns(edges: &Edges) -> Preview {
    let mut preview = Preview::new(format!("via {}", edges.config.dns.api_base));
    for record in &edges.config.dns.records {
        preview = preview.target(format!(
            "{} {} in zone {} -> {}",
            record.name, record.record_type, record.zone_id, record.content
        ));
        let found = edges
            .cloudflare
            .find_record(&record.zone_id, &record.name, &record.record_type)
            .await;
        preview = preview.now(match found {
            Ok(found) => Ok(format!(
                "{} {}: {} (id {}, ttl {}, proxied {})",
                record.name, record.record_type, found.content, found.id, found.ttl, found.proxied
            )),
            Err(Failure::Fatal(e) | Failure::Transient { error: e, .. }) => Err(format!("{e:#}")),
        });
    }
    preview
}
