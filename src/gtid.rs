//! MariaDB GTID positions, compared. Pure.
//!
//! A position is a comma-separated list of `domain-server-sequence`, one per domain
//! (`0-1-2176,1-5-12`). With `gtid_strict_mode`, sequence numbers grow within a domain,
//! so position A *covers* position B when, for every domain in B, A has a sequence
//! number at least as high.
//!
//! [`errant`] decides, for `rejoin`, which transactions a former primary has that its
//! peer lacks; [`binlog_file_holding`] and [`gtid_of_event`] read the answers of
//! `SHOW BINARY LOGS` / `BINLOG_GTID_POS` and `SHOW BINLOG EVENTS` to say where to read
//! them from.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gtid {
    pub domain: u32,
    pub server_id: u32,
    pub sequence: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.sequence)
    }
}

impl std::str::FromStr for Gtid {
    type Err = ();

    fn from_str(text: &str) -> Result<Gtid, ()> {
        let mut parts = text.trim().split('-');
        let mut next = || parts.next().ok_or(());
        let gtid = Gtid {
            domain: next()?.parse().map_err(|_| ())?,
            server_id: next()?.parse().map_err(|_| ())?,
            sequence: next()?.parse().map_err(|_| ())?,
        };
        if parts.next().is_some() {
            return Err(());
        }
        Ok(gtid)
    }
}

/// The last GTID of each domain; `None` when the text is not a GTID position.
pub fn parse_gtids(position: &str) -> Option<BTreeMap<u32, Gtid>> {
    let mut domains = BTreeMap::new();
    for text in position.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let gtid: Gtid = text.parse().ok()?;
        domains.insert(gtid.domain, gtid);
    }
    Some(domains)
}

/// Sequence number by domain; `None` when the text is not a GTID position.
pub fn parse(position: &str) -> Option<BTreeMap<u32, u64>> {
    parse_gtids(position).map(|domains| {
        domains
            .into_iter()
            .map(|(domain, gtid)| (domain, gtid.sequence))
            .collect()
    })
}

/// Whether `have` holds everything in `want`. Unreadable positions cover nothing.
pub fn covers(have: &str, want: &str) -> bool {
    match (parse(have), parse(want)) {
        (Some(have), Some(want)) => want
            .iter()
            .all(|(domain, seq)| have.get(domain).is_some_and(|h| h >= seq)),
        _ => false,
    }
}

/// Transactions of one domain that this host has and its peer lacks:
/// `domain-server-first` to `domain-server-last`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrantRange {
    pub domain: u32,
    /// The server id of this host's last transaction in the domain.
    pub server_id: u32,
    pub first: u64,
    pub last: u64,
    /// The last GTID of the domain the peer provably has (what this host's
    /// `gtid_slave_pos` may be set to once the range is dealt with); `None` when the
    /// peer has nothing of it.
    pub peer_has: Option<Gtid>,
}

impl ErrantRange {
    /// The range's first GTID: where reading it starts.
    pub fn first_gtid(&self) -> Gtid {
        Gtid {
            domain: self.domain,
            server_id: self.server_id,
            sequence: self.first,
        }
    }
}

impl fmt::Display for ErrantRange {
    /// `0-1-6..0-1-9`, or one GTID when the range holds one transaction.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (domain, server) = (self.domain, self.server_id);
        if self.first == self.last {
            write!(f, "{domain}-{server}-{}", self.first)
        } else {
            write!(
                f,
                "{domain}-{server}-{}..{domain}-{server}-{}",
                self.first, self.last
            )
        }
    }
}

