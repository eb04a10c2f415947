//! The shared listener on its own, with a handler that answers everything: its
//! descriptor budget, its token check, TLS, making room, and the write timeout.

#![allow(clippy::too_many_lines, reason = "a test reads as the story it tells")]

use std::net::{IpAddr, Ipv4Addr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::testing::{assert_dropped, connect_from, https_client, pipeliner, self_signed};
use super::*;

/// Answers every request with `body`.
struct Echo {
    body: &'static [u8],
}

impl Handler for Echo {
    async fn respond(&self, _request: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        Response::new(Body::from(self.body))
    }
}

fn limits(max_connections: u32, per_client: u32) -> Limits {
    Limits {
        max_connections,
        per_client,
        header_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
    }
}

/// A listener serving [`Echo`] until the sender is dropped.
async fn start(
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    body: &'static [u8],
) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let options = Options {
        what: "test",
        limits,
        tls,
        descriptors_elsewhere: 0,
        grace: Duration::ZERO,
    };
    tokio::spawn(serve(listener, Echo { body }, options, async {
        let _ = stopped.await;
    }));
    (address, stop)
}

/// Connects from `from`, sends a whole request, reads the answer's status line.
async fn ask_from(from: IpAddr, address: SocketAddr) -> String {
    let mut stream = connect_from(from, address).await;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Whether the server has closed `stream` (read 0 bytes, or reset).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Waits (20 s at most) until `gone` of `streams` are closed by the server; which are.
async fn until_closed(streams: &mut [TcpStream], gone: usize) -> Vec<bool> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut closed = vec![false; streams.len()];
    loop {
        for (stream, closed) in streams.iter_mut().zip(&mut closed) {
            let mut buf = [0u8; 64];
            *closed |= match stream.try_read(&mut buf) {
                Ok(n) => n == 0,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
        }
        if closed.iter().filter(|c| **c).count() >= gone || std::time::Instant::now() > deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn the_cap_leaves_room_for_the_rest_of_the_process_under_the_open_file_limit() {
    // No limit, or a generous one: the cap asked for.
    assert_eq!(connection_cap(256, None, 0), 256);
    assert_eq!(connection_cap(256, Some(1024), 16), 256);
    // The witness under LimitNOFILE=256: 32 kept, the rest for connections.
    assert_eq!(connection_cap(256, Some(256), 0), 224);
    // With its metrics endpoint beside it, that endpoint's connections are kept too.
    assert_eq!(connection_cap(256, Some(256), 16), 208);
    // A small limit keeps half for the rest; never no connection at all.
    assert_eq!(connection_cap(256, Some(40), 0), 20);
    assert_eq!(connection_cap(256, Some(2), 16), 1);
    // The real limit can be read.
    assert!(descriptor_limit().is_none_or(|limit| limit > 0));
}

#[test]
fn a_bearer_token_matches_only_itself_in_the_bearer_scheme() {
    let token = Secret::inline("scrape-token-0123456789");
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        bearer_matches(&headers, &token)
    };
    assert!(with("Bearer scrape-token-0123456789"));
    assert!(with("bearer  scrape-token-0123456789 "));
    assert!(!with("Bearer scrape-token-012345678"));
    assert!(!with("Bearer scrape-token-01234567890"));
    assert!(!with("Basic scrape-token-0123456789"));
    assert!(!with("scrape-token-0123456789"));
    assert!(!bearer_matches(&HeaderMap::new(), &token));
}

/// Out of descriptors, the accept loop pauses 10 ms, 20 ms, … up to a second
/// between tries, and starts again from 10 ms once a connection is accepted.
#[test]
fn failed_accepts_pause_longer_and_longer_up_to_a_second() {
    let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
    let mut failures = AcceptFailures::default();
    let pauses: Vec<u128> = (0..9)
        .map(|_| failures.failed(&emfile, "test").as_millis())
        .collect();
    assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    failures.accepted("test");
    assert_eq!(failures.failed(&emfile, "test"), ACCEPT_PAUSE_FIRST);
    // The client's own failures are not ours to wait for.
    assert!(is_connection_error(&std::io::Error::from(
        std::io::ErrorKind::ConnectionAborted
    )));
    assert!(!is_connection_error(&emfile));
}

/// One client's flood of half-sent requests keeps only its share; the oldest go first,
/// and its own whole request, and another client's, are answered at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_share_loses_its_oldest_half_sent_requests() {
    let (address, _stop) = start(limits(64, 4), None, b"ok").await;
    let flooder = IpAddr::from(Ipv4Addr::new(127, 0, 0, 1));
    let mut flood = Vec::new();
    for _ in 0..12 {
        let mut stream = connect_from(flooder, address).await;
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        flood.push(stream);
    }
    // Each newcomer beyond four made room: eight are gone, four stay. Which eight is
    // the table's choice by pace (the oldest, once the server has read each line:
    // pinned under paused time in `table.rs`); here the server may not yet have read a
    // newcomer's line when the next one arrives.
    let gone = until_closed(&mut flood, 8).await;
    assert_eq!(gone.iter().filter(|g| **g).count(), 8, "{gone:?}");
    assert_eq!(ask_from(flooder, address).await, "HTTP/1.1 200 OK");
    assert_eq!(
        ask_from([127, 0, 0, 2].into(), address).await,
        "HTTP/1.1 200 OK"
    );
}

/// At the cap, a new connection takes the place of the stalest; beyond the cap nothing
/// waits for a header timeout (a minute here).
#[tokio::test(flavor = "multi_thread")]
async fn at_the_cap_the_stalest_connection_makes_room() {
    let (address, _stop) = start(limits(8, 100), None, b"ok").await;
    let mut flood = Vec::new();
    for n in 0..8u8 {
        let mut stream = connect_from([127, 0, 2, n + 1].into(), address).await;
        stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        flood.push(stream);
    }
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        ask_from([127, 0, 0, 2].into(), address),
    )
    .await
    .expect("a whole request waited behind half-sent ones");
    assert_eq!(answered, "HTTP/1.1 200 OK");
    // Two half-sent connections made room, the stalest by pace (see the test above):
    // one when the eighth took the last slot, one when the whole request took it.
    let gone = until_closed(&mut flood, 2).await;
    assert_eq!(gone.iter().filter(|g| **g).count(), 2, "{gone:?}");
}

