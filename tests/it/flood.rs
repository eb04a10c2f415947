//! A client flood as the adversarial pass ran it against the witness and `/metrics`:
//! many connections from one address, each sending the first line of a request and no
//! more, against a process held to a small open-file limit; and a whole request timed
//! beside them.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::Instant;

/// Holds the process `command` starts to `limit` open files (`RLIMIT_NOFILE`, set in
/// the child only, before it runs).
pub fn with_open_file_limit(command: &mut std::process::Command, limit: libc::rlim_t) {
    let limit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: between fork and exec the child only calls setrlimit, which is
    // async-signal-safe, on a value copied in.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// `n` connections to `server` from 127.0.0.1, each having sent `first_line` and no
/// more, in order: all established and half-sent when this returns. Plain sockets, so
/// that whether the server closed one is a plain `read`.
pub fn half_sent(server: SocketAddr, first_line: &[u8], n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(server).unwrap();
            stream.write_all(first_line).unwrap();
            stream.set_nonblocking(true).unwrap();
            stream
        })
        .collect()
}

/// Which of `flood` the server has closed (a read gives end of file or a reset).
pub fn closed(flood: &mut [std::net::TcpStream]) -> Vec<bool> {
    flood
        .iter_mut()
        .map(|stream| {
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            }
        })
        .collect()
}

/// Waits (at most 30 s) until exactly `gone` of `flood` are closed, then gives which.
pub async fn until_closed(flood: &mut [std::net::TcpStream], gone: usize) -> Vec<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = closed(flood);
        let count = now.iter().filter(|c| **c).count();
        if count >= gone || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects from `from` and sends `request` whole; the answer's status line and how
/// long it took from the connect to that line.
pub async fn timed(from: IpAddr, server: SocketAddr, request: &str) -> (Duration, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let asked = Instant::now();
    let mut stream = socket.connect(server).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("no answer within 30 s")
            .unwrap();
        assert!(read > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..read]);
    }
    let took = asked.elapsed();
    let text = String::from_utf8_lossy(&answer);
    (took, text.lines().next().unwrap_or("").to_string())
}
