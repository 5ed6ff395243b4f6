//! One shutdown signal for the whole process. SIGTERM and SIGINT are caught once, at start,
//! and every part (HTTP server, controllers) waits on the same [`Shutdown`]: a part that began
//! listening for the signal itself, after it was sent, would never see it.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Resolves (through [`Shutdown::wait`]) once the process was told to stop; cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Starts listening for SIGTERM and SIGINT now. Must be called inside the runtime.
    pub fn on_signals() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = which, "shutting down");
            let _ = tx.send(true);
        });
        Ok(Shutdown(rx))
    }

    /// A shutdown that the caller triggers with the returned sender (for tests and for
    /// ordering one part after another).
    pub fn manual() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// Resolves once shutdown began (also when the trigger is gone).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_before_the_wait_is_not_missed() {
        let (tx, shutdown) = Shutdown::manual();
        tx.send(true).expect("send");
        let waiter = shutdown.clone();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter.wait()).await.expect("resolved");
        drop(tx);
        tokio::time::timeout(std::time::Duration::from_secs(1), shutdown.wait()).await.expect("resolved");
    }
}
