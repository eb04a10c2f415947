//! A TCP relay that shapes what crosses it: a delay with jitter, and loss.
//!
//! This kernel has no `netem` qdisc, so a slow, lossy WAN link is made in userspace:
//! [`ShapedLink`] listens on an address, connects each client to a target, and holds
//! every chunk read for a drawn delay (`delay` ± `jitter`) before passing it on, in
//! order (a chunk never overtakes the one before it, as on one TCP connection).
//!
//! Loss: a byte stream cannot lose bytes, so a lost segment shows as TCP shows it: the
//! sender retransmits after its retransmission timeout. A chunk drawn as lost (with
//! probability `loss`) waits one more RTO (200 ms, Linux's minimum), doubled each
//! time the retransmission is drawn lost again (at most 3 times); a new connection
//! drawn as lost waits 1 s, the first SYN retransmission. With the default
//! [`Shape`] the link only relays.
//!
//! The relay can run inside a network namespace ([`ShapedLink::start_in`]): it then
//! lives on a thread of its own that has entered the namespace (`setns`), with its own
//! tokio runtime, so both its listening socket and its connections to the target are
//! made there, and the namespace's cuts apply to them. Dropping the link stops the
//! thread and closes every connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Prng;

/// Linux's minimum retransmission timeout.
const MIN_RTO: Duration = Duration::from_millis(200);
/// The first SYN retransmission.
const SYN_RETRY: Duration = Duration::from_secs(1);
/// How many times one chunk may be drawn lost again.
const MAX_RETRANSMISSIONS: u32 = 3;

/// What the link does to each chunk, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    /// The one-way delay.
    pub delay: Duration,
    /// The delay varies uniformly within `delay ± jitter` (never below zero).
    pub jitter: Duration,
    /// The share of chunks (and of new connections) lost once, in `[0, 1]`.
    pub loss: f64,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "delay {} ms ± {} ms, loss {:.0}%",
            self.delay.as_millis(),
            self.jitter.as_millis(),
            self.loss * 100.0
        )
    }
}

struct Shaper {
    shape: Shape,
    prng: Prng,
}

impl Shaper {
    /// How long one chunk is held.
    fn hold(&mut self) -> Duration {
        let Shape {
            delay,
            jitter,
            loss,
        } = self.shape;
        let jitter_ms = jitter.as_millis() as u64;
        let drawn = self.prng.range(0, 2 * jitter_ms);
        let mut hold = (delay + Duration::from_millis(drawn)).saturating_sub(jitter);
        let mut rto = MIN_RTO;
        for _ in 0..MAX_RETRANSMISSIONS {
            if self.prng.unit() >= loss {
                break;
            }
            hold += rto;
            rto *= 2;
        }
        hold
    }

    fn connection_lost(&mut self) -> bool {
        self.prng.unit() < self.shape.loss
    }
}

type SharedShaper = Arc<Mutex<Shaper>>;

fn lock(shaper: &SharedShaper) -> std::sync::MutexGuard<'_, Shaper> {
    shaper.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running relay. See the module doc.
pub struct ShapedLink {
    address: SocketAddr,
    shaper: SharedShaper,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ShapedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapedLink")
            .field("address", &self.address)
            .field("shape", &self.shape())
            .finish()
    }
}

impl ShapedLink {
    /// Relays from `listen` (port 0: a free one) to `target`, in this process's
    /// network namespace. `seed` makes the drawn delays repeatable.
    pub fn start(listen: SocketAddr, target: SocketAddr, seed: u64) -> anyhow::Result<ShapedLink> {
        Self::spawn(None, listen, target, seed)
    }

    /// As [`ShapedLink::start`], inside the network namespace `namespace` (a name
    /// under `/run/netns`, as `ip netns` makes them).
    pub fn start_in(
        namespace: &str,
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
    ) -> anyhow::Result<ShapedLink> {
        Self::spawn(Some(namespace.to_owned()), listen, target, seed)
    }

