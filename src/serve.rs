//! The HTTP serving that the witness (`witness/server.rs`) and the metrics endpoint
//! (`metrics.rs`) share: what any client may cost a listener, token or not.
//!
//! Each listener speaks HTTP/1.1 through hyper, optionally inside TLS ([`tls`]), and
//! hands every request to its [`Handler`]. Around it:
//! - **The connection cap.** At most `max_connections` are open at once, a slot taken
//!   *before* `accept`, so the cap bounds the descriptors the listener holds. The cap is
//!   lowered to what the process's open-file limit allows ([`connection_cap`], read with
//!   `getrlimit` when the listener starts, and logged), so the last slot never waits for a
//!   descriptor `accept` cannot have.
//! - **Making room.** When a connection takes the last slot, or its client (an IPv4
//!   address, an IPv6 /64) then holds more than `per_client`, the connection that has
//!   sent the least of its request for the longest is dropped ([`table`]): a flood of
//!   half-sent requests gives way to a request whose head is complete, within
//!   milliseconds, instead of after the header timeout. A connection whose request is
//!   being answered is never dropped for this.
//! - **Timeouts.** A client has `header_timeout` to send its request head (hyper's
//!   header read timeout, which also ends a kept-alive connection idle that long; with
//!   TLS the handshake gets the same time), and `write_timeout` to read each answer
//!   ([`io`]): a client that stops reading cannot hold a connection, nor keep a fresh
//!   request out.
//! - **Head cap.** A head is read into at most [`MAX_HEAD`] bytes; beyond, 431.
//! - **Failed `accept`s** (out of descriptors, say) are tried again after a pause that
//!   grows to a second, and told when a run of them starts and ends, at most every ten
//!   seconds.
//! - **Shutdown.** When `shutdown` resolves the listener stops accepting. A connection
//!   with no request being answered (idle, or still sending its head) is closed at once;
//!   one being answered has the caller's grace, then is closed too.
//!
//! [`bearer_matches`] is the token check both listeners use, in constant time.

mod io;
pub mod table;
pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::io::Guarded;
use self::table::{Admission, Table, Ticket};
use crate::secret::Secret;

/// The buffer a request head is read into (hyper's smallest): a standby's or a
/// scraper's head is a few hundred bytes, a proxy's a little more. A longer head is
/// answered 431 and dropped.
pub const MAX_HEAD: usize = 8 * 1024;

/// Descriptors kept for everything else the process opens (its standard streams, the
/// runtime, the listeners, the checks' and the database's connections, files): half the
/// open-file limit, at most this many.
pub const KEPT_DESCRIPTORS: u64 = 32;

/// The first pause after a failed `accept`; it doubles up to [`ACCEPT_PAUSE_MAX`].
const ACCEPT_PAUSE_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Failed `accept`s are told at most this often, however many runs of them there are.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, before [`connection_cap`] fits it to the descriptors.
    pub max_connections: u32,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold before its own
    /// stalest is dropped for a new one.
    pub per_client: u32,
    /// For the request head (and the TLS handshake); also how long a kept-alive
    /// connection may sit idle.
    pub header_timeout: Duration,
    /// For the client to read an answer.
    pub write_timeout: Duration,
}

/// How a listener serves, besides its handler.
pub struct Options {
    /// Names the listener in the log: `witness`, `metrics`.
    pub what: &'static str,
    pub limits: Limits,
    /// TLS around every connection, when configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Descriptors another listener of this process may hold (the witness's metrics
    /// endpoint), kept out of this one's cap.
    pub descriptors_elsewhere: u64,
    /// How long requests being answered at shutdown have before their connections close.
    pub grace: Duration,
}

