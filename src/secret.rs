//! Secrets (passwords, API tokens) behind a type that cannot leak by accident.
//!
//! `Debug` and `Display` print `[redacted]`, and `Serialize` writes the same, so a secret
//! that ends up in a log line, `check-config` output, an alert or `status` shows nothing.
//! The only way to the value is [`Secret::expose`], which is called at the edges that send
//! it (MariaDB login, Cloudflare's `Authorization` header, the Telegram bot URL).
//!
//! A service may still send a secret back: an API that echoes the bad header in its
//! error, a URL in a library's error text. [`Scrubber`] knows every configured secret and
//! cuts them out of such text. Each edge is given one when it is made and scrubs what
//! comes in from outside; what leaves us (the journal, alerts, hook output, the smoke
//! test's report) is scrubbed once more, as a last line.

use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::retry::Failure;

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

    /// The value as an `Authorization: Bearer` header, marked sensitive (kept out of
    /// reqwest's debug output). `None` when the value holds characters a header cannot
    /// carry (a line break, a control character): sending it would fail every time.
    pub fn bearer(&self) -> Option<reqwest::header::HeaderValue> {
        let mut value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.value)).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// Cuts every configured secret out of text that came from outside (a service's error,
/// a library's error text, a command's output). Cheap to clone; given to each edge when
/// it is made, so no text it lets in can be left unscrubbed by a forgotten call.
#[derive(Clone, Debug)]
pub struct Scrubber {
    /// Longest first, so a secret that contains another is cut out whole.
    secrets: Arc<[Secret]>,
}

impl Scrubber {
    /// Shorter secrets are not scrubbed: cutting two or three letters out of every text
    /// would mangle ordinary words (and point at the secret). The config still takes
    /// them; a secret that short is guessed faster than it leaks.
    pub const MIN_CHARS: usize = 4;

    /// A scrubber that knows no secret (for commands given none, and tests).
    pub fn none() -> Self {
        Self::new([])
    }

    /// A scrubber for these secrets (every secret of the config: `Config::secrets`).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        let mut secrets: Vec<Secret> = secrets
            .into_iter()
            .filter(|s| s.value.chars().count() >= Self::MIN_CHARS)
            .cloned()
            .collect();
        secrets.sort_by(|a, b| (b.value.len(), &a.value).cmp(&(a.value.len(), &b.value)));
        secrets.dedup_by(|a, b| a.value == b.value);
        Self {
            secrets: secrets.into(),
        }
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.secrets.iter() {
            if text.contains(&secret.value) {
                text = text.replace(&secret.value, "[redacted]");
            }
        }
        text
    }

    /// An error as text (its whole chain), scrubbed; the error itself when no secret is
    /// in it.
    pub fn error(&self, error: anyhow::Error) -> anyhow::Error {
        let text = format!("{error:#}");
        let scrubbed = self.scrub(&text);
        if scrubbed == text {
            error
        } else {
            anyhow::anyhow!(scrubbed)
        }
    }

    /// An edge's failed attempt, its error scrubbed and its class kept.
    pub fn failure(&self, failure: Failure) -> Failure {
        match failure {
            Failure::Transient { error, retry_after } => Failure::Transient {
                error: self.error(error),
                retry_after,
            },
            Failure::Fatal(error) => Failure::Fatal(self.error(error)),
        }
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

    #[test]
    fn the_scrubber_cuts_every_secret_of_four_characters_or_more() {
        let secrets = [
            Secret::inline("cf-token-123"),
            Secret::inline("cf-token-123-longer"),
            Secret::inline("pw"),
            Secret::from_file("hunter2", "/etc/pw"),
        ];
        let scrubber = Scrubber::new(&secrets);
        assert_eq!(
            scrubber.scrub("bad header Bearer cf-token-123-longer; pw hunter2 hunter2"),
            "bad header Bearer [redacted]; pw [redacted] [redacted]"
        );
        assert_eq!(scrubber.scrub("no secret here"), "no secret here");
        let error = anyhow::anyhow!("HTTP 400: Bearer cf-token-123").context("GET /zones");
        assert_eq!(
            format!("{:#}", scrubber.error(error)),
            "GET /zones: HTTP 400: Bearer [redacted]"
        );
        let Failure::Transient { error, retry_after } = scrubber.failure(Failure::Transient {
            error: anyhow::anyhow!("hunter2"),
            retry_after: Some(std::time::Duration::from_secs(3)),
        }) else {
            panic!("the class is kept");
        };
        assert_eq!(
            (error.to_string().as_str(), retry_after.map(|d| d.as_secs())),
            ("[redacted]", Some(3))
        );
        assert!(!format!("{scrubber:?}").contains("hunter2"));
    }

    #[test]
    fn a_value_with_a_line_break_is_no_bearer_header() {
        assert!(Secret::inline("abc\ndef").bearer().is_none());
        let header = Secret::inline("abc-def").bearer().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer abc-def");
    }
}
