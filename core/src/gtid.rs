//! MariaDB GTID positions, compared. Pure.
//!
//! A position ([`GtidPosition`]) is a comma-separated list of `domain-server-sequence`,
//! one per domain (`0-1-2176,1-5-12`). With `gtid_strict_mode`, sequence numbers grow
//! within a domain, so position A *covers* position B when, for every domain in B, A has
//! a sequence number at least as high.
//!
//! [`errant`] decides, for `rejoin`, which transactions a former primary has that its
//! peer lacks; [`binlog_file_holding`] and [`gtid_of_event`] read the answers of
//! `SHOW BINARY LOGS` / `BINLOG_GTID_POS` and `SHOW BINLOG EVENTS` to say where to read
//! them from; [`purged`] says what a replica needs that a primary's oldest binary log
//! starts past (replication would stop on error 1236).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// A GTID position: the last GTID of each domain, as MariaDB's `@@gtid_binlog_pos`,
/// `@@gtid_current_pos`, `@@gtid_slave_pos` and `Gtid_IO_Pos` give it
/// (`0-1-2176,1-5-12`; empty when nothing was ever written).
///
/// Made only by [`GtidPosition::parse`] (or from its GTIDs), so a position in hand is
/// always well-formed: a malformed text from a server or a file is an error naming it
/// where it is read, never a comparison quietly made on nothing. It is kept and sent
/// (files, SQL) in its canonical text ([`GtidPosition::canonical`]) and shown to people
/// with [`Display`](fmt::Display), which says `(empty)` for the empty position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidPosition {
    domains: BTreeMap<u32, Gtid>,
}

/// A text that is not a GTID position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a GTID position (domain-server-sequence, comma-separated)")]
pub struct NotAPosition {
    pub text: String,
}

impl GtidPosition {
    /// The empty position.
    pub fn empty() -> GtidPosition {
        GtidPosition::default()
    }

    /// Reads a position; spaces around each GTID are allowed, as MariaDB prints them.
    /// A domain named twice keeps its last GTID, as MariaDB does.
    pub fn parse(text: &str) -> Result<GtidPosition, NotAPosition> {
        let mut domains = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let gtid: Gtid = part.parse().map_err(|()| NotAPosition {
                text: text.to_string(),
            })?;
            domains.insert(gtid.domain, gtid);
        }
        Ok(GtidPosition { domains })
    }

    /// A position of these GTIDs (the last one of a domain wins).
    pub fn from_gtids(gtids: impl IntoIterator<Item = Gtid>) -> GtidPosition {
        GtidPosition {
            domains: gtids.into_iter().map(|g| (g.domain, g)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// The last GTID of `domain`, if the position has one.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.domains.get(&domain).copied()
    }

    /// Each domain's last GTID, by domain.
    pub fn gtids(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.domains.values().copied()
    }

    /// Whether this position holds everything in `want`: for every domain of `want`, a
    /// sequence number at least as high (with `gtid_strict_mode`, sequence numbers grow
    /// within a domain).
    pub fn covers(&self, want: &GtidPosition) -> bool {
        want.domains.iter().all(|(domain, w)| {
            self.domains
                .get(domain)
                .is_some_and(|h| h.sequence >= w.sequence)
        })
    }

    /// The text MariaDB reads and writes, `""` for the empty position: for SQL and files.
    pub fn canonical(&self) -> String {
        self.gtids()
            .map(|g| g.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for GtidPosition {
    /// The canonical text, or `(empty)`: an empty position shown as nothing reads as a
    /// value missing from the message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            f.write_str("(empty)")
        } else {
            f.write_str(&self.canonical())
        }
    }
}

impl std::str::FromStr for GtidPosition {
    type Err = NotAPosition;

    fn from_str(text: &str) -> Result<GtidPosition, NotAPosition> {
        GtidPosition::parse(text)
    }
}

impl Serialize for GtidPosition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.canonical())
    }
}