/// A client that pipelines requests and never reads is dropped at the write timeout,
/// although it breaks no other limit (its heads are whole, it is alone).
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_read_its_answers_is_dropped_at_the_write_timeout() {
    let mut limits = limits(64, 64);
    limits.write_timeout = Duration::from_millis(300);
    let (address, _stop) = start(limits, None, &[b'x'; 16 * 1024]).await;
    let started = std::time::Instant::now();
    let stalled = pipeliner(
        [127, 0, 0, 1].into(),
        address,
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert_dropped(stalled).await;
    assert!(started.elapsed() >= limits.write_timeout);
}

/// With TLS, the listener serves HTTPS to a client that trusts its certificate, and a
/// client that never finishes its handshake is dropped at the header timeout.
#[tokio::test(flavor = "multi_thread")]
async fn with_tls_it_serves_https_and_drops_a_stalled_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file, cert) = self_signed(dir.path());
    let acceptor = tls::acceptor("test", &cert_file, &key_file).unwrap();
    let mut limits = limits(8, 8);
    limits.header_timeout = Duration::from_millis(300);
    let (address, _stop) = start(limits, Some(acceptor), b"over tls").await;
    let body = https_client(&cert)
        .get(format!("https://localhost:{}/", address.port()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "over tls");
    let mut silent = TcpStream::connect(address).await.unwrap();
    assert!(closed(&mut silent).await);
}

#[test]
fn tls_files_that_make_no_configuration_name_the_file_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = self_signed(dir.path());
    assert!(tls::server_config(&cert, &key).is_ok());
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let error = tls::server_config(&not_pem, &key).unwrap_err();
    assert_eq!(error.file, tls::File::Certificate);
    assert!(error.problem.contains("holds no certificate"), "{error}");
    let error = tls::server_config(&cert, &not_pem).unwrap_err();
    assert_eq!(error.file, tls::File::Key);
    assert!(error.problem.contains("no PEM private key"), "{error}");
    let error = tls::server_config(&cert, &dir.path().join("missing.key")).unwrap_err();
    assert_eq!(error.file, tls::File::Key);
    assert!(error.problem.contains("missing.key"), "{error}");
}
