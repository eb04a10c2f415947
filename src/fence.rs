//! Fencing the old primary before the standby is made writable, so two databases never
//! take writes at once. Its SQL is the MariaDB edge's ([`Server::fence`]).
//!
//! Two parts, both safe to repeat (a resumed `make_writable` runs them again):
//! 1. If the old primary's MariaDB still answers (through the first `mysql` check's
//!    account), `SET GLOBAL read_only = ON` there and kill its client connections. That
//!    account then needs `READ_ONLY ADMIN`, `CONNECTION ADMIN` and `PROCESS`. A database
//!    that does not answer is not a failure: there is nothing to fence there.
//! 2. The optional `[promotion] fence_command` (powering the machine off through a
//!    provider's API, say), bounded by `fence_timeout`.

use crate::edges::Edges;
use crate::journal::FenceRecord;
use crate::mariadb::{Server, Unreachable};
use crate::shell;

/// Fences the old primary as far as it can; never fails itself: the record says what
/// worked, and `ok` whether anything that was tried failed.
pub async fn fence_old_primary(edges: &Edges, env: &[(&str, String)]) -> FenceRecord {
    let config = &edges.config;
    let (database, database_ok) = match &edges.old_primary {
        None => (
            "no mysql check: the old primary's database was not fenced".to_string(),
            true,
        ),
        Some(server) => fence_database(server, config.promotion.fence_timeout).await,
    };
    let timeout = config.promotion.fence_timeout;
    let (command, command_ok) = match &config.promotion.fence_command {
        None => (None, true),
        Some(command) => {
            match shell::run("fence_command", command, env, timeout, &edges.scrubber).await {
                Ok(done) if done.success() => {
                    (Some(format!("fence_command: {}", done.describe())), true)
                }
                Ok(done) => (
                    Some(format!(
                        "fence_command failed: {}: {}",
                        done.describe(),
                        done.tail
                    )),
                    false,
                ),
                Err(e) => (Some(format!("fence_command failed: {e:#}")), false),
            }
        }
    };
    FenceRecord {
        database,
        command,
        ok: database_ok && command_ok,
    }
}

/// The old primary's database made read-only and its clients cut, within `timeout`
/// once it answered; what happened, and whether it failed. A database that does not
/// answer its handshake within the probe timeout (as for detection: a hung primary must
/// not stall this step) or refuses the connection has nothing to fence.
async fn fence_database(server: &Server, timeout: std::time::Duration) -> (String, bool) {
    let label = server.label();
    match tokio::time::timeout(server.connect_timeout() + timeout, server.fence(timeout)).await {
        Ok(Ok(fenced)) => (
            format!(
                "{label} answered: set read_only = ON and killed {} client connection(s)",
                fenced.killed
            ),
            true,
        ),
        Ok(Err(e)) => match e.downcast_ref::<Unreachable>() {
            Some(Unreachable::Timeout { within, .. }) => (
                format!(
                    "{label} did not answer within {}: nothing to fence there",
                    humantime::format_duration(*within)
                ),
                true,
            ),
            // It answered, and could not be fenced for TLS.
            Some(Unreachable::Refused { error, .. }) if error.is_tls() => (
                format!("{label} answered but could not be fenced: {error}"),
                false,
            ),
            Some(Unreachable::Refused { error, .. }) => (
                format!("{label} did not answer ({error}): nothing to fence there"),
                true,
            ),
            None => (
                format!("{label} answered but could not be fenced: {e:#}"),
                false,
            ),
        },
        Err(_) => (
            format!(
                "{label} answered but fencing it did not finish within {}",
                humantime::format_duration(timeout)
            ),
            false,
        ),
    }
}
