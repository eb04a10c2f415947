//! `check-config [--witness]`: the effective config (defaults filled in, secrets
//! redacted) as TOML; with `--witness`, of a witness host's config.

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::config::Config;
use crate::config::witness::WitnessConfig;

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    show(&config.path, &config.warnings, config)
}

/// `check-config --witness`: the witness's config, validated as `witness` would at start.
pub fn witness(path: &Path) -> anyhow::Result<ExitCode> {
    let config = WitnessConfig::load(path)?;
    show(&config.path, &config.warnings, &config)
}

fn show(path: &Path, warnings: &[String], config: &impl Serialize) -> anyhow::Result<ExitCode> {
    println!(
        "# {} is valid. Effective configuration (secrets redacted):",
        path.display()
    );
    for warning in warnings {
        println!("# warning: {warning}");
    }
    print!("{}", toml::to_string_pretty(config)?);
    Ok(ExitCode::SUCCESS)
}
