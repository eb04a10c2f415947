//! `reset --yes`: after a failback, move the promotion journal aside so the daemon
//! guards the primary again. Refused while the daemon runs (it holds the daemon lock)
//! or a promotion runs (the promotion lock).

use std::process::ExitCode;

use jiff::Timestamp;

use crate::config::Config;
use crate::error::UsageError;
use crate::store::StateDir;

pub fn run(config: &Config, yes: bool) -> anyhow::Result<ExitCode> {
    if !yes {
        return Err(UsageError(
            "reset clears the promotion journal, so a later failure of the primary promotes this standby again; run it after the failback (see the README) with --yes".to_string(),
        )
        .into());
    }
    let store = StateDir::new(config.state_dir());
    let holder = format!("pid {} (reset)", std::process::id());
    let _daemon = store.lock_daemon(&holder)?;
    let _promotion = store.lock_promotion(&holder)?;
    let what = match store.load_journal() {
        Ok(None) => {
            println!("nothing to reset: no promotion in the journal");
            return Ok(ExitCode::SUCCESS);
        }
        Ok(Some(journal)) => format!(
            "the promotion started at {} ({} trigger, {})",
            journal.started_at,
            journal.record.trigger.as_str(),
            crate::status::derive_state(Some(&journal), None, None)
        ),
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