/// The transactions this host has that its peer lacks, per domain, with
/// `gtid_strict_mode` on both hosts of a pair.
///
/// For each domain where this host's last GTID (`own_current`, its
/// `@@gtid_current_pos`) is `d-a-n`, the peer (`peer_current`, `peer_slave`: its
/// `@@gtid_current_pos` and `@@gtid_slave_pos`) holds everything of ours when its last
/// GTID in `d` is exactly `d-a-n`, or has a sequence `m ≥ n` and either came from the
/// same server `a` (it replicated from us past `n`) or its `gtid_slave_pos` in `d`
/// reaches `n` (it applied our `n`, then was promoted and wrote on its own). Otherwise
/// `d-a-(k+1)..d-a-n` is errant, `k` being the last sequence the peer provably has:
/// `m` when `m < n` and its last GTID came from `a`, else its `gtid_slave_pos` in `d`
/// (none: 0). A domain the peer lacks entirely is errant whole.
///
/// An unreadable position is an error naming it: the comparison cannot be made.
pub fn errant(
    own_current: &str,
    peer_current: &str,
    peer_slave: &str,
) -> Result<Vec<ErrantRange>, String> {
    let read = |what: &str, position: &str| {
        parse_gtids(position).ok_or_else(|| format!("{what} {position:?} is not a GTID position"))
    };
    let own = read("this host's @@gtid_current_pos", own_current)?;
    let current = read("the peer's @@gtid_current_pos", peer_current)?;
    let slave = read("the peer's @@gtid_slave_pos", peer_slave)?;
    let mut ranges = Vec::new();
    for (domain, ours) in own {
        let n = ours.sequence;
        let applied = slave.get(&domain).filter(|s| s.sequence >= n).is_some();
        let peer_has = match current.get(&domain) {
            Some(theirs) if *theirs == ours => continue,
            Some(theirs)
                if theirs.sequence >= n && (theirs.server_id == ours.server_id || applied) =>
            {
                continue;
            }
            Some(theirs) if theirs.sequence < n && theirs.server_id == ours.server_id => {
                Some(*theirs)
            }
            // The peer's own writes prove nothing of ours: only what it applied does,
            // and never more than it has.
            Some(theirs) => slave.get(&domain).map(|s| {
                if s.sequence > theirs.sequence {
                    *theirs
                } else {
                    *s
                }
            }),
            None => None,
        };
        let k = peer_has.map_or(0, |g| g.sequence);
        ranges.push(ErrantRange {
            domain,
            server_id: ours.server_id,
            first: k + 1,
            last: n,
            peer_has,
        });
    }
    Ok(ranges)
}

/// The binary log that holds the transaction with `sequence` in `domain`, from each
/// file's name and its starting position (`BINLOG_GTID_POS(file, 4)`), oldest first:
/// the last file that starts before it. `None` when even the oldest file starts past
/// it (purged) or there are no files.
pub fn binlog_file_holding(files: &[(String, String)], domain: u32, sequence: u64) -> Option<&str> {
    let mut holding = None;
    for (file, start) in files {
        let started_past = parse(start)
            .and_then(|start| start.get(&domain).copied())
            .is_some_and(|seq| seq >= sequence);
        if started_past {
            break;
        }
        holding = Some(file.as_str());
    }
    let purged = files.first().is_some_and(|(_, start)| {
        parse(start)
            .and_then(|start| start.get(&domain).copied())
            .is_some_and(|seq| seq >= sequence)
    });
    if purged { None } else { holding }
}

