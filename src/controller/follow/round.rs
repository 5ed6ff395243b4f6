//! One round: the list, then the stream until it ends, with the periodic relists beside it; and
//! how the round ended.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::{Instant, sleep_until};

use super::task::Task;
use super::{DEBOUNCE, MAX_STREAM_AGE, SILENT_STREAMS};
use crate::argocd::ArgoCdError;
use crate::argocd::stream::{
    AppIndex, Changes, IndexFull, IndexedApplications, KEEPALIVE, Line, StreamError, apply_line_recording,
};
use crate::controller::state::LOGIN_RETRY;
use crate::model::stream::StreamState;

/// A relist in flight beside the stream (`None`: shutdown began while it waited for a slot).
type Listing<'a> =
    Pin<Box<dyn Future<Output = Option<Result<IndexedApplications, ArgoCdError>>> + Send + 'a>>;

/// How one round (list, then stream) ended.
pub(super) enum Round {
    /// Ended cleanly: list and stream again at once. The stream reached [`MAX_STREAM_AGE`],
    /// too many lines came during a relist to replay, or an instance with no application
    /// still has none (its stream answers only with a first event).
    Relist,
    /// Failed: `state` to show, after `wait`.
    Failed { state: StreamState, wait: Duration },
    /// Cancelled, or no longer the leader.
    Stop,
}

