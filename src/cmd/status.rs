//! `status [--json]`: what the daemon and the journal say, read from `state_dir`, and
//! whether the daemon still runs.

use std::process::ExitCode;

use jiff::Timestamp;

use crate::config::Config;
use crate::store::StateDir;

pub fn run(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = StateDir::new(config.state_dir());
    let report = crate::status::gather(&store, &config.probe, Timestamp::now())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("node: {}\n{}", config.node.name, report.render());
    }
    Ok(ExitCode::SUCCESS)
}
