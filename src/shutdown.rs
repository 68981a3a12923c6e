//! The shutdown signal that `run` listens to.
//!
//! `run` takes a [`Shutdown`] instead of installing signal handlers itself, so tests can
//! stop it by calling [`Shutdown::trigger`] and the binary can wire it to SIGTERM and
//! SIGINT with [`Shutdown::on_signals`].

use tokio_util::sync::CancellationToken;

/// A cloneable handle: every clone observes the same trigger.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Requests that every holder of a clone stops.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Returns a handle that triggers with this one, and can also be triggered alone
    /// without affecting this one.
    pub fn child(&self) -> Shutdown {
        Shutdown { token: self.token.child_token() }
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once [`Shutdown::trigger`] was called on any clone.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// Returns a handle that triggers on the first SIGTERM or SIGINT (Ctrl-C).
    pub fn on_signals() -> std::io::Result<Shutdown> {
        let shutdown = Shutdown::new();

        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut terminate = signal(SignalKind::terminate())?;
            let mut interrupt = signal(SignalKind::interrupt())?;
            let handle = shutdown.clone();
            tokio::spawn(async move {
                let name = tokio::select! {
                    _ = terminate.recv() => "SIGTERM",
                    _ = interrupt.recv() => "SIGINT",
                };
                tracing::info!(signal = name, "shutdown requested");
                handle.trigger();
            });
        }

        #[cfg(not(unix))]
        {
            let handle = shutdown.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    tracing::info!(signal = "ctrl-c", "shutdown requested");
                    handle.trigger();
                }
            });
        }

        Ok(shutdown)
    }
}
