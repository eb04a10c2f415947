//! `smoke-test [--json] [--no-notify]`: the standby's readiness checks, as a table or
//! one JSON object, and a summary to Telegram. Exit 1 when a check fails (or the
//! summary cannot be delivered); skipped checks do not fail.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;

use crate::alert::{Alert, Alerter, DELIVERY_BUDGET};
use crate::config::Config;
use crate::smoke;

/// How long the summary may take to reach Telegram, its retries included.
const SUMMARY_DEADLINE: Duration = Duration::from_secs(DELIVERY_BUDGET.as_secs() + 5);

pub async fn run(config: &Config, json: bool, notify: bool) -> anyhow::Result<ExitCode> {
    let report = smoke::run(config).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if notify {
        let scrubber = crate::secret::Scrubber::new(config.secrets());
        let alerter = Alerter::start(&config.node.name, config, scrubber)?;
        alerter
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
