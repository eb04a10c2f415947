//! How `check-config` shows values that are not text: a duration as people write it.

use std::time::Duration;

/// A duration as people write it (`"1m 30s"`).
pub(super) fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}