impl Task {
    /// One list and one stream, until the stream fails or reaches [`MAX_STREAM_AGE`]; the
    /// periodic relists happen beside the open stream.
    pub(super) async fn round(&self, failures: &mut u32, silent: &mut u32, listed_ok: &mut bool) -> Round {
        let (ns, name) = self.labels();
        let client = &self.config.client;
        let metrics = self.config.metrics.as_ref();
        let listed = tokio::select! {
            r = self.list() => r,
            _ = self.cancel.cancelled() => return Round::Stop,
        };
        let listed = match listed {
            None => return Round::Stop,
            Some(Ok(l)) => l,
            Some(Err(e)) if e.is_login_refused() => return self.login_refused(&e).await,
            Some(Err(e)) => return self.failed(failures, &e.to_string(), e.is_unauthenticated()).await,
        };
        metrics.stream_relisted(ns, name);
        *listed_ok = true;
        let index = listed.index.ok_or(IndexFull::Applications);
        let mut index = match index.and_then(|mut i| i.charge_to(&self.shared.budget).map(|()| i)) {
            Ok(index) => index,
            Err(full) => {
                metrics.stream_reconnect(ns, name, StreamError::Full(full).category());
                return Round::Failed { state: full_state(full), wait: self.relist_period() };
            }
        };
        let mut relist_at = Instant::now() + self.relist_period();
        let reopen_at = Instant::now() + MAX_STREAM_AGE;
        // Past the reopening, so that the request's own timeout never ends a healthy stream.
        let lifetime = MAX_STREAM_AGE + 2 * KEEPALIVE;
        if index.is_empty() {
            // Argo CD answers a stream only with its first event: with no application that is
            // when one appears. The list is the truth meanwhile.
            self.publish(StreamState::Streaming, &index);
        }
        let opened = tokio::select! {
            r = tokio::time::timeout(self.config.stall, client.open_stream(lifetime, metrics)) => r,
            _ = self.cancel.cancelled() => return Round::Stop,
        };
        let mut stream = match opened {
            Ok(Ok(s)) => s,
            // No application, so no event and no answer: not a failure, list again later.
            Err(_) if index.is_empty() => return Round::Relist,
            Err(_) => {
                metrics.stream_reconnect(ns, name, "Stalled");
                return self.silent(failures, silent).await;
            }
            Ok(Err(e)) if cannot_stream(&e) => {
                let why = client.redact(&e.to_string()).await;
                return Round::Failed { state: StreamState::Unavailable(why), wait: self.relist_period() };
            }
            Ok(Err(e)) if e.is_login_refused() => return self.login_refused(&e).await,
            Ok(Err(e)) => return self.failed(failures, &e.to_string(), e.is_unauthenticated()).await,
        };
        stream.charge_to(&self.shared.budget);
        // The stream is open (its first event came): until it says otherwise, the list holds.
        self.publish(StreamState::Streaming, &index);
        let mut pending: Option<Instant> = None;
        // A relist in flight, and the lines read since it started: they are applied to the
        // index as usual, and again to the list once it is in, since the list may have been
        // taken before them. Each event carries its application's whole projected state and
        // the stream keeps their order, so replaying them onto the list leaves every
        // application as its latest event (or the list, if newer) says.
        let mut relisting: Option<(Listing<'_>, Changes)> = None;
        let opened_at = Instant::now();
        let mut leader_check = tokio::time::interval(Duration::from_secs(1));
        // The stall is timed from the last line, not from each wait: the other branches
        // (debounce, leadership) would otherwise restart it for ever.
        let mut stall_at = Instant::now() + self.config.stall;
        let ended = loop {
            let debounce = async {
                match pending {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                line = stream.next_line(stall_at.saturating_duration_since(Instant::now())) => {
                    let line = match line {
                        Ok(line) => line,
                        Err(StreamError::Stalled(_)) => break StreamError::Stalled(self.config.stall),
                        Err(e) => break e,
                    };
                    stall_at = Instant::now() + self.config.stall;
                    let changes = relisting.as_mut().map(|(_, changes)| changes);
                    match apply_line_recording(&mut index, changes, &line) {
                        Ok(Line::Idle) => {}
                        Ok(Line::Event { kind, changed }) => {
                            metrics.stream_event(ns, name, kind, Timestamp::now());
                            if changed && pending.is_none() {
                                pending = Some(Instant::now() + DEBOUNCE);
                            }
                        }
                        Err(e) => break e,
                    }
                }
                _ = debounce => {
                    pending = None;
                    self.publish(StreamState::Streaming, &index);
                }
                _ = sleep_until(relist_at), if relisting.is_none() => {
                    relisting = Some((Box::pin(self.list()), Changes::charged_to(&self.shared.budget)));
                }
                listed = async {
                    match relisting.as_mut() {
                        Some((list, _)) => list.await,
                        None => std::future::pending().await,
                    }
                }, if relisting.is_some() => {
                    let changes = relisting.take().map(|(_, changes)| changes).unwrap_or_default();
                    relist_at = Instant::now() + self.relist_period();
                    let Some(listed) = listed else { return Round::Stop };
                    let fresh = listed.map(|listed| {
                        let mut fresh = replayed(listed, &changes)?;
                        fresh.replace_charge_of(&mut index).map_err(StreamError::Full)?;
                        Ok(fresh)
                    });
                    match fresh {
                        Ok(Ok(fresh)) => {
                            metrics.stream_relisted(ns, name);
                            index = fresh;
                            *failures = 0;
                            *silent = 0;
                            pending.get_or_insert(Instant::now() + DEBOUNCE);
                        }
                        Ok(Err(e)) => break e,
                        Err(e) => {
                            // The stream is fine: keep following it, and try the list again
                            // an interval from now.
                            if e.is_unauthenticated() {
                                client.renew_session().await;
                            }
                            let message = client.redact(&e.to_string()).await;
                            tracing::info!(namespace = ns, instance = name, error = %message, "relist failed; the stream goes on");
                            // A refused login is not tried again for a while: Argo CD locks the
                            // account out after a few.
                            let wait = if e.is_login_refused() { LOGIN_RETRY } else { self.config.interval };
                            relist_at = Instant::now() + wait;
                        }
                    }
                }
                _ = sleep_until(reopen_at) => {
                    *failures = 0;
                    *silent = 0;
                    return Round::Relist;
                }
                _ = leader_check.tick() => {
                    if !self.config.leadership.is_leader() {
                        return Round::Stop;
                    }
                }
                _ = self.cancel.cancelled() => return Round::Stop,
            }
        };
        // What arrived before the failure is true: publish it before saying the stream broke.
        if pending.is_some() {
            self.publish(StreamState::Streaming, &index);
        }
        metrics.stream_reconnect(ns, name, ended.category());
        match ended {
            StreamError::Full(full) => Round::Failed { state: full_state(full), wait: self.relist_period() },
            StreamError::Stalled(_) if !stream.any_bytes => {
                *silent += 1;
                if *silent >= SILENT_STREAMS {
                    *silent = 0;
                    let why = format!(
                        "{} streams in a row sent not one byte within {}s; a proxy before Argo CD may be buffering the stream",
                        SILENT_STREAMS,
                        self.config.stall.as_secs()
                    );
                    return Round::Failed {
                        state: StreamState::Unavailable(why),
                        wait: self.relist_period(),
                    };
                }
                self.failed(failures, &ended.to_string(), false).await
            }
            StreamError::Request(e) => {
                let unauthenticated = e.is_unauthenticated();
                self.failed(failures, &e.to_string(), unauthenticated).await
            }
            other => {
                // A stream that ran a while (an interval at least) and ended is a routine
                // reconnect, not a failure streak. One that ends soon after its first events
                // is a failure, however many bytes it sent.
                if stream.any_bytes && opened_at.elapsed() >= self.config.interval {
                    *failures = 0;
                }
                self.failed(failures, &other.to_string(), false).await
            }
        }
    }

    /// A stream that sent not one byte (not even its first event, though applications exist):
    /// twice in a row, a proxy before Argo CD is buffering it, and polling takes over.
    async fn silent(&self, failures: &mut u32, silent: &mut u32) -> Round {
        *silent += 1;
        if *silent >= SILENT_STREAMS {
            *silent = 0;
            let why = format!(
                "{SILENT_STREAMS} streams in a row sent not one byte within {}s; a proxy before Argo CD may be buffering the stream",
                self.config.stall.as_secs()
            );
            return Round::Failed { state: StreamState::Unavailable(why), wait: self.relist_period() };
        }
        self.failed(failures, &StreamError::Stalled(self.config.stall).to_string(), false).await
    }

    /// Argo CD refused the login: no new login before [`LOGIN_RETRY`], as the reconcile waits
    /// too (Argo CD locks an account out after 5 failed logins, for everyone using it). A
    /// change of the credentials starts a new task, which logs in at once.
    async fn login_refused(&self, e: &ArgoCdError) -> Round {
        let message = crate::text::cap(&self.config.client.redact(&e.to_string()).await);
        Round::Failed { state: StreamState::Reconnecting(message), wait: LOGIN_RETRY }
    }

    /// A failed list or stream: the session is renewed on 401, and the next round waits.
    async fn failed(&self, failures: &mut u32, message: &str, unauthenticated: bool) -> Round {
        if unauthenticated {
            self.config.client.renew_session().await;
        }
        *failures += 1;
        let message = crate::text::cap(&self.config.client.redact(message).await);
        Round::Failed {
            state: StreamState::Reconnecting(message),
            wait: crate::controller::backoff::stream_retry(*failures, self.config.interval),
        }
    }
}

/// A relist's index with what the stream said while it was in flight applied again (it may be
/// newer than the list).
pub(super) fn replayed(listed: IndexedApplications, changes: &Changes) -> Result<AppIndex, StreamError> {
    let mut index = listed.index.ok_or(StreamError::Full(IndexFull::Applications))?;
    changes.replay_onto(&mut index).map_err(StreamError::Full)?;
    Ok(index)
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
fn full_state(full: IndexFull) -> StreamState {
    match full {
        IndexFull::Applications => StreamState::TooManyApplications(full.to_string()),
        IndexFull::Budget(_) => StreamState::OverBudget(full.to_string()),
    }
}