impl<'de> Deserialize<'de> for GtidPosition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GtidPosition::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Transactions of one domain that this host has and its peer lacks: sequence `first`
/// of the domain up to this host's last transaction there (`last`).
///
/// Only the last one's GTID is known from the positions: the transactions before it
/// may have come from other servers (this host replicated some, then wrote on its own),
/// so the first one's server id is what the binary log says ([`ErrantRange::shown`]),
/// never a guess.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrantRange {
    pub domain: u32,
    /// The sequence number of the range's first transaction.
    pub first: u64,
    /// This host's last transaction in the domain: the range's last.
    pub last: Gtid,
    /// The last GTID of the domain the peer provably has (what this host's
    /// `gtid_slave_pos` may be set to once the range is dealt with); `None` when the
    /// peer has nothing of it.
    pub peer_has: Option<Gtid>,
}

impl ErrantRange {
    /// The range's first transaction's sequence in its domain: where reading starts.
    pub fn first_sequence(&self) -> (u32, u64) {
        (self.domain, self.first)
    }

    /// The range with its first transaction's GTID as the binary log has it, when it
    /// was read (`first`): `0-1-6..0-2-9`. Without it, by sequence numbers: `0-2-9`
    /// alone, or `sequences 6..9 of domain 0, the last 0-2-9`.
    pub fn shown(&self, first: Option<Gtid>) -> String {
        let last = self.last;
        match first {
            _ if self.first == last.sequence => last.to_string(),
            Some(first) if first.domain == self.domain && first.sequence == self.first => {
                format!("{first}..{last}")
            }
            _ => format!(
                "sequences {}..{} of domain {}, the last {last}",
                self.first, last.sequence, self.domain
            ),
        }
    }
}

impl fmt::Display for ErrantRange {
    /// [`ErrantRange::shown`] without the binary log's word on the first transaction.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown(None))
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
pub fn errant(
    own_current: &GtidPosition,
    peer_current: &GtidPosition,
    peer_slave: &GtidPosition,
) -> Vec<ErrantRange> {
    let (current, slave) = (&peer_current.domains, &peer_slave.domains);
    let mut ranges = Vec::new();
    for (&domain, &ours) in &own_current.domains {
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
            first: k + 1,
            last: ours,
            peer_has,
        });
    }
    ranges
}

/// The binary log that holds the transaction with `sequence` in `domain`, from each
/// file's name and its starting position (`BINLOG_GTID_POS(file, 4)`), oldest first:
/// the last file that starts before it. `None` when even the oldest file starts past
/// it (purged) or there are no files.
pub fn binlog_file_holding(
    files: &[(String, GtidPosition)],
    (domain, sequence): (u32, u64),
) -> Option<&str> {
    let starts_past =
        |start: &GtidPosition| start.get(domain).is_some_and(|g| g.sequence >= sequence);
    if files.first().is_some_and(|(_, start)| starts_past(start)) {
        return None;
    }
    files
        .iter()
        .take_while(|(_, start)| !starts_past(start))
        .last()
        .map(|(file, _)| file.as_str())
}

/// A domain whose transactions a replica at some position needs and a primary no
/// longer has: its oldest binary log starts past them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub domain: u32,
    /// What the replica has of the domain (`None`: nothing).
    pub have: Option<Gtid>,
    /// Where the primary's oldest binary log starts in the domain: everything up to it
    /// is gone there.
    pub starts_after: Gtid,
}

