//! One shutdown signal for the whole process: a [`CancellationToken`] cancelled on SIGTERM or
//! SIGINT. The signals are caught once, at start, and every part (HTTP servers, controllers,
//! checks) waits on the same token: a part that began listening for the signal itself, after
//! it was sent, would never see it.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Starts listening for SIGTERM and SIGINT now; the token is cancelled at the first. Must be
/// called inside the runtime.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = which, "shutting down");
        cancel.cancel();
    });
    Ok(token)
}
