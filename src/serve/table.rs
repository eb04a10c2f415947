//! The open connections of one listener, and which one gives way when room is needed.
//!
//! Each connection's [`Progress`] says how much of its current request it has sent
//! since that request began (the connection was accepted, or its last answer was
//! given), and whether a request is being answered. When a new connection takes the
//! last slot, or its client then holds more than its share, the connection that has
//! sent the least of its request for the longest is dropped: the one with the fewest
//! bytes per second of waiting, `(bytes + 64) / seconds`. The 64 is a request line's
//! worth: whether a few bytes have been read yet counts for little against time, so a
//! half-sent request line ages into the first to go, and a connection accepted a moment
//! ago (whose head may not have been read yet) outlasts it. A request that arrived whole
//! is being answered and is never dropped, nor is the newcomer itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Bytes that count for nothing in a connection's pace: a request line's worth.
const SLACK: f64 = 64.0;

/// Evictions are told at most this often: a flood would otherwise log a line per
/// connection.
const EVICTION_WARN_EVERY: Duration = Duration::from_secs(10);

/// Who counts as one client: for a listener's share, and the witness's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    V4(Ipv4Addr),
    /// An IPv6 /64: one host is given a whole one, so its addresses are one client.
    V6(u64),
    /// The witness's rate limit: the clients beyond the ones it tracks, together.
    Crowd,
}

impl Client {
    pub fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::V4(v4) => write!(f, "{v4}"),
            Client::V6(prefix) => {
                let network = std::net::Ipv6Addr::from(u128::from(*prefix) << 64);
                write!(f, "{network}/64")
            }
            Client::Crowd => f.write_str("the untracked clients"),
        }
    }
}

/// How far one connection is with its current request. Updated by the connection's
/// task (bytes read, an answer begun and given), read by the accept loop.
#[derive(Debug)]
pub struct Progress {
    /// The listener's clock: `since` is counted from it.
    epoch: Instant,
    /// Bytes received since the current request began.
    bytes: AtomicU64,
    /// When the current request began, in microseconds after `epoch`.
    since: AtomicU64,
    /// A request is being answered.
    answering: AtomicBool,
}

impl Progress {
    fn new(epoch: Instant, now: Instant) -> Self {
        Self {
            epoch,
            bytes: AtomicU64::new(0),
            since: AtomicU64::new(micros(epoch, now)),
            answering: AtomicBool::new(false),
        }
    }

