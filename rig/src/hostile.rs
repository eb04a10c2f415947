//! Answers no honest server gives, for testing how far a client lets a server take it:
//! an endless body, a body of an announced size, a redirect to another port. The
//! stand-ins answer with them in their hostile modes ([`endless_body`], [`redirect_to`]);
//! [`HostileServer`] answers every request with one of them, for a client no stand-in
//! serves (a witness's, the primary's `http` check).
//!
//! [`Trap`] is where such a redirect points: a listener that counts every connection
//! that reaches it and keeps what was sent, so a test can say that nothing (no token, no
//! routing key) arrived there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One piece of an endless body: JSON whitespace, so a parser waits for more.
const CHUNK: usize = 64 * 1024;

/// What a [`HostileServer`] answers to every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `200`, chunked, a body that never ends.
    EndlessBody,
    /// `200` with `Content-Length` this many bytes, and that many bytes.
    Announced(u64),
    /// `307` to the same path at this address.
    RedirectTo(SocketAddr),
}

/// `200 OK` with an `application/json` body that never ends (64 KiB pieces of
/// whitespace, as fast as the client reads); `sent` counts the bytes handed to the
/// connection.
pub fn endless_body(sent: Option<Arc<AtomicU64>>) -> Response {
    let piece = Bytes::from(vec![b' '; CHUNK]);
    let pieces = futures::stream::repeat_with(move || {
        if let Some(sent) = &sent {
            sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
        }
        Ok::<_, Infallible>(piece.clone())
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(pieces),
    )
        .into_response()
}

/// `307 Temporary Redirect` to `uri`'s path and query at `target`: the redirect that
/// keeps the method and the body, as a client that followed it would resend them.
pub fn redirect_to(target: SocketAddr, uri: &Uri) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("http://{target}{path}"))],
    )
        .into_response()
}

/// A server that answers every request with one [`Answer`]; stops when dropped.
pub struct HostileServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    answer: Answer,
    requests: AtomicUsize,
    sent: Arc<AtomicU64>,
}

impl HostileServer {
    /// Starts on a free loopback port. Must be called inside a tokio runtime.
    pub async fn start(answer: Answer) -> anyhow::Result<HostileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the hostile server to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            answer,
            requests: AtomicUsize::new(0),
            sent: Arc::new(AtomicU64::new(0)),
        });
        let app = Router::new()
            .fallback(answer_one)
            .with_state(shared.clone());
        let server = tokio::spawn(crate::http::serve(listener, app));
        Ok(HostileServer {
            addr,
            shared,
            server,
        })
    }

    /// `http://127.0.0.1:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many bytes of endless body were handed to connections.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer_one(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match shared.answer {
        Answer::EndlessBody => endless_body(Some(shared.sent.clone())),
        Answer::Announced(length) => {
            let body = vec![b' '; usize::try_from(length).unwrap_or(usize::MAX)];
            (StatusCode::OK, body).into_response()
        }
        Answer::RedirectTo(target) => redirect_to(target, &uri),
    }
}

/// A redirect's target: counts every connection that reaches it, keeps what each sent,
/// and answers `200 OK` (so a client that followed the redirect would think it had
/// succeeded). Stops when dropped, closing its connections.
pub struct Trap {
    addr: SocketAddr,
    caught: Arc<Caught>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct Caught {
    arrivals: AtomicUsize,
    /// Never held across an `.await`.
    received: Mutex<Vec<u8>>,
}

impl Trap {
    /// Starts on a free loopback port. Must be called inside a tokio runtime.
    pub async fn start() -> anyhow::Result<Trap> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the trap to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let caught = Arc::new(Caught::default());
        let server = tokio::spawn(catch(listener, caught.clone()));
        Ok(Trap {
            addr,
            caught,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections reached it. Counted when accepted, before anything is
    /// answered: a client that followed a redirect here cannot have returned before.
    pub fn arrivals(&self) -> usize {
        self.caught.arrivals.load(Ordering::SeqCst)
    }

    /// Everything sent to it, as text.
    pub fn received(&self) -> String {
        let received = self
            .caught
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&received).into_owned()
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn catch(listener: TcpListener, caught: Arc<Caught>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else { continue };
                caught.arrivals.fetch_add(1, Ordering::SeqCst);
                let caught = caught.clone();
                connections.spawn(async move {
                    let mut buffer = [0u8; 16 * 1024];
                    // One read holds a small request's head and body; that is enough to
                    // show what was sent.
                    if let Ok(n) = stream.read(&mut buffer).await {
                        caught
                            .received
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .extend_from_slice(&buffer[..n]);
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
