//! `check-config`: the effective config (defaults filled in, secrets redacted) as TOML.

use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: &Config) -> anyhow::Result<ExitCode> {
    println!(
        "# {} is valid. Effective configuration (secrets redacted):",
        config.path.display()
    );
    for warning in &config.warnings {
        println!("# warning: {warning}");
    }
    print!("{}", toml::to_string_pretty(config)?);
    Ok(ExitCode::SUCCESS)
}
