//! The errors the binary turns into exit codes other than 1. Everything else is an
//! `anyhow::Error` with context, printed with `{:#}` and exit code 1.
//!
//! | error | exit code |
//! | --- | --- |
//! | [`crate::config::ConfigError`] | 78 (EX_CONFIG) |
//! | [`Refused`], [`crate::store::LockHeld`] | 3 |
//! | [`crate::promote::PromoteError`] | its own ([`crate::promote::PromoteError::exit_code`]) |
//! | [`UsageError`] | 2 |

/// The command was refused: a promotion already finished, or another one holds the lock.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// The command line is fine for clap but not usable as given (no `--yes` and no
/// terminal to ask on).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error that ended a command.
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<crate::config::ConfigError>() {
            return 78;
        }
        if cause.is::<Refused>() || cause.is::<crate::store::LockHeld>() {
            return 3;
        }
        if cause.is::<UsageError>() {
            return 2;
        }
        if let Some(promotion) = cause.downcast_ref::<crate::promote::PromoteError>() {
            return promotion.exit_code();
        }
    }
    1
}