/// What answers a listener's requests.
pub trait Handler: Send + Sync + 'static {
    /// The answer to `request`, from the client at `peer`.
    fn respond(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// What every connection of one listener shares.
struct Shared<H> {
    handler: H,
    what: &'static str,
    /// hyper's connection settings: the header timeout and the head's buffer.
    http: http1::Builder,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    table: Arc<Table>,
}

/// The process's open-file limit (`RLIMIT_NOFILE`, the soft one), or `None` when it has
/// none or it cannot be read.
pub fn descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we own and reads nothing else.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (read == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// `wanted` connections, lowered to what an open-file `limit` allows once
/// [`KEPT_DESCRIPTORS`] (at most half the limit) and `elsewhere` are kept for the rest
/// of the process; at least 1.
pub fn connection_cap(wanted: u32, limit: Option<u64>, elsewhere: u64) -> u32 {
    let Some(limit) = limit else {
        return wanted;
    };
    let kept = (limit / 2).min(KEPT_DESCRIPTORS) + elsewhere;
    let room = limit.saturating_sub(kept).max(1);
    wanted.min(u32::try_from(room).unwrap_or(u32::MAX))
}

/// `Authorization: Bearer <token>`, compared in constant time.
pub fn bearer_matches(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, offered)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(offered.trim().as_bytes().ct_eq(token.expose().as_bytes()))
}

/// Serves `handler` on `listener` within `options` until `shutdown` resolves; requests
/// being answered then have the grace.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    options: Options,
    shutdown: impl Future<Output = ()>,
) {
    let limits = options.limits;
    let limit = descriptor_limit();
    let cap = connection_cap(limits.max_connections, limit, options.descriptors_elsewhere);
    tracing::info!(
        "{}: at most {cap} connections at once, {} per client (open-file limit: {}{})",
        options.what,
        limits.per_client,
        limit.map_or("none".to_string(), |l| l.to_string()),
        if cap < limits.max_connections {
            format!("; {} asked for", limits.max_connections)
        } else {
            String::new()
        }
    );
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD);
    let shared = Arc::new(Shared {
        handler,
        what: options.what,
        http,
        tls: options.tls,
        limits,
        table: Arc::new(Table::new(limits.per_client)),
    });
    let slots = Arc::new(Semaphore::new(
        usize::try_from(cap)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS),
    ));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    accept_until(
        &listener,
        &shared,
        &slots,
        &stopped,
        &mut connections,
        shutdown,
    )
    .await;
    // Connections still in the backlog are refused from here on.
    drop(listener);
    stop.send_replace(true);
    drain(connections, options.grace, options.what).await;
}

/// The accept loop: each connection admitted (making room as it must) and served on
/// a task of its own, until `shutdown` resolves.
async fn accept_until<H: Handler>(
    listener: &TcpListener,
    shared: &Arc<Shared<H>>,
    slots: &Arc<Semaphore>,
    stopped: &watch::Receiver<bool>,
    connections: &mut JoinSet<()>,
    shutdown: impl Future<Output = ()>,
) {
    let mut failures = AcceptFailures::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Some((slot, accepted)) = next_connection(listener, slots, shutdown.as_mut()).await
        else {
            return;
        };
        match accepted {
            Ok((stream, peer)) => {
                failures.accepted(shared.what);
                let full = slots.available_permits() == 0;
                admit(shared, connections, stopped, (stream, peer, slot), full);
            }
            // The client gave up before we took its connection: nothing to wait for.
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                let pause = failures.failed(&e, shared.what);
                tokio::select! {
                    biased;
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        while let Some(ended) = connections.try_join_next() {
            log_panic(ended, shared.what);
        }
    }
}

/// Takes a new connection in, and drops the connections the table says must make room
/// for it (or the newcomer itself, when its client is over its share and has nothing
/// else to give up).
fn admit<H: Handler>(
    shared: &Arc<Shared<H>>,
    connections: &mut JoinSet<()>,
    stopped: &watch::Receiver<bool>,
    (stream, peer, slot): (TcpStream, SocketAddr, OwnedSemaphorePermit),
    full: bool,
) {
    match Table::admit(&shared.table, peer.ip(), full, Instant::now()) {
        Admission::Refused => {
            tracing::debug!(
                "{}: closed a connection from {peer}: its client holds its share, each connection answering",
                shared.what
            );
        }
        Admission::Admitted { ticket, evicted } => {
            let id = ticket.id();
            let task = connections.spawn(serve_connection(
                shared.clone(),
                stream,
                peer,
                stopped.clone(),
                slot,
                ticket,
            ));
            shared.table.set_abort(id, task);
            for victim in evicted {
                victim.abort();
            }
        }
    }
}

/// A slot under the connection cap, then the next connection, or `None` once
/// `shutdown` resolves (or the cap is closed). The slot comes first: beyond the cap,
/// connections wait in the kernel's backlog, costing no descriptor.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Option<(
    OwnedSemaphorePermit,
    std::io::Result<(TcpStream, SocketAddr)>,
)> {
    let slot = tokio::select! {
        biased;
        () = &mut shutdown => return None,
        slot = slots.clone().acquire_owned() => slot.ok()?,
    };
    tokio::select! {
        biased;
        () = &mut shutdown => None,
        accepted = listener.accept() => Some((slot, accepted)),
    }
}

/// The connections still open at shutdown: those being answered have `grace`, then
/// every one is closed.
async fn drain(mut connections: JoinSet<()>, grace: Duration, what: &str) {
    let drained = tokio::time::timeout(grace, async {
        while let Some(ended) = connections.join_next().await {
            log_panic(ended, what);
        }
    })
    .await;
    if drained.is_err() && !connections.is_empty() {
        if !grace.is_zero() {
            tracing::warn!(
                "{what}: closing {} connection(s) whose requests were not answered within {}",
                connections.len(),
                humantime::format_duration(grace)
            );
        }
        connections.shutdown().await;
    }
}

