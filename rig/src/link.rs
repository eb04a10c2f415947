//! A network link a test can cut: a TCP relay from a free loopback port to a target.
//!
//! Point a client at [`Link::address`] instead of the target and it talks to the target
//! through the link. [`Link::cut`] is a partition: new connections are refused and the
//! connections already relayed go silent without being closed, as when a route dies
//! (a replica's IO thread then hears nothing, not even an error, until its heartbeat
//! is missed). Dropping the link closes everything.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// A relay to one target.
pub struct Link {
    address: SocketAddr,
    cut: watch::Sender<bool>,
    relay: JoinHandle<()>,
}

impl Link {
    /// Starts relaying from a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Link> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (cut, cut_seen) = watch::channel(false);
        let relay = tokio::spawn(relay(listener, target, cut_seen));
        Ok(Link {
            address,
            cut,
            relay,
        })
    }

    /// Where clients connect instead of the target.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Partitions the link: refuses new connections, silences the open ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

/// Accepts and relays until the cut; then holds the silenced connections open until
/// the link is dropped (which aborts this task and every connection's with it).
async fn relay(listener: TcpListener, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(relay_one(client, target, cut.clone()));
            }
            _ = cut_seen(&mut cut) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    std::future::pending::<()>().await;
    drop(connections);
}

async fn relay_one(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cut_seen(&mut cut) => {
            // Keep both ends open, and say nothing more.
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves once the link is cut (or dropped).
async fn cut_seen(cut: &mut watch::Receiver<bool>) {
    let _ = cut.wait_for(|cut| *cut).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_cut_link_refuses_new_connections_and_silences_open_ones() {
        // An echo server as the target.
        let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target_address = target.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = target.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let link = Link::start(target_address).await.unwrap();
        let mut open = TcpStream::connect(link.address()).await.unwrap();
        open.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        open.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");

        link.cut();
        // The listener closes once the relay task sees the cut.
        let refused = async {
            while TcpStream::connect(link.address()).await.is_ok() {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), refused)
            .await
            .expect("new connections are refused after the cut");
        open.write_all(b"ping").await.unwrap();
        let silent =
            tokio::time::timeout(std::time::Duration::from_millis(300), open.read(&mut buf)).await;
        assert!(silent.is_err(), "no answer and no close: {silent:?}");
    }
}
