//! Secrets (passwords, API tokens) behind a type that cannot leak by accident.
//!
//! `Debug` and `Display` print `[redacted]`, and `Serialize` writes the same, so a secret
//! that ends up in a log line, `check-config` output, an alert or `status` shows nothing.
//! The only way to the value is [`Secret::expose`], which is called at the edges that send
//! it (MariaDB login, Cloudflare's `Authorization` header, the Telegram bot URL).

use serde::{Serialize, Serializer};

/// A secret value, with where it came from (for `check-config`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    source: SecretSource,
}

/// Where a secret was read from: shown by `check-config` instead of the value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// Written inline in the config file (draws a warning).
    Inline,
    /// Read from this file, trimmed.
    File(std::path::PathBuf),
}

impl Secret {
    /// A secret given inline in the config.
    pub fn inline(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            source: SecretSource::Inline,
        }
    }

    /// A secret read from `path` (already trimmed).
    pub fn from_file(value: impl Into<String>, path: impl Into<std::path::PathBuf>) -> Self {
        Self {
            value: value.into(),
            source: SecretSource::File(path.into()),
        }
    }

    /// The value itself. Call only where it is sent to the service it belongs to.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the secret came from.
    pub fn source(&self) -> &SecretSource {
        &self.source
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.source {
            SecretSource::Inline => serializer.serialize_str("[redacted] (inline)"),
            SecretSource::File(path) => {
                serializer.serialize_str(&format!("[redacted] (from {})", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_never_show_the_value() {
        let secret = Secret::from_file("hunter2", "/etc/pw");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        let json = serde_json::to_string(&secret).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains("/etc/pw"), "{json}");
        assert_eq!(secret.expose(), "hunter2");
    }
}
