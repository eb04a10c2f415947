//! What the smoke test's checks conclude from what they read: pure functions, no I/O,
//! no clock (times are passed in), so every verdict is a unit test.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;

use super::Finding;
use crate::journal::{Journal, Outcome};
use crate::replication::ReplicaStatus;
use crate::report::format_days;
use crate::state::State;
use crate::verdict::HeartbeatRule;

/// The replication check, from the connection's status and `@@global.read_only`. Every
/// problem is named, not just the first. `heartbeat`: the daemon's heartbeat rule, when
/// it confirms failures with replication (`None` when it does not).
pub fn replication(
    status: &ReplicaStatus,
    read_only: bool,
    max_lag: Duration,
    heartbeat: Option<HeartbeatRule>,
    drift: &[String],
) -> Finding {
    let mut problems = Vec::new();
    for (thread, state, error) in [
        ("IO", &status.io_running, &status.io_error),
        ("SQL", &status.sql_running, &status.sql_error),
    ] {
        if state != "Yes" {
            problems.push(format!("{thread} thread {}", or_unknown(state)));
        }
        if let Some(error) = error {
            problems.push(error.to_string());
        }
    }
    match status.seconds_behind {
        Some(seconds) if Duration::from_secs(seconds) > max_lag => problems.push(format!(
            "{seconds} s behind the primary (max_lag {})",
            humantime::format_duration(max_lag)
        )),
        Some(_) => {}
        None => problems.push("lag unknown (Seconds_Behind_Master is NULL)".to_string()),
    }
    if !read_only {
        problems.push("read_only is OFF: the standby takes writes of its own".to_string());
    }
    let using_gtid = status.using_gtid.as_str();
    if !matches!(using_gtid, "Slave_Pos" | "Current_Pos") {
        problems.push(format!(
            "GTID not in use (Using_Gtid {}): the promotion waits on GTID positions; CHANGE MASTER TO MASTER_USE_GTID = slave_pos",
            or_unknown(using_gtid)
        ));
    }
    if let Some(problem) = heartbeat.and_then(|rule| rule.problem(status.heartbeat_period)) {
        problems.push(problem);
    }
    problems.extend(drift.iter().cloned());
    if !problems.is_empty() {
        return Finding::fail(problems.join("; "));
    }
    // Shown as MariaDB shows it, with three decimals; 0 when not set or not known.
    let heartbeat = status.heartbeat_period.map_or(0.0, |p| p.as_secs_f64());
    Finding::pass(format!(
        "IO and SQL threads running, {} s behind (max {}), read_only ON, GTID {using_gtid} (received {}), heartbeat {heartbeat:.3} s",
        status.seconds_behind.unwrap_or_default(),
        humantime::format_duration(max_lag),
        status.gtid_io_pos
    ))
}

fn or_unknown(value: &str) -> &str {
    if value.is_empty() { "unknown" } else { value }
}

/// A global privilege the promotion needs from the replica user, with every name that
/// grants it (MariaDB 10.11: `SUPER` still covers SHOW SLAVE STATUS and STOP SLAVE, but
/// no longer `SET GLOBAL read_only`; checked against the real server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub privilege: &'static str,
    /// The statement and the step that needs it.
    pub used_for: &'static str,
    /// Other names that grant it too (`ALL PRIVILEGES` grants everything).
    pub also: &'static [&'static str],
}

/// What the promotion's statements need; `RELOAD` only with `reset_replica`.
pub const NEEDS: [Need; 4] = [
    Need {
        privilege: "SLAVE MONITOR",
        used_for: "SHOW ALL SLAVES STATUS in stop_replica",
        also: &["REPLICA MONITOR", "SUPER"],
    },
    Need {
        privilege: "REPLICATION SLAVE ADMIN",
        used_for: "STOP SLAVE in stop_replica",
        also: &["SUPER"],
    },
    Need {
        privilege: "RELOAD",
        used_for: "RESET SLAVE ALL in stop_replica (reset_replica = true)",
        also: &[],
    },
    Need {
        privilege: "READ_ONLY ADMIN",
        used_for: "SET GLOBAL read_only in make_writable",
        also: &[],
    },
];