/// The GTID a `SHOW BINLOG EVENTS` row of type `Gtid` starts, from its `Info`
/// (`BEGIN GTID 0-1-6`, `GTID 0-1-7` for DDL, possibly followed by ` cid=…`).
pub fn gtid_of_event(info: &str) -> Option<Gtid> {
    let mut words = info.split_whitespace();
    words.find(|w| *w == "GTID")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_compare_per_domain() {
        assert!(covers("0-1-10", "0-1-10"));
        assert!(covers("0-1-11", "0-1-10"));
        assert!(!covers("0-1-9", "0-1-10"));
        assert!(covers("0-1-10,1-2-5", "1-2-5"));
        assert!(!covers("0-1-10", "0-1-10,1-2-5"), "a domain missing");
        assert!(covers("0-1-3", ""), "nothing wanted");
        assert!(!covers("", "0-1-1"));
        assert!(!covers("garbage", "0-1-1"));
        assert!(!covers("0-1-3", "0-1"));
    }

    #[test]
    fn parse_reads_every_domain() {
        let parsed = parse("0-1-2176, 1-5-12").unwrap();
        assert_eq!(parsed.get(&0), Some(&2176));
        assert_eq!(parsed.get(&1), Some(&12));
        assert_eq!(parse("").unwrap().len(), 0);
        assert!(parse("0-1-x").is_none());
        assert!(parse("0-1-2-3").is_none());
    }

    fn gtid(text: &str) -> Gtid {
        text.parse().unwrap()
    }

    fn ranges(own: &str, peer_current: &str, peer_slave: &str) -> Vec<String> {
        errant(own, peer_current, peer_slave)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_peer_that_has_exactly_our_last_transaction_lacks_nothing() {
        assert!(ranges("0-1-10", "0-1-10", "").is_empty(), "caught up");
        assert!(
            ranges("", "0-2-3", "0-1-0").is_empty(),
            "nothing of ours at all"
        );
    }

    #[test]
    fn a_peer_that_replicated_from_us_past_our_last_lacks_nothing() {
        // It took our 10, then more of ours (a later rejoin of the other way round).
        assert!(ranges("0-1-10", "0-1-12", "0-1-12").is_empty());
    }

    #[test]
    fn a_peer_behind_us_lacks_the_rest() {
        let found = errant("0-1-10", "0-1-8", "0-1-8").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].to_string(), "0-1-9..0-1-10");
        assert_eq!(found[0].first_gtid(), gtid("0-1-9"));
        assert_eq!(found[0].peer_has, Some(gtid("0-1-8")));
        assert_eq!(ranges("0-1-10", "0-1-9", ""), ["0-1-10"], "one transaction");
    }

    #[test]
    fn a_peer_that_applied_our_last_then_wrote_on_its_own_lacks_nothing() {
        assert!(ranges("0-1-10", "0-2-15", "0-1-10").is_empty());
    }

    #[test]
    fn a_peer_promoted_before_applying_our_last_lacks_them_even_when_it_wrote_more() {
        // Promoted after our 8; our 9 and 10 never reached it; it wrote 9..12 itself.
        let found = errant("0-1-10", "0-2-12", "0-1-8").unwrap();
        assert_eq!(found[0].to_string(), "0-1-9..0-1-10");
        assert_eq!(found[0].peer_has, Some(gtid("0-1-8")));
        // It wrote less than we have on its own: still only what it applied counts.
        assert_eq!(ranges("0-1-10", "0-2-9", "0-1-8"), ["0-1-9..0-1-10"]);
        // It never applied anything of ours in the domain: errant whole.
        assert_eq!(ranges("0-1-10", "0-2-12", ""), ["0-1-1..0-1-10"]);
    }

    #[test]
    fn a_domain_the_peer_lacks_is_errant_whole_and_the_others_are_judged_alone() {
        let found = errant("0-1-10,7-1-4", "0-1-10", "").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].to_string(), "7-1-1..7-1-4");
        assert_eq!(found[0].peer_has, None);
    }

    #[test]
    fn our_last_gtid_from_the_peer_is_judged_the_same_way() {
        // This host replicated the peer's 0-2-20 in an earlier cycle.
        assert!(ranges("0-2-20", "0-2-25", "").is_empty());
        assert_eq!(ranges("0-2-20", "0-2-18", ""), ["0-2-19..0-2-20"]);
    }

    #[test]
    fn an_unreadable_position_is_an_error_naming_it() {
        let error = errant("0-1-x", "0-1-1", "").unwrap_err();
        assert!(error.contains("this host's @@gtid_current_pos"), "{error}");
        assert!(
            errant("0-1-1", "", "junk")
                .unwrap_err()
                .contains("gtid_slave_pos")
        );
    }

    #[test]
    fn the_binlog_file_is_the_last_one_starting_before_the_transaction() {
        let files: Vec<(String, String)> = [
            ("mysql-bin.000001", ""),
            ("mysql-bin.000002", "0-1-5"),
            ("mysql-bin.000003", "0-1-9,1-1-2"),
        ]
        .iter()
        .map(|(f, s)| (f.to_string(), s.to_string()))
        .collect();
        assert_eq!(binlog_file_holding(&files, 0, 3), Some("mysql-bin.000001"));
        assert_eq!(binlog_file_holding(&files, 0, 6), Some("mysql-bin.000002"));
        assert_eq!(binlog_file_holding(&files, 0, 9), Some("mysql-bin.000002"));
        assert_eq!(binlog_file_holding(&files, 0, 10), Some("mysql-bin.000003"));
        assert_eq!(binlog_file_holding(&files, 1, 1), Some("mysql-bin.000002"));
        assert_eq!(binlog_file_holding(&files[1..], 0, 4), None, "purged");
        assert_eq!(binlog_file_holding(&[], 0, 4), None);
    }

    #[test]
    fn a_gtid_event_names_its_gtid() {
        assert_eq!(gtid_of_event("BEGIN GTID 0-1-6"), Some(gtid("0-1-6")));
        assert_eq!(gtid_of_event("GTID 2-3-7"), Some(gtid("2-3-7")));
        assert_eq!(
            gtid_of_event("BEGIN GTID 0-1-8 cid=42"),
            Some(gtid("0-1-8"))
        );
        assert_eq!(gtid_of_event("Server ver: 10.11"), None);
        assert_eq!(gtid_of_event("GTID"), None);
    }
}
