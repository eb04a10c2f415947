//! Test helpers for the listeners' TLS and their stalled clients.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// A self-signed certificate for `localhost` and 127.0.0.1, made now, written as PEM
/// into `dir`: (certificate file, key file, the certificate's PEM).
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.pem())
}

/// A client that trusts only `cert_pem`.
pub fn https_client(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// A connection to `server` from the loopback address `from` (127.0.0.0/8 is all
/// this host's: each address is another client).
pub async fn connect_from(from: IpAddr, server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(server).await.unwrap()
}

/// A client from `from` that sends `request` over and over and never reads: once the
/// server's answers fill the socket, its writes stall. Its small receive buffer makes
/// that come soon. The task ends (with the error) when the server drops the
/// connection.
pub async fn pipeliner(
    from: IpAddr,
    server: SocketAddr,
    request: &'static [u8],
) -> tokio::task::JoinHandle<std::io::Error> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    tokio::spawn(async move {
        loop {
            if let Err(e) = stream.write_all(request).await {
                return e;
            }
        }
    })
}

/// Waits (20 s at most) for the server to drop a [`pipeliner`]: reset or a broken pipe.
pub async fn assert_dropped(client: tokio::task::JoinHandle<std::io::Error>) {
    let error = tokio::time::timeout(std::time::Duration::from_secs(20), client)
        .await
        .expect("a client that does not read is still connected")
        .unwrap();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
}