/// What a switchover needs of the `[peer]` account on the primary it fences, whose
/// fence it may undo and which it points at this host (`rejoin_peer`). Reading the
/// peer's state (`SLAVE MONITOR`) is proven by the pre-check that reads it.
pub const PEER_NEEDS: [Need; 4] = [
    Need {
        privilege: "READ_ONLY ADMIN",
        used_for: "SET GLOBAL read_only in fence_primary and in its undo",
        // SUPER too before MariaDB 10.11: see `missing_peer_privileges`.
        also: &[],
    },
    Need {
        privilege: "CONNECTION ADMIN",
        used_for: "KILL CONNECTION of the fenced primary's clients in fence_primary",
        also: &["SUPER"],
    },
    Need {
        privilege: "PROCESS",
        used_for: "listing every client connection (PROCESSLIST) in fence_primary",
        also: &[],
    },
    Need {
        privilege: "REPLICATION SLAVE ADMIN",
        used_for: "STOP SLAVE, CHANGE MASTER, START SLAVE in rejoin_peer",
        also: &["SUPER"],
    },
];

/// The first MariaDB whose `SUPER` no longer grants `READ_ONLY ADMIN`.
pub const READ_ONLY_ADMIN_LEFT_SUPER: (u16, u16) = (10, 11);

/// The `[peer]` account's missing privileges on a server of `version` (major, minor).
pub fn missing_peer_privileges(held: &BTreeSet<String>, version: (u16, u16)) -> Vec<Need> {
    if held.contains("ALL PRIVILEGES") || held.contains("ALL") {
        return Vec::new();
    }
    let super_is_read_only_admin = version < READ_ONLY_ADMIN_LEFT_SUPER && held.contains("SUPER");
    PEER_NEEDS
        .into_iter()
        .filter(|need| !(need.privilege == "READ_ONLY ADMIN" && super_is_read_only_admin))
        .filter(|need| {
            !std::iter::once(need.privilege)
                .chain(need.also.iter().copied())
                .any(|name| held.contains(name))
        })
        .collect()
}

/// The switchover's pre-check of the `[peer]` account's grants, from `SHOW GRANTS` on
/// the peer (a server of `version`).
pub fn peer_grants(grants: &[String], user: &str, version: (u16, u16)) -> Result<String, String> {
    let missing = missing_peer_privileges(&global_privileges(grants), version);
    if missing.is_empty() {
        return Ok(format!(
            "{user} holds what the fence, its undo and rejoin_peer need"
        ));
    }
    let (each, privileges) = lacking(&missing);
    Err(format!(
        "{user} lacks {each} on the peer (GRANT {privileges} ON *.* TO ...): without them the fence could fail half-done"
    ))
}

/// What is missing, each with what it is for, and the privileges for a `GRANT`.
fn lacking(missing: &[Need]) -> (String, String) {
    let each: Vec<String> = missing
        .iter()
        .map(|need| format!("{} for {}", need.privilege, need.used_for))
        .collect();
    let privileges: Vec<&str> = missing.iter().map(|need| need.privilege).collect();
    (each.join(", "), privileges.join(", "))
}

/// The global (`ON *.*`) privileges in `SHOW GRANTS` lines, upper case. Every line of
/// that output applies to the current user: its own grants, its enabled roles' and
/// PUBLIC's. Grants on a database or table, roles (`GRANT role TO ...`) and `PROXY`
/// are not global and are left out.
pub fn global_privileges(grants: &[String]) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for line in grants {
        let Some(rest) = line.trim().strip_prefix("GRANT ") else {
            continue;
        };
        let (privileges, target) = split_privileges(rest);
        if target.is_some_and(|t| t.starts_with("*.* ")) {
            held.extend(privileges.into_iter().map(|p| p.to_ascii_uppercase()));
        }
    }
    held
}

