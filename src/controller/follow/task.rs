//! The task's loop: rounds, at most [`ROUNDS_PER_WINDOW`] a window, each waited for after a
//! failure; and its lists, in a check slot.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::{Followed, RELIST_INTERVALS, ROUNDS_PER_WINDOW, SILENT_STREAMS, Shared, TaskConfig};
use crate::argocd::ArgoCdError;
use crate::argocd::stream::IndexedApplications;
use crate::controller::slots::{Lane, PROVEN_LEASH};
use crate::model::stream::StreamState;

pub(super) struct Task {
    pub(super) config: TaskConfig,
    pub(super) publish: watch::Sender<Followed>,
    pub(super) shared: Shared,
    pub(super) cancel: CancellationToken,
    /// How the last list ended: its lane, as for a check (see `slots`).
    pub(super) last_list: std::sync::Mutex<Option<Result<Duration, ()>>>,
}

impl Task {
    pub(super) fn labels(&self) -> (&str, &str) {
        (self.config.key.namespace.as_deref().unwrap_or_default(), &self.config.key.name)
    }

    pub(super) fn relist_period(&self) -> Duration {
        crate::controller::backoff::spread(self.config.interval.saturating_mul(RELIST_INTERVALS))
    }

    pub(super) async fn run(self) {
        let mut streaks = Streaks::default();
        // When the last rounds that Argo CD served a list started: at most ROUNDS_PER_WINDOW
        // in ROUNDS_PER_WINDOW intervals. A round that could not even list (a server down)
        // cost Argo CD nothing, and only backs off.
        let mut served: std::collections::VecDeque<Instant> = std::collections::VecDeque::new();
        let window = self.config.interval.saturating_mul(ROUNDS_PER_WINDOW);
        loop {
            if self.cancel.is_cancelled() || !self.config.leadership.is_leader() {
                return;
            }
            if served.len() == ROUNDS_PER_WINDOW as usize
                && let Some(oldest) = served.front()
            {
                tokio::select! {
                    _ = sleep_until(*oldest + window) => {}
                    _ = self.cancel.cancelled() => return,
                }
            }
            let started = Instant::now();
            let mut listed = false;
            let ended = self.round(&mut streaks, &mut listed).await;
            if listed {
                served.push_back(started);
                if served.len() > ROUNDS_PER_WINDOW as usize {
                    served.pop_front();
                }
            }
            match ended {
                Round::Relist => {}
                Round::Stop => return,
                Round::Failed { state, wait } => {
                    tracing::info!(namespace = self.labels().0, instance = self.labels().1, state = state.reason(), message = %state_message(&state), retry_in = ?wait, "application stream not in use");
                    self.set_state(state);
                    tokio::select! {
                        _ = sleep(wait) => {}
                        _ = self.cancel.cancelled() => return,
                    }
                }
            }
        }
    }

    /// The application list, in a check slot: the lane follows how the last list went, and a
    /// list that outruns the proven lane's leash goes on in probation, as a check does (see
    /// `slots`). `None` once shutdown began.
    pub(super) async fn list(&self) -> Option<Result<IndexedApplications, ArgoCdError>> {
        let (ns, _) = self.labels();
        let client = &self.config.client;
        let metrics = self.config.metrics.as_ref();
        let last = *self.last_list.lock().unwrap_or_else(|e| e.into_inner());
        let mut leashed = Duration::ZERO;
        if Lane::of(last, client.timeout()) == Lane::Proven {
            let slot = self.shared.slots.acquire(ns, Lane::Proven).await?;
            let started = Instant::now();
            let listed = tokio::time::timeout(PROVEN_LEASH, client.list_index(metrics)).await;
            drop(slot);
            if let Ok(listed) = listed {
                self.remember_list(&listed, started.elapsed());
                return Some(listed);
            }
            leashed = PROVEN_LEASH;
        }
        let slot = self.shared.slots.acquire(ns, Lane::Probation).await?;
        let started = Instant::now();
        let listed = client.list_index(metrics).await;
        drop(slot);
        self.remember_list(&listed, leashed + started.elapsed());
        Some(listed)
    }

    fn remember_list(&self, listed: &Result<IndexedApplications, ArgoCdError>, took: Duration) {
        let last = listed.as_ref().map(|_| took).map_err(|_| ());
        *self.last_list.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }
}

fn state_message(state: &StreamState) -> &str {
    match state {
        StreamState::Reconnecting(m)
        | StreamState::Unavailable(m)
        | StreamState::TooManyApplications(m)
        | StreamState::OverBudget(m) => m,
        StreamState::Connecting | StreamState::Streaming => "",
    }
}

/// How one round (list, then stream) ended.
pub(super) enum Round {
    /// Ended cleanly: list and stream again at once. The stream reached [`MAX_STREAM_AGE`](super::MAX_STREAM_AGE),
    /// too many lines came during a relist to replay, or an instance with no application
    /// still has none (its stream answers only with a first event).
    Relist,
    /// Failed: `state` to show, after `wait`.
    Failed { state: StreamState, wait: Duration },
    /// Cancelled, or no longer the leader.
    Stop,
}

/// What a task counts from round to round: failures in a row (the wait after one grows with
/// them), and streams in a row that sent not one byte before stalling.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Streaks {
    pub(super) failures: u32,
    silent: u32,
}

impl Streaks {
    /// The stream proved healthy (a relist beside it, or it lived to its reopening): both
    /// counts start again.
    pub(super) fn reset(&mut self) {
        *self = Streaks::default();
    }

    /// One more stream sent not one byte before stalling. `true` when that makes
    /// [`SILENT_STREAMS`] in a row: a proxy before Argo CD is buffering the stream, and the
    /// count starts again.
    pub(super) fn silent_stream(&mut self) -> bool {
        self.silent += 1;
        if self.silent < SILENT_STREAMS {
            return false;
        }
        self.silent = 0;
        true
    }
}
