//! The stand-ins' HTTP server loop, shared by [`crate::cloudflare`],
//! [`crate::telegram`], [`crate::webhook`] and [`crate::panel`].

use axum::Router;
use tokio::net::TcpListener;
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