/// Splits `A, B (col1, col2) ON target TO ...` into the privileges and what follows
/// `ON `; commas inside column lists and anything quoted in backticks or quotes do not
/// split. `None` for the target when there is no `ON` (a role grant).
fn split_privileges(text: &str) -> (Vec<String>, Option<&str>) {
    let mut privileges = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '`' | '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth = depth.saturating_sub(1),
            (None, ',') if depth == 0 => {
                privileges.push(current.trim().to_string());
                current.clear();
                continue;
            }
            (None, ' ') if depth == 0 && text[i..].starts_with(" ON ") => {
                privileges.push(current.trim().to_string());
                return (privileges, Some(&text[i + 4..]));
            }
            _ => {}
        }
        current.push(c);
    }
    (Vec::new(), None)
}

/// The needs `held` does not cover.
pub fn missing_privileges(held: &BTreeSet<String>, reset_replica: bool) -> Vec<Need> {
    if held.contains("ALL PRIVILEGES") || held.contains("ALL") {
        return Vec::new();
    }
    NEEDS
        .into_iter()
        .filter(|need| reset_replica || need.privilege != "RELOAD")
        .filter(|need| {
            !std::iter::once(need.privilege)
                .chain(need.also.iter().copied())
                .any(|name| held.contains(name))
        })
        .collect()
}

/// The grants part of the promotion plan check, from `SHOW GRANTS`.
pub fn grants(grants: &[String], user: &str, reset_replica: bool) -> Result<String, String> {
    let held = global_privileges(grants);
    let missing = missing_privileges(&held, reset_replica);
    if missing.is_empty() {
        return Ok(format!("{user} holds the promotion's privileges"));
    }
    let (each, privileges) = lacking(&missing);
    Err(format!(
        "{user} lacks {each} (GRANT {privileges} ON *.* TO ...)"
    ))
}

/// The journal part of the promotion plan check: a promotion would start fresh only
/// with no journal.
pub fn journal(journal: Option<&Journal>) -> Result<String, String> {
    let Some(journal) = journal else {
        return Ok("no promotion in the journal".to_string());
    };
    match journal.outcome {
        Outcome::Running => Err(format!(
            "a promotion started at {} is in progress or was interrupted (at step {}); the daemon resumes it when it starts",
            journal.started_at,
            journal.next_step().map_or("none", |s| s.as_str())
        )),
        Outcome::Halted => Err(format!(
            "a halted promotion is in the journal (step {} failed); the daemon will not promote on its own until an operator retries it with --promote-now",
            journal.failed_step().map_or("?", |s| s.name.as_str())
        )),
        Outcome::Done => Err(format!(
            "this node was already promoted at {}; every promotion is refused until the journal is cleared after the failback",
            journal.finished_at.unwrap_or(journal.started_at)
        )),
    }
}

/// The build check for one path, from its newest file (path and modification time).
pub fn build(
    path: &Path,
    newest: Option<(&Path, SystemTime)>,
    now: SystemTime,
    max_age: Option<Duration>,
) -> Result<String, String> {
    let Some((file, modified)) = newest else {
        return Err(format!("{} holds no files", path.display()));
    };
    // A file from the future (clock skew between the hosts) is as fresh as can be.
    let age = now.duration_since(modified).unwrap_or_default();
    let described = format!(
        "{}: newest file {} is {} old",
        path.display(),
        file.strip_prefix(path)
            .ok()
            .filter(|relative| !relative.as_os_str().is_empty())
            .unwrap_or(file)
            .display(),
        rough(age)
    );
    match max_age {
        Some(max_age) if age > max_age => Err(format!(
            "{described}, older than build_max_age {}: is the sync from the primary running?",
            format_days(max_age)
        )),
        Some(max_age) => Ok(format!("{described} (max {})", format_days(max_age))),
        None => Ok(described),
    }
}

