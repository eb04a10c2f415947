//! The man pages and shell completions, generated from the command line's definition
//! ([`crate::cli::Cli`]) so they cannot drift from it. Nothing here is written by hand:
//! `examples/gen-assets.rs` calls [`write_all`] before `cargo deb` packs the result
//! (`Cargo.toml`, `[package.metadata.deb]`).
//!
//! Layout under the output directory, which the package's assets name:
//! - `man/failover-watchdog.1`, and one `failover-watchdog-<subcommand>.1` per
//!   subcommand (clap_mangen's split, as git does);
//! - `completions/failover-watchdog.bash`, `completions/_failover-watchdog` (zsh),
//!   `completions/failover-watchdog.fish`.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The program's name, as the completions register it and the man pages are named.
const BIN_NAME: &str = "failover-watchdog";

/// The shells the package ships completions for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes the man pages to `out/man` and the completions to `out/completions`, creating
/// both; returns every file written.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = write_man_pages(&out.join("man"))?;
    written.extend(write_completions(&out.join("completions"))?);
    Ok(written)
}

/// Writes `failover-watchdog.1` and one page per subcommand into `dir`.
pub fn write_man_pages(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // clap's implicit `help` subcommand would get a page of its own, and one for each
    // `help <subcommand>`: noise next to `--help`, so the pages leave it out.
    let command = Cli::command().disable_help_subcommand(true);
    clap_mangen::generate_to(command, dir)?;
    let mut written = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "1") {
            written.push(path);
        }
    }
    written.sort();
    Ok(written)
}

/// Writes one completion script per shell in [`SHELLS`] into `dir`.
pub fn write_completions(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = Cli::command();
    SHELLS
        .iter()
        .map(|shell| clap_complete::generate_to(*shell, &mut command, BIN_NAME, dir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand's name, from the definition itself: a subcommand added to the
    /// CLI is checked without touching this test.
    fn subcommands() -> Vec<String> {
        Cli::command()
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| sub.get_name().to_string())
            .collect()
    }

    #[test]
    fn man_pages_cover_every_subcommand_and_top_level_option() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_man_pages(dir.path()).unwrap();
        let main_page = dir.path().join("failover-watchdog.1");
        assert!(written.contains(&main_page), "{written:?}");
        let text = std::fs::read_to_string(&main_page).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "not roff: {text}"
        );
        assert!(
            text.contains(env!("CARGO_PKG_VERSION")),
            "no version: {text}"
        );
        // roff escapes '-' as '\-'.
        for option in ["config", "promote", "dry", "log"] {
            assert!(text.contains(option), "option {option} missing: {text}");
        }
        let subcommands = subcommands();
        assert!(subcommands.len() >= 8, "{subcommands:?}");
        for sub in &subcommands {
            let roff_name = sub.replace('-', "\\-");
            assert!(
                text.contains(&roff_name),
                "subcommand {sub} missing from the main page"
            );
            let page = dir.path().join(format!("failover-watchdog-{sub}.1"));
            assert!(written.contains(&page), "no page for {sub}: {written:?}");
        }
    }

    #[test]
    fn completions_cover_every_subcommand_for_every_shell() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_completions(dir.path()).unwrap();
        let names: Vec<_> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "failover-watchdog.bash",
                "_failover-watchdog",
                "failover-watchdog.fish"
            ]
        );
        for path in &written {
            let text = std::fs::read_to_string(path).unwrap();
            for sub in subcommands() {
                assert!(text.contains(&sub), "{sub} missing from {}", path.display());
            }
            assert!(text.contains("--config"), "{}", path.display());
        }
    }

    #[test]
    fn write_all_splits_man_pages_from_completions() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(dir.path()).unwrap();
        assert!(dir.path().join("man/failover-watchdog.1").is_file());
        assert!(dir.path().join("completions/_failover-watchdog").is_file());
        assert_eq!(
            written.len(),
            1 + subcommands().len() + SHELLS.len(),
            "{written:?}"
        );
    }
}
