//! One round: the list, then the stream until it ends (followed in `streaming`), and how the
//! round ended.

use std::time::Duration;

use tokio::time::Instant;

use super::task::{Round, Streaks, Task};
use super::{MAX_STREAM_AGE, SILENT_STREAMS};
use crate::argocd::ArgoCdError;
use crate::argocd::stream::{AppIndex, AppStream, IndexFull, KEEPALIVE, StreamError};
use crate::controller::backoff::LOGIN_RETRY;
use crate::model::stream::StreamState;

/// What a task shows once [`SILENT_STREAMS`] streams in a row sent nothing within `stall`.
pub(super) fn buffered(stall: Duration) -> StreamState {
    StreamState::Unavailable(format!(
        "{SILENT_STREAMS} streams in a row sent not one byte within {}s; a proxy before Argo CD may be buffering the stream",
        stall.as_secs()
    ))
}

impl Task {
    /// One list and one stream, until the stream fails or reaches [`MAX_STREAM_AGE`]; the
    /// periodic relists happen beside the open stream. `listed`: Argo CD served the list.
    pub(super) async fn round(&self, streaks: &mut Streaks, listed: &mut bool) -> Round {
        self.round_steps(streaks, listed).await.unwrap_or_else(|ended| ended)
    }

    /// [`Task::round`], step by step; a step that ends the round early says how, as `Err`.
    async fn round_steps(&self, streaks: &mut Streaks, listed: &mut bool) -> Result<Round, Round> {
        let mut index = self.first_list(streaks, listed).await?;
        let relist_at = Instant::now() + self.relist_period();
        let reopen_at = Instant::now() + MAX_STREAM_AGE;
        let mut stream = self.open(&index, streaks).await?;
        let opened_at = Instant::now();
        let ended = self.follow(&mut stream, &mut index, relist_at, reopen_at, streaks).await?;
        Ok(self.stream_ended(ended, stream.any_bytes, opened_at, streaks).await)
    }

    /// The round's list, as the index the stream keeps up to date, charged to the budget.
    async fn first_list(&self, streaks: &mut Streaks, listed: &mut bool) -> Result<AppIndex, Round> {
        let (ns, name) = self.labels();
        let metrics = self.config.metrics.as_ref();
        let applications = tokio::select! {
            r = self.list() => r,
            _ = self.cancel.cancelled() => return Err(Round::Stop),
        };
        let applications = match applications {
            None => return Err(Round::Stop),
            Some(Ok(l)) => l,
            Some(Err(e)) => return Err(self.request_failed(&e, streaks).await),
        };
        metrics.stream_relisted(ns, name);
        *listed = true;
        let index = applications.index.ok_or(IndexFull::Applications);
        match index.and_then(|mut i| i.charge_to(&self.shared.budget).map(|()| i)) {
            Ok(index) => Ok(index),
            Err(full) => {
                metrics.stream_reconnect(ns, name, StreamError::Full(full).category());
                Err(Round::Failed { state: full_state(full), wait: self.relist_period() })
            }
        }
    }

    /// Opens the stream, waiting for its first event at most the stall timeout, and charges it
    /// to the budget. Until the stream says otherwise, `index` (the list) holds.
    async fn open(&self, index: &AppIndex, streaks: &mut Streaks) -> Result<AppStream, Round> {
        let (ns, name) = self.labels();
        let client = &self.config.client;
        let metrics = self.config.metrics.as_ref();
        // Past the reopening, so that the request's own timeout never ends a healthy stream.
        let lifetime = MAX_STREAM_AGE + 2 * KEEPALIVE;
        if index.is_empty() {
            // Argo CD answers a stream only with its first event: with no application that is
            // when one appears. The list is the truth meanwhile.
            self.publish(StreamState::Streaming, index);
        }
        let opened = tokio::select! {
            r = tokio::time::timeout(self.config.stall, client.open_stream(lifetime, metrics)) => r,
            _ = self.cancel.cancelled() => return Err(Round::Stop),
        };
        let mut stream = match opened {
            Ok(Ok(s)) => s,
            // No application, so no event and no answer: not a failure, list again later.
            Err(_) if index.is_empty() => return Err(Round::Relist),
            Err(_) => {
                metrics.stream_reconnect(ns, name, "Stalled");
                return Err(self.silent(streaks).await);
            }
            Ok(Err(e)) if cannot_stream(&e) => {
                let why = client.redact(&e.to_string()).await;
                return Err(Round::Failed {
                    state: StreamState::Unavailable(why),
                    wait: self.relist_period(),
                });
            }
            Ok(Err(e)) => return Err(self.request_failed(&e, streaks).await),
        };
        stream.charge_to(&self.shared.budget);
        // The stream is open (its first event came): until it says otherwise, the list holds.
        self.publish(StreamState::Streaming, index);
        Ok(stream)
    }