/// An age for people: to the second under an hour, the minute under a day, else the hour.
fn rough(age: Duration) -> String {
    let unit = match age.as_secs() {
        0..3600 => 1,
        3600..86400 => 60,
        _ => 3600,
    };
    format_days(Duration::from_secs(age.as_secs() / unit * unit))
}

/// A DNS-only record with a TTL above this draws a warning: resolvers may keep the old
/// primary's address that long after `update_dns`.
pub const LONG_TTL_SECS: u32 = 60;
/// Cloudflare's "automatic" TTL (`ttl` 1), in seconds.
const AUTOMATIC_TTL_SECS: u32 = 300;

/// The warning for a record found by the API tokens check, if it needs one: not proxied
/// (a proxied record is answered with Cloudflare's addresses, so users follow a change at
/// once) and a TTL over [`LONG_TTL_SECS`]. It says the recovery time users see: detection
/// (`failures` rounds of `interval`) plus that TTL, in seconds.
pub fn dns_ttl(
    record: &str,
    ttl: u32,
    proxied: bool,
    failures: u32,
    interval: Duration,
) -> Option<String> {
    let (ttl_secs, ttl_shown) = match ttl {
        1 => (
            AUTOMATIC_TTL_SECS,
            format!("automatic ({AUTOMATIC_TTL_SECS} s)"),
        ),
        ttl => (ttl, format!("{ttl} s")),
    };
    if proxied || ttl_secs <= LONG_TTL_SECS {
        return None;
    }
    let detection = (interval * failures).as_secs_f64().ceil() as u64;
    Some(format!(
        "{record} is not proxied and its TTL is {ttl_shown}: resolvers may send users to the old primary for up to {ttl_secs} s after DNS moves; recovery time for users up to {} s ({detection} s to detect: {failures} × {}, + {ttl_secs} s TTL); lower the TTL to {LONG_TTL_SECS} s or proxy the record",
        detection + u64::from(ttl_secs),
        humantime::format_duration(interval)
    ))
}

/// What `state_dir` says about the daemon, for the watchdog check.
#[derive(Debug, Clone, Copy)]
pub struct Daemon {
    /// The derived state, as `status` shows it.
    pub state: State,
    /// When the daemon last wrote its live state (after each round).
    pub updated_at: Option<Timestamp>,
    pub pid: Option<u32>,
    /// Whether a process with that pid exists.
    pub pid_alive: bool,
}

