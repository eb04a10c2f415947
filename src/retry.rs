//! The one place that owns retries and backoff.
//!
//! Edge clients (Cloudflare, Telegram) make exactly one attempt per call and classify the
//! result as [`Failure::Transient`] (worth another try: timeouts, 5xx, 429) or
//! [`Failure::Fatal`] (a bad token, a missing record: trying again changes nothing).
//! [`retry_until`] turns that into bounded retries with exponential backoff, honours a
//! server's `Retry-After`, and never sleeps past the caller's deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// One failed attempt, classified by the edge that made it.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying; `retry_after` is the server's own wish (429 `Retry-After`).
    Transient {
        error: anyhow::Error,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help.
    Fatal(anyhow::Error),
}

impl Failure {
    /// A transient failure without a server-given delay.
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        Failure::Transient {
            error: error.into(),
            retry_after: None,
        }
    }

    pub fn fatal(error: impl Into<anyhow::Error>) -> Self {
        Failure::Fatal(error.into())
    }

    /// Transient or fatal, as the error's own kind says (a network error, or a request
    /// that fails the same way every time).
    pub fn of(transient: bool, error: impl Into<anyhow::Error>) -> Self {
        if transient {
            Failure::transient(error)
        } else {
            Failure::fatal(error)
        }
    }
}

/// Exponential backoff between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// For HTTP APIs: 500 ms, doubling, at most 8 s between attempts.
    pub const API: Backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(8),
    };
}

/// Runs `attempt` until it succeeds, fails fatally, or the next wait would pass
/// `deadline`. `what` names the operation in the error.
pub async fn retry_until<T, F, Fut>(
    what: &str,
    deadline: Instant,
    backoff: Backoff,
    mut attempt: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut delay = backoff.initial;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let result = match tokio::time::timeout(remaining, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Fatal(anyhow::anyhow!(
                "deadline reached during the attempt"
            ))),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => {
                return Err(
                    error.context(format!("{what} failed (attempt {attempts}, not retried)"))
                );
            }
            Err(Failure::Transient { error, retry_after }) => {
                let wait = retry_after.map_or(delay, |server| server.max(delay));
                if Instant::now() + wait >= deadline {
                    return Err(error.context(format!(
                        "{what} failed after {attempts} attempts; the next retry would pass the deadline"
                    )));
                }
                tracing::warn!(
                    "{what}: attempt {attempts} failed, retrying in {}: {error:#}",
                    humantime::format_duration(wait)
                );
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}

/// A reply's `Retry-After`, in seconds (the form Cloudflare and our witness send; an
/// HTTP date is not honoured and the backoff decides).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(4),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let value = retry_until("op", started + Duration::from_secs(60), backoff(), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 4 {
                    Err(Failure::transient(anyhow::anyhow!("HTTP 500")))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 4);
        // 1 s + 2 s + 4 s of backoff.
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_longer_than_the_backoff() {
        let calls = Cell::new(0);
        let started = Instant::now();
        retry_until("op", started + Duration::from_secs(60), backoff(), || {
            calls.set(calls.get() + 1);
            let first = calls.get() == 1;
            async move {
                if first {
                    Err(Failure::Transient {
                        error: anyhow::anyhow!("HTTP 429"),
                        retry_after: Some(Duration::from_secs(13)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(13));
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_failures_are_not_retried() {
        let calls = Cell::new(0);
        let err = retry_until(
            "update record",
            Instant::now() + Duration::from_secs(60),
            backoff(),
            || {
                calls.set(calls.get() + 1);
                async {
                    Err::<(), _>(Failure::fatal(anyhow::anyhow!(
                        "HTTP 403: Authentication error"
                    )))
                }
            },
        )
        .await
        .unwrap_err();
        assert_eq!(calls.get(), 1);
        let message = format!("{err:#}");
        assert!(
            message.contains("update record failed") && message.contains("403"),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_before_the_deadline() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let err = retry_until("op", started + Duration::from_secs(10), backoff(), || {
            calls.set(calls.get() + 1);
            async { Err::<(), _>(Failure::transient(anyhow::anyhow!("timeout"))) }
        })
        .await
        .unwrap_err();
        // Attempts at 0, 1, 3, 7 s; the next wait (4 s) would end at 11 s > 10 s.
        assert_eq!(calls.get(), 4);
        assert!(started.elapsed() <= Duration::from_secs(10));
        assert!(format!("{err:#}").contains("after 4 attempts"), "{err:#}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_is_cut_at_the_deadline() {
        let started = Instant::now();
        let err = retry_until(
            "op",
            started + Duration::from_secs(5),
            backoff(),
            || async { std::future::pending::<Result<(), Failure>>().await },
        )
        .await
        .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(format!("{err:#}").contains("deadline"), "{err:#}");
    }
}
