//! A scripted health endpoint: an HTTP server whose answers (status codes) are given in
//! advance, one per request, then a default. Lets a test make "the primary" fail an
//! exact number of probe rounds and answer on the next; or answer with a
//! [`hostile::Answer`] (an endless body, a redirect to another port) instead.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::hostile;

/// The script and what was asked; a std mutex: never held across an await.
struct Script {
    next: VecDeque<u16>,
    default: u16,
    requests: usize,
    /// Answers every request instead of the script, when set.
    hostile: Option<hostile::Answer>,
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
            hostile: None,
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

    /// From the next request on, answers every request with `answer` (`None`: the
    /// script again). An endless body comes with status 200.
    pub fn set_hostile(&self, answer: Option<hostile::Answer>) {
        self.script.lock().unwrap().hostile = answer;
    }
}

impl Drop for ScriptedHealth {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, uri: Uri) -> Response {
    let mut script = script.lock().unwrap();
    script.requests += 1;
    match script.hostile {
        Some(hostile::Answer::EndlessBody) => return hostile::endless_body(None),
        Some(hostile::Answer::RedirectTo(target)) => return hostile::redirect_to(target, &uri),
        Some(hostile::Answer::Announced(length)) => {
            let body = vec![b' '; usize::try_from(length).unwrap_or(usize::MAX)];
            return (StatusCode::OK, body).into_response();
        }
        None => {}
    }
    let status = script.next.pop_front().unwrap_or(script.default);
    StatusCode::from_u16(status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}
