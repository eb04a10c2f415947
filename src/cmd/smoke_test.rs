//! `smoke-test [--json] [--no-notify]`: the standby's readiness checks, as a table or
//! one JSON object, and a summary to Telegram. Exit 1 when a check fails (or the
//! summary cannot be delivered); skipped checks do not fail.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use crate::alert::{Alert, DELIVERY_BUDGET};
use crate::config::Config;
use crate::edges::Edges;
use crate::shutdown::Shutdown;
use crate::smoke;

/// How long the summary may take to reach Telegram, its retries included.
const SUMMARY_DEADLINE: Duration = Duration::from_secs(DELIVERY_BUDGET.as_secs() + 5);

pub async fn run(config: &Config, json: bool, notify: bool) -> anyhow::Result<ExitCode> {
    // Its alerter waits for nothing but the summary, within its own deadline.
    let edges = Edges::daemon(config, Shutdown::never())?;
    if let Some(peer) = primary_of_a_pair(&edges).await {
        // Both hosts of a pair run the monthly timer: the primary has nothing to check.
        let why = format!(
            "{} is the primary of its pair (its database is writable and not replicating): the smoke test checks a standby's readiness to take over; it runs on the standby ({peer}). Nothing was checked.",
            config.node.name
        );
        if json {
            let shown = serde_json::json!({
                "node": config.node.name,
                "role": "primary",
                "ok": true,
                "skipped": why,
                "checks": [],
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
        } else {
            println!("{why}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = smoke::run(&edges).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if notify {
        edges
            .alerter
            .send_and_confirm(
                &Alert::SmokeReport {
                    summary: report.summary(),
                },
                SUMMARY_DEADLINE,
            )
            .await
            .map_err(|e| anyhow!("the smoke test's summary was not delivered: {e}"))?;
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// With `[peer]`, the peer's name when this host's own database says it is the primary.
/// A database that does not answer is no primary: the checks then say what is wrong.
async fn primary_of_a_pair(edges: &Edges) -> Option<String> {
    let config = &edges.config;
    let peer = config.peer.as_ref()?;
    let state = tokio::time::timeout(config.probe.timeout, edges.own.state())
        .await
        .ok()?
        .ok()?;
    (crate::role::derive(state.read_only, state.replica.as_ref(), Some(peer.source()))
        == crate::role::Role::Primary)
        .then(|| peer.name.clone())
}
