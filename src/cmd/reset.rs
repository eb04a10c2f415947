//! `reset --yes`: after a failback, move the promotion journal aside so the daemon
//! guards the primary again. Refused while the daemon runs (it holds the daemon lock)
//! or a promotion runs (the promotion lock), and while a switchover in the journal has
//! its fence on: the peer it fenced is read-only and this host is not writable yet, so
//! archiving the journal would leave both databases read-only with nothing to finish
//! or undo it.

use std::process::ExitCode;

use jiff::Timestamp;

use crate::config::Config;
use crate::edges::Edges;
use crate::error::{Refused, UsageError};
use crate::journal::{Journal, StepName, StepStatus, Trigger};
use crate::shutdown::Shutdown;

pub async fn run(config: &Config, yes: bool) -> anyhow::Result<ExitCode> {
    if !yes {
        return Err(UsageError(
            "reset clears the promotion journal, so a later failure of the primary promotes this standby again; run it after the failback (see the README) with --yes".to_string(),
        )
        .into());
    }
    let edges = Edges::command(config, Shutdown::never())?;
    let store = &edges.store;
    let holder = format!("pid {} (reset)", std::process::id());
    let _daemon = store.lock_daemon(&holder)?;
    let _promotion = store.lock_promotion(&holder)?;
    let what = match store.load_journal() {
        Ok(None) => {
            println!("nothing to reset: no promotion in the journal");
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Some(journal)) => {
            refuse_while_fenced(&edges, &journal).await?;
            format!(
                "the promotion started at {} ({} trigger, {})",
                journal.started_at,
                journal.record.trigger.as_str(),
                crate::status::derive_state(Some(&journal), None, None)
            )
        }
        // Asked for explicitly: an unreadable journal is moved aside too.
        Err(e) => format!("an unreadable journal ({e:#})"),
    };
    let archived = store.archive_journal(Timestamp::now())?;
    println!(
        "cleared {what}; the journal is kept as {}. Start the daemon: it watches the primary again.",
        archived.map_or("-".to_string(), |p| p.display().to_string())
    );
    Ok(ExitCode::SUCCESS)
}

/// A switchover whose fence may be on: `fence_primary` begun, `make_writable` not done.
fn fence_may_be_on(journal: &Journal) -> bool {
    let status = |step| journal.step(step).map(|s| s.status);
    journal.record.trigger == Trigger::Switchover
        && status(StepName::FencePrimary).is_some_and(|s| s != StepStatus::Pending)
        && status(StepName::MakeWritable) != Some(StepStatus::Done)
}

/// Refused while the peer a switchover in the journal fenced is read-only, or cannot be
/// read to tell, saying what to run.
async fn refuse_while_fenced(edges: &Edges, journal: &Journal) -> Result<(), Refused> {
    if !fence_may_be_on(journal) {
        return Ok(());
    }
    let finish = "`failover-watchdog switchover --yes` finishes the switchover (this host becomes the primary)";
    let Some(peer) = &edges.peer else {
        return Err(Refused(format!(
            "the switchover in the journal fenced its peer, and without a [peer] table whether that fence is still on cannot be read: archiving it could leave both databases read-only. {finish}, or make the old primary writable by hand (SET GLOBAL read_only = OFF) and run reset again"
        )));
    };
    match peer.read_only().await {
        Ok(false) => Ok(()),
        Ok(true) => Err(Refused(format!(
            "the switchover in the journal fenced {} (read_only = ON there now) and this host is not writable yet: archiving it would leave both databases read-only. {finish}; or give the old primary its writes back (SET GLOBAL read_only = OFF there), then run reset again",
            peer.describe()
        ))),
        Err(e) => Err(Refused(format!(
            "the switchover in the journal fenced {}, which cannot be read now ({e:#}), so whether its fence is still on cannot be told: archiving the journal could leave both databases read-only. If it is down for good, `failover-watchdog --promote-now --yes` finishes the switchover here; once it answers, {finish}, or run reset again",
            peer.describe()
        ))),
    }
}