    fn spawn(
        namespace: Option<String>,
        listen: SocketAddr,
        target: SocketAddr,
        seed: u64,
    ) -> anyhow::Result<ShapedLink> {
        let shaper = Arc::new(Mutex::new(Shaper {
            shape: Shape::default(),
            prng: Prng::new(seed),
        }));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<SocketAddr>>();
        let (stop, stopped) = oneshot::channel();
        let thread_shaper = shaper.clone();
        let thread = std::thread::Builder::new()
            .name("rig-shaped-link".into())
            .spawn(move || {
                let setup =
                    || -> anyhow::Result<(tokio::runtime::Runtime, std::net::TcpListener)> {
                        if let Some(ns) = &namespace {
                            enter_namespace(ns)?;
                        }
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .context("building the relay's runtime")?;
                        let listener = std::net::TcpListener::bind(listen)
                            .with_context(|| format!("binding the relay to {listen}"))?;
                        listener.set_nonblocking(true)?;
                        Ok((runtime, listener))
                    };
                let (runtime, listener) = match setup() {
                    Ok(ok) => ok,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(listener.local_addr().map_err(Into::into));
                    tokio::select! {
                        _ = accept_loop(listener, target, thread_shaper) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every connection's task.
            })
            .context("spawning the relay's thread")?;
        let address = ready_rx
            .recv()
            .context("the relay's thread ended before it listened")??;
        Ok(ShapedLink {
            address,
            shaper,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shape in force.
    pub fn shape(&self) -> Shape {
        lock(&self.shaper).shape
    }

    /// Shapes every chunk from now on (chunks already held keep their time).
    pub fn set_shape(&self, shape: Shape) {
        lock(&self.shaper).shape = shape;
    }
}

impl Drop for ShapedLink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Moves the calling thread into the network namespace `/run/netns/<namespace>`.
fn enter_namespace(namespace: &str) -> anyhow::Result<()> {
    if namespace.contains('/') {
        bail!("not a namespace name: {namespace:?}");
    }
    let path = format!("/run/netns/{namespace}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    use std::os::fd::AsRawFd as _;
    // SAFETY: setns only reads the descriptor, which `file` keeps open for the call.
    let done = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if done != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("setns into {path}"));
    }
    Ok(())
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, shaper: SharedShaper) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: let a connection end first.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let shaper = shaper.clone();
        tokio::spawn(async move {
            if lock(&shaper).connection_lost() {
                tokio::time::sleep(SYN_RETRY).await;
            }
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pipe(client_read, server_write, shaper.clone()),
                pipe(server_read, client_write, shaper),
            );
        });
    }
}

/// One direction: reads chunks, holds each for its drawn time, writes them in order.
/// An end of stream is passed on as a shutdown of the write side, after the last chunk.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shaper: SharedShaper,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut last_due = Instant::now();
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let hold = lock(&shaper).hold();
            let due = (Instant::now() + hold).max(last_due);
            last_due = due;
            let chunk = (n > 0).then(|| buf[..n].to_vec());
            let end = chunk.is_none();
            if tx.send((due, chunk)).is_err() || end {
                return;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(bytes) => {
                    if to.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_stay_within_the_shape() {
        let mut shaper = Shaper {
            shape: Shape {
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(30),
                loss: 0.0,
            },
            prng: Prng::new(3),
        };
        let holds: Vec<Duration> = (0..200).map(|_| shaper.hold()).collect();
        assert!(holds.iter().all(|h| (70..=130).contains(&h.as_millis())));
        assert!(
            holds.iter().any(|h| h.as_millis() < 85) && holds.iter().any(|h| h.as_millis() > 115)
        );

        shaper.shape.loss = 1.0;
        // Lost every time: 100 ms ± 30 plus 200 + 400 + 800 ms of retransmissions.
        let hold = shaper.hold().as_millis();
        assert!((1470..=1530).contains(&hold), "{hold}");
        shaper.shape = Shape::default();
        assert_eq!(shaper.hold(), Duration::ZERO);
        assert!(!shaper.connection_lost());
    }

    #[tokio::test]
    async fn relays_in_order_and_adds_the_delay() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let link = ShapedLink::start("127.0.0.1:0".parse().unwrap(), target, 1).unwrap();
        let mut stream = TcpStream::connect(link.address()).await.unwrap();
        let started = std::time::Instant::now();
        stream.write_all(b"fast").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"fast");
        let unshaped = started.elapsed();

        link.set_shape(Shape {
            delay: Duration::from_millis(150),
            jitter: Duration::from_millis(50),
            loss: 0.0,
        });
        let started = std::time::Instant::now();
        let mut got = Vec::new();
        for i in 0..5u8 {
            stream.write_all(&[i]).await.unwrap();
        }
        while got.len() < 5 {
            let mut b = [0u8; 8];
            let n = stream.read(&mut b).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&b[..n]);
        }
        let shaped = started.elapsed();
        assert_eq!(got, [0, 1, 2, 3, 4], "in order");
        // Two crossings of at least 100 ms each.
        assert!(
            shaped >= Duration::from_millis(200),
            "{shaped:?} (unshaped {unshaped:?})"
        );
    }
}
