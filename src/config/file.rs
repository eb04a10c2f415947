//! The steps around validation that touch the file: reading it (through
//! [`careful_read`], like every file read for the operator), TOML into the raw
//! structs (errors located by key path and line/column), and the warning for a file
//! that holds secrets (the config with inline secrets, a secret file) and is readable
//! by every user. Kept apart from the converters so
//! parsing is tested on strings.

use std::path::Path;

use super::error::ConfigError;
use crate::careful_read::{self, Problem};
use crate::secret::Secret;

/// TOML -> raw structs, with the failing key path and line/column in the error.
pub(super) fn parse_raw<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &Path,
) -> Result<T, ConfigError> {
    let located = |e: &toml::de::Error, key: Option<String>| ConfigError {
        file: file.to_path_buf(),
        key,
        line_col: e.span().map(|span| line_col(text, span.start)),
        problem: e.message().trim().to_string(),
    };
    let de = toml::de::Deserializer::parse(text).map_err(|e| located(&e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let key = (path != ".").then_some(path);
        located(e.inner(), key)
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The config file's text, read the careful way ([`careful_read`]): a FIFO, a device or
/// a file over 1 MiB is refused at once, naming the file.
pub(super) fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    careful_read::read_to_string(path, careful_read::CONFIG).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        key: None,
        line_col: None,
        problem: match e.problem {
            Problem::Io(e) => format!("cannot read the config file: {e}"),
            refused => format!("the config file {refused}"),
        },
    })
}

/// A file that holds secrets inline should be readable by the service alone.
pub(super) fn world_readable_warning(path: &Path, secrets: &[&Secret]) -> Option<String> {
    use crate::secret::SecretSource::Inline;
    (secrets.iter().any(|s| *s.source() == Inline) && is_world_readable(path))
        .then(|| readable_by_everyone(path, "secrets"))
}

/// A secret file (`key`, a `*_file`) likewise: it holds nothing but the secret.
pub(super) fn world_readable_secret_file(path: &Path, key: &str) -> Option<String> {
    is_world_readable(path).then(|| readable_by_everyone(path, &format!("a secret ({key})")))
}

fn readable_by_everyone(path: &Path, holds: &str) -> String {
    format!(
        "{}: the file holds {holds} and is readable by every user; chmod 600 it",
        path.display()
    )
}

fn is_world_readable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}
