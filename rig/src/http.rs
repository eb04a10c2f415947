//! The stand-ins' HTTP server loop, shared by [`crate::cloudflare`],
//! [`crate::telegram`], [`crate::webhook`] and [`crate::panel`].

use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Accepts connections and serves each on its own task. The tasks live in a `JoinSet`
/// owned by this future, so aborting it (on drop of the stand-in) closes every
/// connection, including ones a stand-in holds open on purpose (a hanging or slow
/// answer); `axum::serve` would leave those open.
pub(crate) async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                connections.spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Waits until `read()` holds at least `n` items or `timeout` has passed, and returns what
/// it holds by then (possibly fewer). `arrived` is notified on every arrival; interest is
/// registered before each look, so an arrival in between is not missed.
pub(crate) async fn wait_for_count<T>(
    arrived: &Notify,
    n: usize,
    timeout: Duration,
    read: impl Fn() -> Vec<T>,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = arrived.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let items = read();
        if items.len() >= n {
            return items;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return read();
        }
    }
}
