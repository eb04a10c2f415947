//! Writes the man pages and shell completions generated from the CLI
//! (`failover_watchdog::assets`) into a directory, `target/assets` by default: run it
//! before `cargo deb`, whose `[package.metadata.deb]` assets name those files.
//!
//! `cargo run --example gen-assets [-- DIR]`

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/assets"));
    match failover_watchdog::assets::write_all(&out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write the assets to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