    /// `n` more bytes arrived.
    pub fn received(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A request's head is complete and its answer begins: the connection may not be
    /// dropped until the returned guard is.
    pub fn answering(self: &Arc<Self>) -> Answering {
        self.answering.store(true, Ordering::Release);
        Answering(self.clone())
    }

    pub fn is_answering(&self) -> bool {
        self.answering.load(Ordering::Acquire)
    }

    /// How little this connection has sent for how long: lower gives way first.
    /// `None` while a request is being answered.
    fn pace(&self, now: Instant) -> Option<f64> {
        if self.is_answering() {
            return None;
        }
        let bytes = self.bytes.load(Ordering::Relaxed);
        let waited = micros(self.epoch, now).saturating_sub(self.since.load(Ordering::Relaxed));
        Some((bytes as f64 + SLACK) / (waited.max(1) as f64 / 1e6))
    }
}

/// An answer under way; dropped once it is given, when the connection's next request
/// begins.
pub struct Answering(Arc<Progress>);

impl Drop for Answering {
    fn drop(&mut self) {
        let progress = &self.0;
        progress.bytes.store(0, Ordering::Relaxed);
        progress
            .since
            .store(micros(progress.epoch, Instant::now()), Ordering::Relaxed);
        progress.answering.store(false, Ordering::Release);
    }
}

fn micros(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

/// The open connections.
pub struct Table {
    epoch: Instant,
    per_client: u32,
    /// A std mutex: held for a scan of at most the cap's entries, never across an await.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
    evictions: Evictions,
}

struct Entry {
    client: Client,
    progress: Arc<Progress>,
    /// Set once its task is spawned.
    task: Option<AbortHandle>,
}

/// What the accept loop does with a new connection.
pub enum Admission {
    /// Serve it, and drop these to make room.
    Admitted {
        ticket: Ticket,
        evicted: Vec<AbortHandle>,
    },
    /// Close it: its client is over its share and every other connection it holds is
    /// being answered.
    Refused,
}

/// A connection's place in the table, given up when its task ends.
pub struct Ticket {
    table: Arc<Table>,
    id: u64,
    progress: Arc<Progress>,
}

impl Ticket {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.table.lock().open.remove(&self.id);
    }
}

impl Table {
    pub fn new(per_client: u32) -> Self {
        Self {
            epoch: Instant::now(),
            per_client: per_client.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in a connection from `ip` at `now`; `full` when it took the last slot.
    pub fn admit(table: &Arc<Table>, ip: IpAddr, full: bool, now: Instant) -> Admission {
        let client = Client::of(ip);
        let mut inner = table.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let progress = Arc::new(Progress::new(table.epoch, now));
        inner.open.insert(
            id,
            Entry {
                client,
                progress: progress.clone(),
                task: None,
            },
        );
        let held = inner.open.values().filter(|e| e.client == client).count();
        let mut evicted = Vec::new();
        if held > table.per_client as usize {
            match inner.stalest(now, |other, entry| other != id && entry.client == client) {
                Some(victim) => evicted.extend(inner.evict(victim, now, || {
                    format!("{client} holds more than its share of {}", table.per_client)
                })),
                None => {
                    inner.open.remove(&id);
                    return Admission::Refused;
                }
            }
        }
        if full
            && evicted.is_empty()
            && let Some(victim) = inner.stalest(now, |other, _| other != id)
        {
            evicted.extend(inner.evict(victim, now, || "all connections are open".to_string()));
        }
        drop(inner);
        Admission::Admitted {
            ticket: Ticket {
                table: table.clone(),
                id,
                progress,
            },
            evicted,
        }
    }

    /// The task serving connection `id`, so that it can be dropped to make room.
    pub fn set_abort(&self, id: u64, task: AbortHandle) {
        if let Some(entry) = self.lock().open.get_mut(&id) {
            entry.task = Some(task);
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open_now(&self) -> usize {
        self.lock().open.len()
    }
}

impl Inner {
    /// Among the connections `eligible` lets through, the one that has sent the least
    /// of its request for the longest; none being answered.
    fn stalest(&self, now: Instant, eligible: impl Fn(u64, &Entry) -> bool) -> Option<u64> {
        self.open
            .iter()
            .filter(|(id, entry)| eligible(**id, entry))
            .filter_map(|(id, entry)| Some((*id, entry.progress.pace(now)?)))
            .min_by(|(a_id, a), (b_id, b)| a.total_cmp(b).then(a_id.cmp(b_id)))
            .map(|(id, _)| id)
    }

    /// Takes `victim` out of the table; its task, to abort.
    fn evict(
        &mut self,
        victim: u64,
        now: Instant,
        why: impl FnOnce() -> String,
    ) -> Option<AbortHandle> {
        let entry = self.open.remove(&victim)?;
        self.evictions.count(now, why);
        entry.task
    }
}

/// Evictions counted, and told at most every [`EVICTION_WARN_EVERY`].
#[derive(Default)]
struct Evictions {
    total: u64,
    last_told: Option<Instant>,
}

impl Evictions {
    fn count(&mut self, now: Instant, why: impl FnOnce() -> String) {
        self.total += 1;
        if self
            .last_told
            .is_none_or(|at| now.saturating_duration_since(at) >= EVICTION_WARN_EVERY)
        {
            tracing::warn!(
                "making room: {}; dropped the connection that sent the least of its request for the longest ({} dropped so far)",
                why(),
                self.total
            );
            self.last_told = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn admitted(admission: Admission) -> (Ticket, Vec<AbortHandle>) {
        match admission {
            Admission::Admitted { ticket, evicted } => (ticket, evicted),
            Admission::Refused => panic!("refused"),
        }
    }

    /// A connection at `at` that has sent `bytes` of its request.
    fn open(table: &Arc<Table>, last: u8, at: Instant, bytes: usize) -> Ticket {
        let (ticket, evicted) = admitted(Table::admit(table, ip(last), false, at));
        assert!(evicted.is_empty());
        ticket.progress().received(bytes);
        ticket
    }

    fn ids(table: &Table) -> Vec<u64> {
        let mut ids: Vec<u64> = table.lock().open.keys().copied().collect();
        ids.sort();
        ids
    }

    /// A host has a whole IPv6 /64: changing the address within it is the same client;
    /// an IPv4 address written as IPv6 is that IPv4 client.
    #[test]
    fn one_client_is_an_ipv4_address_or_an_ipv6_64() {
        use std::net::Ipv6Addr;
        let in_64 = |last: u16| IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, last));
        assert_eq!(Client::of(in_64(1)), Client::of(in_64(2)));
        assert_ne!(
            Client::of(in_64(1)),
            Client::of(IpAddr::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)))
        );
        let v4 = Ipv4Addr::new(203, 0, 113, 7);
        assert_eq!(
            Client::of(IpAddr::from(v4.to_ipv6_mapped())),
            Client::of(IpAddr::from(v4))
        );
        assert_eq!(Client::of(in_64(9)).to_string(), "2001:db8:0:1::/64");
    }

    /// Over its share, a client's own stalest connection goes: the one that sent the
    /// least for the longest, not another client's, not the newcomer.
    #[tokio::test(start_paused = true)]
    async fn a_client_over_its_share_loses_its_own_stalest_connection() {
        let table = Arc::new(Table::new(3));
        let t0 = Instant::now();
        let other = open(&table, 2, t0, 0);
        let oldest_half = open(&table, 1, t0 + Duration::from_secs(1), 26);
        let newer_half = open(&table, 1, t0 + Duration::from_secs(2), 26);
        let more_sent = open(&table, 1, t0 + Duration::from_secs(1), 600);
        // Nobody is over: nothing goes.
        assert_eq!(table.open_now(), 4);
        let now = t0 + Duration::from_secs(3);
        let (newcomer, evicted) = admitted(Table::admit(&table, ip(1), false, now));
        assert_eq!(evicted.len(), 0, "no task was set for the victim");
        let left = ids(&table);
        assert!(!left.contains(&oldest_half.id()), "{left:?}");
        for kept in [&other, &newer_half, &more_sent, &newcomer] {
            assert!(left.contains(&kept.id()), "{left:?}");
        }
    }

    /// At the last slot, the stalest connection of any client goes; a connection whose
    /// request is being answered never does, however long it takes.
    #[tokio::test(start_paused = true)]
    async fn at_the_last_slot_the_stalest_goes_but_never_one_being_answered() {
        let table = Arc::new(Table::new(100));
        let t0 = Instant::now();
        let answering = open(&table, 1, t0, 0);
        let guard = answering.progress().answering();
        let silent = open(&table, 2, t0 + Duration::from_secs(1), 0);
        let half = open(&table, 3, t0, 26);
        let now = t0 + Duration::from_secs(10);
        // The silent one: nothing in 9 s is slower than a request line in 10 s.
        let (_newcomer, _) = admitted(Table::admit(&table, ip(4), true, now));
        let left = ids(&table);
        assert!(!left.contains(&silent.id()), "{left:?}");
        assert!(left.contains(&half.id()) && left.contains(&answering.id()));
        let (_next, _) = admitted(Table::admit(&table, ip(5), true, now));
        assert!(!ids(&table).contains(&half.id()));
        // Its answer given, it is an idle connection like any other.
        drop(guard);
        let later = now + Duration::from_secs(30);
        let (_last, _) = admitted(Table::admit(&table, ip(6), true, later));
        assert!(!ids(&table).contains(&answering.id()));
    }

    /// A client whose every other connection is being answered cannot make room: its
    /// newcomer is refused instead.
    #[tokio::test(start_paused = true)]
    async fn a_client_with_nothing_to_give_up_is_refused() {
        let table = Arc::new(Table::new(1));
        let t0 = Instant::now();
        let busy = open(&table, 1, t0, 40);
        let _guard = busy.progress().answering();
        assert!(matches!(
            Table::admit(&table, ip(1), false, t0 + Duration::from_secs(5)),
            Admission::Refused
        ));
        assert_eq!(ids(&table), vec![busy.id()]);
        // A ticket dropped (its task ended) leaves the table.
        drop(busy);
        assert_eq!(table.open_now(), 0);
    }

    /// A newcomer's nothing-sent-yet is no reason to drop it: an old half-sent request
    /// goes before a connection accepted a moment ago.
    #[tokio::test(start_paused = true)]
    async fn a_connection_accepted_a_moment_ago_outlasts_an_old_half_sent_one() {
        let table = Arc::new(Table::new(100));
        let t0 = Instant::now();
        let half = open(&table, 1, t0, 26);
        let now = t0 + Duration::from_secs(2);
        let fresh = open(&table, 2, now, 0);
        let (_newcomer, _) = admitted(Table::admit(
            &table,
            ip(3),
            true,
            now + Duration::from_millis(1),
        ));
        let left = ids(&table);
        assert!(!left.contains(&half.id()) && left.contains(&fresh.id()));
    }
}
