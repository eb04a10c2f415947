//! The errors the binary turns into exit codes other than 1. Everything else is an
//! `anyhow::Error` with context, printed with `{:#}` and exit code 1.
//!
//! | error | exit code |
//! | --- | --- |
//! | [`crate::config::ConfigError`] | 78 (EX_CONFIG) |
//! | [`Refused`], [`crate::store::LockHeld`] | 3 |
//! | [`UsageError`] | 2 |
//! | [`Interrupted`] | 130 |

/// The command was refused: a promotion already finished, or another one holds the lock.
/// A procedure's refusal (`procedure::RunError::Refused`) carries one as its source.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// The command line is fine for clap but not usable as given (no `--yes` and no
/// terminal to ask on).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A stop (SIGTERM, SIGINT) ended the command early; what it left is said. Exit 130,
/// as a shell says of a command ended by SIGINT.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(pub String);

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
        if cause.is::<Interrupted>() {
            return 130;
        }
    }
    1
}
