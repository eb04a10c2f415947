//! A scripted health endpoint: an HTTP server whose answers (status codes) are given in
//! advance, one per request, then a default. Lets a test make "the primary" fail an
//! exact number of probe rounds and answer on the next.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The script and what was asked; a std mutex: never held across an await.
struct Script {
    next: VecDeque<u16>,
    default: u16,
    requests: usize,
}

/// The endpoint; stops when dropped.
pub struct ScriptedHealth {
    script: Arc<Mutex<Script>>,
    url: String,
    server: JoinHandle<()>,
}

impl ScriptedHealth {
    /// Answers `GET /health` with `first` in order, then `default` forever.
    pub async fn start(first: &[u16], default: u16) -> anyhow::Result<ScriptedHealth> {
        let script = Arc::new(Mutex::new(Script {
            next: first.iter().copied().collect(),
            default,
            requests: 0,
        }));
        let app = Router::new()
            .route("/health", get(answer))
            .with_state(script.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/health", listener.local_addr()?);
        let server = tokio::spawn(crate::http::serve(listener, app));
        Ok(ScriptedHealth {
            script,
            url,
            server,
        })
    }

    /// The URL to probe.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests were answered.
    pub fn requests(&self) -> usize {
        self.script.lock().unwrap().requests
    }
}

impl Drop for ScriptedHealth {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>) -> StatusCode {
    let mut script = script.lock().unwrap();
    script.requests += 1;
    let status = script.next.pop_front().unwrap_or(script.default);
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
