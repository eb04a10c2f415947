//! The one stop signal, handed to everything long-running: the daemon, the witness and
//! the one-shot commands that change things (`--promote-now`, `switchover`, `rejoin`).
//! Made once, in the binary, from SIGTERM and SIGINT ([`Shutdown::on_signals`]); tests
//! make one they trigger themselves ([`Shutdown::new`]).
//!
//! It is a request, not a kill: whoever holds it looks at it where stopping is safe
//! (between rounds, between a procedure's steps, in a step that only waits) and does
//! what a stop means there (`procedure::OnStop`), saying what it left behind. A second
//! SIGINT while stopping ends the process at once (exit 130), for an operator who will
//! not wait.

use tokio::sync::watch;

/// Whether a stop was asked for; clone it for each task that must see it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    requested: watch::Receiver<bool>,
}

/// The sender side: asks every [`Shutdown`] made with it to stop.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

impl Trigger {
    /// Asks for the stop (again: no harm).
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// A shutdown and the trigger that fires it.
    pub fn new() -> (Shutdown, Trigger) {
        let (tx, requested) = watch::channel(false);
        (Shutdown { requested }, Trigger { tx })
    }

    /// A shutdown that is never requested.
    pub fn never() -> Shutdown {
        let (shutdown, trigger) = Shutdown::new();
        // The sender is kept alive by the receiver's channel state; dropping it only
        // means no one will ever ask.
        drop(trigger);
        shutdown
    }

    /// Fired by SIGTERM or SIGINT (the first of them, logged); a second SIGINT exits at
    /// once with 130. Needs a tokio runtime.
    pub fn on_signals() -> anyhow::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (shutdown, trigger) = Shutdown::new();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            trigger.stop();
            if int.recv().await.is_some() {
                eprintln!(
                    "interrupted again: exiting at once; a procedure under way stays in its journal as it is (`failover-watchdog status` shows it): run its command again to take it up"
                );
                std::process::exit(130);
            }
        });
        Ok(shutdown)
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a stop is asked for (never, when it cannot be asked any more).
    pub async fn wait(&self) {
        let mut requested = self.requested.clone();
        if requested.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_reaches_every_clone() {
        let (shutdown, trigger) = Shutdown::new();
        let other = shutdown.clone();
        assert!(!shutdown.requested());
        trigger.stop();
        assert!(shutdown.requested() && other.requested());
        other.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_never_asked_never_resolves() {
        let never = Shutdown::never();
        let waited = tokio::time::timeout(std::time::Duration::from_secs(3600), never.wait()).await;
        assert!(waited.is_err());
        assert!(!never.requested());
    }
}
