//! The error every config check ends in: the file, the key (or line and column) and the
//! problem, which the binary maps to exit code 78.

use std::path::PathBuf;

/// A configuration error: names the file, the key (or line and column) and the problem.
/// The binary maps it to exit code 78 (EX_CONFIG).
#[derive(Debug, thiserror::Error)]
#[error("{file}: {location}{problem}", file = file.display(), location = location_prefix(key, line_col))]
pub struct ConfigError {
    /// The config file (or secret file) at fault.
    pub file: PathBuf,
    /// The dotted key, such as `probe.checks[1].url`, when known.
    pub key: Option<String>,
    /// Line and column (1-based) in the file, when known.
    pub line_col: Option<(usize, usize)>,
    /// What is wrong.
    pub problem: String,
}

fn location_prefix(key: &Option<String>, line_col: &Option<(usize, usize)>) -> String {
    let mut out = String::new();
    if let Some((line, col)) = line_col {
        out.push_str(&format!("line {line}, column {col}: "));
    }
    if let Some(key) = key {
        out.push_str(&format!("{key}: "));
    }
    out
}