/// The watchdog check: the daemon runs, monitors (not paused, halted or done), and its
/// last round is no older than `stale_after`.
pub fn watchdog(daemon: &Daemon, now: Timestamp, stale_after: Duration) -> Finding {
    let (Some(updated_at), Some(pid)) = (daemon.updated_at, daemon.pid) else {
        return Finding::fail(
            "the daemon never ran with this state_dir: is the failover-watchdog service running?",
        );
    };
    let mut problems = Vec::new();
    if !daemon.pid_alive {
        problems.push(format!("the daemon (pid {pid}) is not running"));
    }
    let age = now.duration_since(updated_at);
    let age = Duration::try_from(age).unwrap_or_default();
    if age > stale_after {
        problems.push(format!(
            "its last round was {} ago, at {updated_at} (expected within {})",
            rough(age),
            humantime::format_duration(stale_after)
        ));
    }
    match daemon.state {
        State::Monitoring | State::Suspect => {}
        State::Paused => {
            problems.push("automatic promotion is paused (`resume` ends it)".to_string())
        }
        other => problems.push(format!("state {other}: it will not promote on its own")),
    }
    if !problems.is_empty() {
        return Finding::fail(problems.join("; "));
    }
    Finding::pass(format!(
        "pid {pid}, state {}, last round {} ago",
        daemon.state,
        rough(age)
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::journal::{StepName, Trigger};
    use crate::readiness::Verdict;

    /// A healthy replica's columns, as MariaDB 10.11 shows them.
    fn healthy() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Last_IO_Errno", "0"),
            ("Last_SQL_Errno", "0"),
            ("Seconds_Behind_Master", "0"),
            ("Using_Gtid", "Slave_Pos"),
            ("Slave_heartbeat_period", "5.000"),
            ("Gtid_IO_Pos", "0-1-42"),
        ])
    }

    fn assess(columns: &HashMap<&str, &str>, read_only: bool) -> Finding {
        replication(
            &ReplicaStatus::from_columns(|c| columns.get(c).map(|v| v.to_string())).unwrap(),
            read_only,
            Duration::from_secs(60),
            Some(HeartbeatRule {
                configured: Some(Duration::from_secs(60)),
                interval: Duration::from_secs(10),
                failures_before_promotion: 3,
            }),
            &[],
        )
    }

    #[test]
    fn a_drifted_setting_fails_the_check_naming_it() {
        let finding = replication(
            &ReplicaStatus::from_columns(|c| healthy().get(c).map(|v| v.to_string())).unwrap(),
            true,
            Duration::from_secs(60),
            None,
            &[
                "replication.heartbeat_period: the channel has 30.000 s, the config says 1.000 s"
                    .into(),
            ],
        );
        assert_eq!(finding.verdict, Verdict::Fail);
        assert!(
            finding.detail.contains("replication.heartbeat_period"),
            "{finding:?}"
        );
    }

    #[test]
    fn a_healthy_replica_passes_with_what_was_seen() {
        let finding = assess(&healthy(), true);
        assert_eq!(finding.verdict, Verdict::Pass, "{finding:?}");
        assert_eq!(
            finding.detail,
            "IO and SQL threads running, 0 s behind (max 1m), read_only ON, GTID Slave_Pos (received 0-1-42), heartbeat 5.000 s"
        );
    }

    #[test]
    fn each_replication_problem_is_named() {
        // Columns changed from healthy, read_only, the problem named.
        type Case<'a> = (&'a [(&'a str, &'a str)], bool, &'a str);
        let cases: &[Case] = &[
            (
                &[("Slave_IO_Running", "Connecting")],
                true,
                "IO thread Connecting",
            ),
            (&[("Slave_SQL_Running", "No")], true, "SQL thread No"),
            (
                &[
                    ("Last_SQL_Errno", "1062"),
                    ("Last_SQL_Error", "Duplicate entry"),
                ],
                true,
                "SQL thread error 1062: Duplicate entry",
            ),
            (
                &[
                    ("Last_IO_Errno", "2003"),
                    ("Last_IO_Error", "can't connect"),
                ],
                true,
                "IO thread error 2003: can't connect",
            ),
            (
                &[("Seconds_Behind_Master", "61")],
                true,
                "61 s behind the primary (max_lag 1m)",
            ),
            (&[("Seconds_Behind_Master", "")], true, "lag unknown"),
            (&[], false, "read_only is OFF"),
            (
                &[("Using_Gtid", "No")],
                true,
                "GTID not in use (Using_Gtid No)",
            ),
            (
                &[("Slave_heartbeat_period", "0.000")],
                true,
                "heartbeat period not set",
            ),
            (
                &[("Slave_heartbeat_period", "60.000")],
                true,
                "not well under replication_silence",
            ),
        ];
        for (changes, read_only, problem) in cases {
            let mut columns = healthy();
            columns.extend(changes.iter().copied());
            let finding = assess(&columns, *read_only);
            assert_eq!(finding.verdict, Verdict::Fail, "{changes:?}");
            assert!(finding.detail.contains(problem), "{changes:?}: {finding:?}");
        }
    }

    #[test]
    fn a_stopped_replica_fails_with_every_problem_at_once() {
        let mut columns = healthy();
        columns.extend([
            ("Slave_IO_Running", "No"),
            ("Slave_SQL_Running", "No"),
            ("Seconds_Behind_Master", ""),
        ]);
        let finding = assess(&columns, true);
        assert_eq!(
            finding.detail,
            "IO thread No; SQL thread No; lag unknown (Seconds_Behind_Master is NULL)"
        );
    }

    fn lines(grants: &[&str]) -> Vec<String> {
        grants.iter().map(|g| g.to_string()).collect()
    }

    /// What MariaDB 10.11 prints for the rig's failover user (rig/src/mariadb.rs).
    const FAILOVER: &str = "GRANT RELOAD, BINLOG MONITOR, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR ON *.* TO `failover`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122'";
    const PUBLIC: &str = "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON `test`.* TO PUBLIC";

    #[test]
    fn the_minimal_grants_cover_the_promotion() {
        let grants = lines(&[FAILOVER, PUBLIC]);
        assert_eq!(
            global_privileges(&grants),
            BTreeSet::from(
                [
                    "RELOAD",
                    "BINLOG MONITOR",
                    "READ_ONLY ADMIN",
                    "REPLICATION SLAVE ADMIN",
                    "SLAVE MONITOR"
                ]
                .map(String::from)
            )
        );
        assert_eq!(
            super::grants(&grants, "failover", true),
            Ok("failover holds the promotion's privileges".to_string())
        );
    }

    #[test]
    fn all_privileges_on_everything_covers_the_promotion() {
        let grants = lines(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION",
        ]);
        assert!(missing_privileges(&global_privileges(&grants), true).is_empty());
    }

    #[test]
    fn super_alone_lacks_reload_and_read_only_admin() {
        let grants = lines(&["GRANT SUPER ON *.* TO `su`@`%`"]);
        let missing: Vec<&str> = missing_privileges(&global_privileges(&grants), true)
            .iter()
            .map(|n| n.privilege)
            .collect();
        assert_eq!(missing, ["RELOAD", "READ_ONLY ADMIN"]);
        let missing = missing_privileges(&global_privileges(&grants), false);
        assert_eq!(
            missing.len(),
            1,
            "RELOAD is needed only to reset: {missing:?}"
        );
        let error = super::grants(&grants, "su", true).unwrap_err();
        assert!(
            error.contains("READ_ONLY ADMIN for SET GLOBAL read_only in make_writable"),
            "{error}"
        );
        assert!(
            error.contains("GRANT RELOAD, READ_ONLY ADMIN ON *.*"),
            "{error}"
        );
    }

    #[test]
    fn only_global_grants_count_and_roles_and_public_do() {
        let grants = lines(&[
            "GRANT `promoter` TO `failover`@`%`",
            "GRANT SLAVE MONITOR, REPLICATION SLAVE ADMIN, RELOAD ON *.* TO `failover`@`%`",
            "GRANT SELECT (`User`, `Host`), UPDATE ON `mysql`.`user` TO `failover`@`%`",
            "GRANT ALL PRIVILEGES ON `app`.* TO `failover`@`%`",
            "GRANT PROXY ON ``@`%` TO `failover`@`%` WITH GRANT OPTION",
            "GRANT READ_ONLY ADMIN ON *.* TO `promoter`",
            "SET DEFAULT ROLE `promoter` FOR `failover`@`%`",
        ]);
        let held = global_privileges(&grants);
        assert!(!held.contains("ALL PRIVILEGES"), "{held:?}");
        assert!(
            !held.contains("PROXY") && !held.contains("UPDATE"),
            "{held:?}"
        );
        assert!(
            held.contains("READ_ONLY ADMIN"),
            "through the role: {held:?}"
        );
        assert!(missing_privileges(&held, true).is_empty());
    }

    #[test]
    fn column_lists_and_quoted_names_do_not_split_privileges() {
        let (privileges, target) =
            split_privileges("SELECT (`a, b`, `c ON d`), INSERT ON `x ON y`.* TO `u`@`%`");
        assert_eq!(privileges, ["SELECT (`a, b`, `c ON d`)", "INSERT"]);
        assert_eq!(target, Some("`x ON y`.* TO `u`@`%`"));
    }

    #[test]
    fn only_an_empty_journal_lets_a_promotion_start_fresh() {
        assert!(journal(None).is_ok());
        let mut j = Journal::new("n", Trigger::Manual, "r", Timestamp::UNIX_EPOCH);
        let running = journal(Some(&j)).unwrap_err();
        assert!(
            running.contains("in progress or was interrupted"),
            "{running}"
        );
        j.begin(StepName::StopReplica, Timestamp::UNIX_EPOCH);
        j.fail(
            StepName::StopReplica,
            "SQL error".into(),
            Timestamp::UNIX_EPOCH,
        );
        let halted = journal(Some(&j)).unwrap_err();
        assert!(halted.contains("halted"), "{halted}");
        assert!(halted.contains("stop_replica"), "{halted}");
        j.outcome = Outcome::Done;
        let promoted = journal(Some(&j)).unwrap_err();
        assert!(promoted.contains("already promoted"), "{promoted}");
    }

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn a_build_is_judged_by_its_newest_file() {
        let now = SystemTime::UNIX_EPOCH + 100 * DAY;
        let root = Path::new("/var/www/app");
        let file = Path::new("/var/www/app/public/index.php");
        let fresh = build(root, Some((file, now - 2 * DAY)), now, Some(7 * DAY));
        assert_eq!(
            fresh,
            Ok("/var/www/app: newest file public/index.php is 2days old (max 7days)".into())
        );
        let stale = build(root, Some((file, now - 8 * DAY)), now, Some(7 * DAY)).unwrap_err();
        assert!(stale.contains("8days old"), "{stale}");
        assert!(stale.contains("older than build_max_age 7days"), "{stale}");
        let unbounded = build(root, Some((file, now - 800 * DAY)), now, None);
        assert!(
            unbounded.is_ok(),
            "without build_max_age, age is only shown"
        );
        let from_the_future = build(root, Some((file, now + DAY)), now, Some(DAY));
        assert!(from_the_future.unwrap().contains("is 0s old"));
        let empty = build(root, None, now, Some(DAY)).unwrap_err();
        assert_eq!(empty, "/var/www/app holds no files");
        let single = build(file, Some((file, now)), now, None).unwrap();
        assert!(
            single.contains("newest file /var/www/app/public/index.php"),
            "{single}"
        );
    }

    #[test]
    fn ages_are_rounded_for_people() {
        assert_eq!(rough(Duration::from_millis(42_700)), "42s");
        assert_eq!(rough(Duration::from_secs(3 * 3600 + 125)), "3h 2m");
        assert_eq!(
            rough(Duration::from_secs(2 * 86400 + 3 * 3600 + 125)),
            "2days 3h"
        );
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn daemon(state: &str, updated_at: i64, pid_alive: bool) -> Daemon {
        let state = serde_json::from_value(serde_json::json!(state)).unwrap();
        Daemon {
            state,
            updated_at: Some(at(updated_at)),
            pid: Some(812),
            pid_alive,
        }
    }

    #[test]
    fn a_running_monitoring_daemon_with_a_recent_round_is_alive() {
        let stale_after = Duration::from_secs(190);
        for state in ["monitoring", "suspect"] {
            let finding = watchdog(&daemon(state, 1000, true), at(1060), stale_after);
            assert_eq!(finding.verdict, Verdict::Pass, "{finding:?}");
        }
        assert_eq!(
            watchdog(&daemon("monitoring", 1000, true), at(1002), stale_after).detail,
            "pid 812, state monitoring, last round 2s ago"
        );
    }

    #[test]
    fn the_smoke_ttl_warning_names_the_recovery_time_for_users() {
        let interval = Duration::from_secs(10);
        let warning = dns_ttl("www.example.com A", 3600, false, 3, interval).unwrap();
        assert!(
            warning.starts_with("www.example.com A is not proxied and its TTL is 3600 s"),
            "{warning}"
        );
        assert!(
            warning.contains(
                "recovery time for users up to 3630 s (30 s to detect: 3 × 10s, + 3600 s TTL)"
            ),
            "{warning}"
        );
        let automatic = dns_ttl("db A", 1, false, 3, interval).unwrap();
        assert!(
            automatic.contains("TTL is automatic (300 s)") && automatic.contains("up to 330 s"),
            "{automatic}"
        );
        // Sub-second intervals round the detection up.
        let quick = dns_ttl("db A", 120, false, 3, Duration::from_millis(500)).unwrap();
        assert!(quick.contains("up to 122 s (2 s to detect"), "{quick}");
        // Proxied records follow at once; short TTLs are fine.
        assert_eq!(dns_ttl("db A", 3600, true, 3, interval), None);
        assert_eq!(dns_ttl("db A", 1, true, 3, interval), None);
        assert_eq!(dns_ttl("db A", 60, false, 3, interval), None);
        assert!(dns_ttl("db A", 61, false, 3, interval).is_some());
    }

    #[test]
    fn a_dead_stale_paused_or_halted_daemon_is_not_alive() {
        let stale_after = Duration::from_secs(190);
        let cases = [
            (daemon("monitoring", 1000, false), "pid 812) is not running"),
            (
                daemon("monitoring", 1000 - 200, true),
                "last round was 3m 20s ago",
            ),
            (daemon("paused", 1000, true), "paused"),
            (daemon("halted", 1000, true), "state halted"),
            (daemon("promoted", 1000, true), "state promoted"),
            (
                Daemon {
                    state: State::Monitoring,
                    updated_at: None,
                    pid: None,
                    pid_alive: false,
                },
                "never ran",
            ),
        ];
        for (daemon, problem) in cases {
            let finding = watchdog(&daemon, at(1000), stale_after);
            assert_eq!(finding.verdict, Verdict::Fail, "{daemon:?}");
            assert!(finding.detail.contains(problem), "{daemon:?}: {finding:?}");
        }
    }

    /// Issue 18, item 7: a switchover whose `[peer]` account lacked `READ_ONLY ADMIN`
    /// fenced nothing, could not undo, and halted; the pre-checks now say so first.
    #[test]
    fn the_peer_account_needs_what_the_fence_its_undo_and_rejoin_peer_need() {
        let lines = |grants: &str| vec![format!("GRANT {grants} ON *.* TO `failover`@`%`")];
        let all = lines(
            "READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS, REPLICATION SLAVE ADMIN, SLAVE MONITOR",
        );
        assert!(peer_grants(&all, "failover", (10, 11)).is_ok());
        let without = lines("CONNECTION ADMIN, PROCESS, REPLICATION SLAVE ADMIN");
        let refused = peer_grants(&without, "failover", (10, 11)).unwrap_err();
        assert!(
            refused.contains("lacks READ_ONLY ADMIN for SET GLOBAL read_only"),
            "{refused}"
        );
        // SUPER covers all but PROCESS; READ_ONLY ADMIN only before 10.11.
        let with_super = lines("SUPER, PROCESS");
        assert!(peer_grants(&with_super, "failover", (10, 6)).is_ok());
        let names: Vec<&str> = missing_peer_privileges(&global_privileges(&with_super), (10, 11))
            .iter()
            .map(|need| need.privilege)
            .collect();
        assert_eq!(names, ["READ_ONLY ADMIN"]);
        assert!(peer_grants(&lines("ALL PRIVILEGES"), "root", (11, 4)).is_ok());
    }
}