    /// How the round ends once the open stream stopped with `ended`; `any_bytes`: whether it
    /// sent anything at all.
    async fn stream_ended(
        &self,
        ended: StreamError,
        any_bytes: bool,
        opened_at: Instant,
        streaks: &mut Streaks,
    ) -> Round {
        let (ns, name) = self.labels();
        self.config.metrics.stream_reconnect(ns, name, ended.category());
        match ended {
            StreamError::Full(full) => Round::Failed { state: full_state(full), wait: self.relist_period() },
            StreamError::Stalled(_) if !any_bytes => self.silent(streaks).await,
            StreamError::Request(e) => {
                let unauthenticated = e.is_unauthenticated();
                self.failed(streaks, &e.to_string(), unauthenticated).await
            }
            other => {
                // A stream that ran a while (an interval at least) and ended is a routine
                // reconnect, not a failure streak. One that ends soon after its first events
                // is a failure, however many bytes it sent.
                if any_bytes && opened_at.elapsed() >= self.config.interval {
                    streaks.failures = 0;
                }
                self.failed(streaks, &other.to_string(), false).await
            }
        }
    }

    /// A stream that sent not one byte before the stall timeout (not even its first event,
    /// though applications exist): [`SILENT_STREAMS`] in a row, a proxy before Argo CD is
    /// buffering it, and polling takes over; before that, a failure like any.
    async fn silent(&self, streaks: &mut Streaks) -> Round {
        if streaks.silent_stream() {
            return Round::Failed { state: buffered(self.config.stall), wait: self.relist_period() };
        }
        self.failed(streaks, &StreamError::Stalled(self.config.stall).to_string(), false).await
    }

    /// A list or a stream request that failed: a refused login waits, any other failure too.
    async fn request_failed(&self, e: &ArgoCdError, streaks: &mut Streaks) -> Round {
        if e.is_login_refused() {
            return self.login_refused(e).await;
        }
        self.failed(streaks, &e.to_string(), e.is_unauthenticated()).await
    }

    /// Argo CD refused the login: no new login before [`LOGIN_RETRY`], as the reconcile waits
    /// too (Argo CD locks an account out after 5 failed logins, for everyone using it). A
    /// change of the credentials starts a new task, which logs in at once.
    async fn login_refused(&self, e: &ArgoCdError) -> Round {
        let message = crate::text::cap(&self.config.client.redact(&e.to_string()).await);
        Round::Failed { state: StreamState::Reconnecting(message), wait: LOGIN_RETRY }
    }

    /// A failed list or stream: the session is renewed on 401, and the next round waits.
    async fn failed(&self, streaks: &mut Streaks, message: &str, unauthenticated: bool) -> Round {
        if unauthenticated {
            self.config.client.renew_session().await;
        }
        streaks.failures += 1;
        let message = crate::text::cap(&self.config.client.redact(message).await);
        Round::Failed {
            state: StreamState::Reconnecting(message),
            wait: crate::controller::backoff::stream_retry(streaks.failures, self.config.interval),
        }
    }
}

/// Answers that say this server (or a proxy before it) does not serve the stream at all:
/// retrying soon cannot help, polling can.
pub(super) fn cannot_stream(e: &ArgoCdError) -> bool {
    matches!(
        e,
        ArgoCdError::NotJson { .. }
            | ArgoCdError::Redirect { .. }
            | ArgoCdError::UnexpectedStatus { status: 404 | 405 | 406 | 415 | 501, .. }
            | ArgoCdError::ServerError { status: 501, .. }
    )
}

/// A watch past its bound is polled instead, and says which bound.
pub(super) fn full_state(full: IndexFull) -> StreamState {
    match full {
        IndexFull::Applications => StreamState::TooManyApplications(full.to_string()),
        IndexFull::Budget(_) => StreamState::OverBudget(full.to_string()),
    }
}
