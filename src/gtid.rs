//! MariaDB GTID positions, compared. Pure.
//!
//! A position is a comma-separated list of `domain-server-sequence`, one per domain
//! (`0-1-2176,1-5-12`). With `gtid_strict_mode`, sequence numbers grow within a domain,
//! so position A *covers* position B when, for every domain in B, A has a sequence
//! number at least as high.

use std::collections::BTreeMap;

/// Sequence number by domain; `None` when the text is not a GTID position.
pub fn parse(position: &str) -> Option<BTreeMap<u32, u64>> {
    let mut domains = BTreeMap::new();
    for gtid in position.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let mut parts = gtid.split('-');
        let domain = parts.next()?.parse().ok()?;
        let _server: u32 = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        domains.insert(domain, sequence);
    }
    Some(domains)
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
    }
}