/// The domains in which a replica at `have` (its `@@gtid_current_pos`) needs
/// transactions that a primary whose oldest binary log starts at `oldest_start`
/// (`BINLOG_GTID_POS(oldest, 4)`) purged: the replica's sequence there is below the
/// log's start, so the transactions in between exist in no binary log of the primary
/// and replication stops on MariaDB's error 1236.
pub fn purged(have: &GtidPosition, oldest_start: &GtidPosition) -> Vec<Purged> {
    oldest_start
        .gtids()
        .filter(|start| {
            have.get(start.domain)
                .is_none_or(|h| h.sequence < start.sequence)
        })
        .map(|start| Purged {
            domain: start.domain,
            have: have.get(start.domain),
            starts_after: start,
        })
        .collect()
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

    fn pos(text: &str) -> GtidPosition {
        GtidPosition::parse(text).unwrap()
    }

    fn covers(have: &str, want: &str) -> bool {
        pos(have).covers(&pos(want))
    }

    #[test]
    fn positions_compare_per_domain() {
        assert!(covers("0-1-10", "0-1-10"));
        assert!(covers("0-1-11", "0-1-10"));
        assert!(!covers("0-1-9", "0-1-10"));
        assert!(covers("0-1-10,1-2-5", "1-2-5"));
        assert!(!covers("0-1-10", "0-1-10,1-2-5"), "a domain missing");
        assert!(covers("0-1-3", ""), "nothing wanted");
        assert!(!covers("", "0-1-1"));
    }

    #[test]
    fn parse_reads_every_domain_and_refuses_what_is_not_a_position() {
        let parsed = pos("0-1-2176, 1-5-12");
        assert_eq!(parsed.get(0).map(|g| g.sequence), Some(2176));
        assert_eq!(parsed.get(1).map(|g| g.server_id), Some(5));
        assert_eq!(parsed.canonical(), "0-1-2176,1-5-12");
        assert!(pos("").is_empty());
        for bad in ["0-1-x", "0-1-2-3", "garbage", "0-1", "-1-2-3"] {
            let error = GtidPosition::parse(bad).unwrap_err();
            assert_eq!(error.text, bad);
            assert!(
                error.to_string().contains("is not a GTID position"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_position_shows_empty_as_such_and_round_trips_as_its_text() {
        assert_eq!(pos("").to_string(), "(empty)");
        assert_eq!(pos("").canonical(), "");
        assert_eq!(pos(" 0-1-5 ,2-3-4").to_string(), "0-1-5,2-3-4");
        let json = serde_json::to_string(&pos("0-1-5")).unwrap();
        assert_eq!(json, "\"0-1-5\"");
        assert_eq!(
            serde_json::from_str::<GtidPosition>(&json).unwrap(),
            pos("0-1-5")
        );
        let refused = serde_json::from_str::<GtidPosition>("\"0-1-five\"").unwrap_err();
        assert!(
            refused.to_string().contains("is not a GTID position"),
            "{refused}"
        );
    }

    fn gtid(text: &str) -> Gtid {
        text.parse().unwrap()
    }

    fn errant(own: &str, peer_current: &str, peer_slave: &str) -> Vec<ErrantRange> {
        super::errant(&pos(own), &pos(peer_current), &pos(peer_slave))
    }

    /// Each range as `domain:first..last`.
    fn ranges(own: &str, peer_current: &str, peer_slave: &str) -> Vec<String> {
        errant(own, peer_current, peer_slave)
            .iter()
            .map(|r| format!("{}:{}..{}", r.domain, r.first, r.last))
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
        let found = errant("0-1-10", "0-1-8", "0-1-8");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "sequences 9..10 of domain 0, the last 0-1-10"
        );
        assert_eq!(found[0].shown(Some(gtid("0-1-9"))), "0-1-9..0-1-10");
        assert_eq!(found[0].first_sequence(), (0, 9));
        assert_eq!(found[0].peer_has, Some(gtid("0-1-8")));
        assert_eq!(
            ranges("0-1-10", "0-1-9", ""),
            ["0:10..0-1-10"],
            "one transaction"
        );
    }

    #[test]
    fn a_peer_that_applied_our_last_then_wrote_on_its_own_lacks_nothing() {
        assert!(ranges("0-1-10", "0-2-15", "0-1-10").is_empty());
    }

    #[test]
    fn a_peer_promoted_before_applying_our_last_lacks_them_even_when_it_wrote_more() {
        // Promoted after our 8; our 9 and 10 never reached it; it wrote 9..12 itself.
        let found = errant("0-1-10", "0-2-12", "0-1-8");
        assert_eq!(found[0].shown(Some(gtid("0-1-9"))), "0-1-9..0-1-10");
        assert_eq!(found[0].peer_has, Some(gtid("0-1-8")));
        // It wrote less than we have on its own: still only what it applied counts.
        assert_eq!(ranges("0-1-10", "0-2-9", "0-1-8"), ["0:9..0-1-10"]);
        // It never applied anything of ours in the domain: errant whole.
        assert_eq!(ranges("0-1-10", "0-2-12", ""), ["0:1..0-1-10"]);
    }

    #[test]
    fn a_domain_the_peer_lacks_is_errant_whole_and_the_others_are_judged_alone() {
        let found = errant("0-1-10,7-1-4", "0-1-10", "");
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "sequences 1..4 of domain 7, the last 7-1-4"
        );
        assert_eq!(found[0].peer_has, None);
    }

    #[test]
    fn our_last_gtid_from_the_peer_is_judged_the_same_way() {
        // This host replicated the peer's 0-2-20 in an earlier cycle.
        assert!(ranges("0-2-20", "0-2-25", "").is_empty());
        assert_eq!(ranges("0-2-20", "0-2-18", ""), ["0:19..0-2-20"]);
    }

    #[test]
    fn the_binlog_file_is_the_last_one_starting_before_the_transaction() {
        let files: Vec<(String, GtidPosition)> = [
            ("mysql-bin.000001", ""),
            ("mysql-bin.000002", "0-1-5"),
            ("mysql-bin.000003", "0-1-9,1-1-2"),
        ]
        .iter()
        .map(|(f, s)| (f.to_string(), pos(s)))
        .collect();
        let holding = |files: &[(String, GtidPosition)], g: &str| {
            let g = gtid(g);
            binlog_file_holding(files, (g.domain, g.sequence)).map(str::to_string)
        };
        let file = |name: &str| Some(name.to_string());
        assert_eq!(holding(&files, "0-1-3"), file("mysql-bin.000001"));
        assert_eq!(holding(&files, "0-1-6"), file("mysql-bin.000002"));
        assert_eq!(holding(&files, "0-1-9"), file("mysql-bin.000002"));
        assert_eq!(holding(&files, "0-1-10"), file("mysql-bin.000003"));
        assert_eq!(holding(&files, "1-1-1"), file("mysql-bin.000002"));
        assert_eq!(holding(&files[1..], "0-1-4"), None, "purged");
        assert_eq!(holding(&[], "0-1-4"), None);
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

    /// Issue 18, item 4: the errant-range text named GTIDs that never existed
    /// (`0-2-1..0-2-6` for transactions some of which came from server 1), taking this
    /// host's last transaction's server id for the whole range.
    #[test]
    fn an_errant_range_names_no_gtid_it_does_not_know() {
        // This host replicated 0-1-1.. from server 1, then wrote 0-2-6 itself; the
        // peer wrote on its own and applied nothing of the domain.
        let found = errant("0-2-6", "0-3-10", "");
        assert_eq!(found.len(), 1);
        let shown = found[0].to_string();
        assert_eq!(shown, "sequences 1..6 of domain 0, the last 0-2-6");
        assert!(!shown.contains("0-2-1"), "{shown}");
        // Once the binary log says what the first one is, it is named.
        assert_eq!(found[0].shown(Some(gtid("0-1-1"))), "0-1-1..0-2-6");
        // A GTID of another place in the domain is not taken for it.
        assert_eq!(
            found[0].shown(Some(gtid("0-1-2"))),
            "sequences 1..6 of domain 0, the last 0-2-6"
        );
    }

    /// Issue 18, item 13: a replica needs what the primary's oldest binary log starts
    /// past.
    #[test]
    fn a_replica_below_the_oldest_binary_log_needs_purged_transactions() {
        assert!(
            purged(&pos("0-1-10"), &pos("0-1-10")).is_empty(),
            "at the start"
        );
        assert!(purged(&pos("0-1-12"), &pos("0-1-10")).is_empty());
        assert!(purged(&pos("0-1-5"), &pos("")).is_empty(), "all logs kept");
        let gone = purged(&pos("0-1-5,1-2-3"), &pos("0-2-9,1-2-3"));
        assert_eq!(
            gone,
            [Purged {
                domain: 0,
                have: Some(gtid("0-1-5")),
                starts_after: gtid("0-2-9"),
            }]
        );
        let nothing = purged(&pos(""), &pos("4-1-2"));
        assert_eq!(nothing[0].have, None, "a domain the replica never had");
    }
}
