//! Fencing the old primary before the standby is made writable, so two databases never
//! take writes at once. The only module that sends SQL to the old primary.
//!
//! Two parts, both safe to repeat (a resumed `make_writable` runs them again):
//! 1. If the old primary's MariaDB still answers (through the first `mysql` check's
//!    account), `SET GLOBAL read_only = ON` there and kill its client connections. That
//!    account then needs `READ_ONLY ADMIN`, `CONNECTION ADMIN` and `PROCESS`. A database
//!    that does not answer is not a failure: there is nothing to fence there.
//! 2. The optional `[promotion] fence_command` (powering the machine off through a
//!    provider's API, say), bounded by `fence_timeout`.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use crate::config::Config;
use crate::journal::FenceRecord;
use crate::secret::Scrubber;
use crate::shell;

/// Fences the old primary as far as it can; never fails itself: the record says what
/// worked, and `ok` whether anything that was tried failed.
pub async fn fence_old_primary(config: &Config, env: &[(&str, String)]) -> FenceRecord {
    let timeout = config.promotion.fence_timeout;
    // A database that does not answer its handshake within the probe timeout counts as
    // not answering, as it does for detection: a hung primary must not stall this step.
    let connect_timeout = config.probe.timeout;
    let (database, database_ok) = match config.primary_database() {
        None => (
            "no mysql check: the old primary's database was not fenced".to_string(),
            true,
        ),
        Some((host, port, user, password, tls)) => {
            let connect = crate::mysql::connect(host, port, user, password, tls);
            match tokio::time::timeout(connect_timeout, connect).await {
                Err(_) => (
                    format!(
                        "the old primary's database ({host}:{port}) did not answer within {}: nothing to fence there",
                        humantime::format_duration(connect_timeout)
                    ),
                    true,
                ),
                // It answered, and could not be fenced for TLS.
                Ok(Err(e)) if e.is_tls() => (
                    format!(
                        "the old primary's database ({host}:{port}) answered but could not be fenced: {e}"
                    ),
                    false,
                ),
                Ok(Err(e)) => (
                    format!(
                        "the old primary's database ({host}:{port}) did not answer ({e}): nothing to fence there"
                    ),
                    true,
                ),
                Ok(Ok(conn)) => {
                    match tokio::time::timeout(timeout, read_only_and_disconnect(conn)).await {
                        Ok(Ok(killed)) => (
                            format!(
                                "the old primary's database ({host}:{port}) answered: set read_only = ON and killed {killed} client connection(s)"
                            ),
                            true,
                        ),
                        Ok(Err(e)) => (
                            format!(
                                "the old primary's database ({host}:{port}) answered but could not be fenced: {e:#}"
                            ),
                            false,
                        ),
                        Err(_) => (
                            format!(
                                "the old primary's database ({host}:{port}) answered but fencing it did not finish within {}",
                                humantime::format_duration(timeout)
                            ),
                            false,
                        ),
                    }
                }
            }
        }
    };
    let (command, command_ok) = match &config.promotion.fence_command {
        None => (None, true),
        Some(command) => match shell::run(
            "fence_command",
            command,
            env,
            timeout,
            &Scrubber::new(config.secrets()),
        )
        .await
        {
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
        },
    };
    FenceRecord {
        database,
        command,
        ok: database_ok && command_ok,
    }
}

/// `read_only = ON`, then every client connection but ours killed; returns how many.
async fn read_only_and_disconnect(mut conn: Conn) -> anyhow::Result<usize> {
    conn.query_drop("SET GLOBAL read_only = ON").await?;
    let ids: Vec<u64> = conn
        .query(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE ID <> CONNECTION_ID() AND USER <> 'system user' AND COMMAND <> 'Daemon'",
        )
        .await?;
    let mut killed = 0;
    for id in ids {
        // A connection that ended meanwhile is fine ("Unknown thread id").
        if conn.exec_drop("KILL CONNECTION ?", (id,)).await.is_ok() {
            killed += 1;
        }
    }
    let _ = conn.disconnect().await;
    Ok(killed)
}