/// One connection, until it ends, is dropped to make room, or the listener stops.
async fn serve_connection<H: Handler>(
    shared: Arc<Shared<H>>,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
    ticket: Ticket,
) {
    let progress = ticket.progress();
    let io = Guarded::new(stream, progress.clone(), shared.limits.write_timeout);
    // The handshake is no request: stopping closes it at once.
    let io = tokio::select! {
        io = open(&shared, io, peer) => match io {
            Some(io) => io,
            None => return,
        },
        _ = stopped.wait_for(|stopped| *stopped) => return,
    };
    let service = {
        let shared = shared.clone();
        let progress = progress.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let shared = shared.clone();
            let answering = progress.answering();
            async move {
                let response = shared.handler.respond(request, peer).await;
                drop(answering);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = shared.http.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => {
            if let Err(e) = ended {
                // A header or write timeout, a client gone: routine, and a flood would
                // fill the log.
                tracing::debug!("{}: connection from {peer} ended: {e}", shared.what);
            }
            return;
        }
        _ = stopped.wait_for(|stopped| *stopped) => {}
    }
    // Stopping: a connection with nothing to answer (idle, or still sending its head) is
    // closed now; a request being answered is answered first, within the grace.
    if !progress.is_answering() {
        return;
    }
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        tracing::debug!("{}: connection from {peer} ended: {e}", shared.what);
    }
}

/// What hyper reads and writes: the guarded stream, inside TLS when configured.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for S {}

/// The connection as hyper will speak on it: plain, or once the TLS handshake is done
/// within the header timeout. `None` when the handshake fails or runs out.
async fn open<H>(
    shared: &Shared<H>,
    io: Guarded<TcpStream>,
    peer: SocketAddr,
) -> Option<Box<dyn Stream>> {
    let Some(acceptor) = &shared.tls else {
        return Some(Box::new(io));
    };
    match tokio::time::timeout(shared.limits.header_timeout, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(Box::new(tls)),
        Ok(Err(e)) => {
            tracing::debug!("{}: TLS handshake with {peer} failed: {e}", shared.what);
            None
        }
        Err(_) => {
            tracing::debug!(
                "{}: no TLS handshake from {peer} within {}",
                shared.what,
                humantime::format_duration(shared.limits.header_timeout)
            );
            None
        }
    }
}

/// `accept` failures that are the client's (it reset before we took the connection);
/// any other (out of descriptors, out of memory) is ours, and passes with time.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

fn log_panic(ended: Result<(), tokio::task::JoinError>, what: &str) {
    if let Err(e) = ended
        && e.is_panic()
    {
        tracing::error!("a {what} connection panicked: {e}");
    }
}

/// Failed `accept`s (out of descriptors, say): a pause between tries that grows with
/// the failures in a row, so the loop does not spin, and a line when a run of them
/// starts and one when it ends, at most every [`ACCEPT_WARN_EVERY`]: descriptors freed
/// one at a time would otherwise start and end a run per connection.
#[derive(Debug, Default)]
struct AcceptFailures {
    in_a_row: u32,
    /// When the run began.
    since: Option<Instant>,
    /// Whether this run was told (so its end is too).
    told: bool,
    last_told: Option<Instant>,
}

impl AcceptFailures {
    /// Records a failure; returns how long to pause before the next try.
    fn failed(&mut self, e: &std::io::Error, what: &str) -> Duration {
        let now = Instant::now();
        if self.in_a_row == 0 {
            self.since = Some(now);
        }
        self.in_a_row = self.in_a_row.saturating_add(1);
        if !self.told
            && self
                .last_told
                .is_none_or(|at| now.saturating_duration_since(at) >= ACCEPT_WARN_EVERY)
        {
            tracing::warn!(
                "{what}: cannot accept connections: {e}; trying again with pauses of up to {}",
                humantime::format_duration(ACCEPT_PAUSE_MAX)
            );
            self.told = true;
            self.last_told = Some(now);
        }
        let doublings = (self.in_a_row - 1).min(16);
        (ACCEPT_PAUSE_FIRST * 2u32.pow(doublings)).min(ACCEPT_PAUSE_MAX)
    }

    /// A connection was accepted: the run, if any, is over.
    fn accepted(&mut self, what: &str) {
        if self.in_a_row > 0 && self.told {
            let lasted = self.since.map(|since| since.elapsed()).unwrap_or_default();
            tracing::warn!(
                "{what}: accepting connections again after {} failed tries in {} ms",
                self.in_a_row,
                lasted.as_millis()
            );
        }
        self.in_a_row = 0;
        self.told = false;
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod testing;
