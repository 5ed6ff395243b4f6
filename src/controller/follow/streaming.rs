//! The open stream, followed until it ends: its lines applied to the index, the changes
//! published (debounced), and the periodic relist beside it, which heals whatever the stream
//! missed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::{Instant, sleep_until};

use super::task::Task;
use super::task::{Round, Streaks};
use super::{DEBOUNCE, PUBLISH_BURST, PUBLISH_WINDOW};
use crate::argocd::ArgoCdError;
use crate::argocd::stream::{
    AppIndex, AppStream, Changes, IndexFull, IndexedApplications, Line, StreamError, apply_line_recording,
};
use crate::controller::backoff::LOGIN_RETRY;
use crate::model::stream::StreamState;

/// A relist in flight beside the stream (`None`: shutdown began while it waited for a slot).
type Listing<'a> =
    Pin<Box<dyn Future<Output = Option<Result<IndexedApplications, ArgoCdError>>> + Send + 'a>>;

impl Task {
    /// Follows `stream` into `index` until it ends (`Ok`: why) or the round does (`Err`: at
    /// `reopen_at`, on shutdown or when leadership is lost). The list is read again at
    /// `relist_at` and every relist period after it. What arrived before the stream ended is
    /// published.
    pub(super) async fn follow(
        &self,
        stream: &mut AppStream,
        index: &mut AppIndex,
        mut relist_at: Instant,
        reopen_at: Instant,
        streaks: &mut Streaks,
    ) -> Result<StreamError, Round> {
        let mut pending: Option<Instant> = None;
        // A relist in flight, and the lines read since it started: they are applied to the
        // index as usual, and again to the list once it is in, since the list may have been
        // taken before them. Each event carries its application's whole projected state and
        // the stream keeps their order, so replaying them onto the list leaves every
        // application as its latest event (or the list, if newer) says.
        let mut relisting: Option<(Listing<'_>, Changes)> = None;
        let mut leader_check = tokio::time::interval(Duration::from_secs(1));
        // The stall is timed from the last line, not from each wait: the other branches
        // (debounce, leadership) would otherwise restart it for ever.
        let mut stall_at = Instant::now() + self.config.stall;
        // At most PUBLISH_BURST publications (so status writes) in any PUBLISH_WINDOW: a change
        // after a quiet spell shows within DEBOUNCE, a busy fleet's changes are folded together.
        let mut published: VecDeque<Instant> = VecDeque::with_capacity(PUBLISH_BURST);
        let ended = loop {
            let allowed = match published.front() {
                Some(first) if published.len() == PUBLISH_BURST => *first + PUBLISH_WINDOW,
                _ => Instant::now(),
            };
            let debounce = async {
                match pending {
                    Some(at) => sleep_until(at.max(allowed)).await,
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
                    if let Err(e) = self.apply(index, changes, &line, &mut pending) {
                        break e;
                    }
                }
                _ = debounce => {
                    pending = None;
                    if published.len() == PUBLISH_BURST {
                        published.pop_front();
                    }
                    published.push_back(Instant::now());
                    self.publish(StreamState::Streaming, index);
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
                    let Some(listed) = listed else { return Err(Round::Stop) };
                    match listed {
                        Ok(listed) => match self.heal(listed, &changes, index) {
                            Ok(()) => {
                                streaks.reset();
                                pending.get_or_insert(Instant::now() + DEBOUNCE);
                            }
                            Err(e) => break e,
                        },
                        Err(e) => {
                            let wait = self.relist_failed(&e).await;
                            relist_at = Instant::now() + wait;
                        }
                    }
                }
                _ = sleep_until(reopen_at) => {
                    streaks.reset();
                    return Err(Round::Relist);
                }
                _ = leader_check.tick() => {
                    if !self.config.leadership.is_leader() {
                        return Err(Round::Stop);
                    }
                }
                _ = self.cancel.cancelled() => return Err(Round::Stop),
            }
        };
        // What arrived before the failure is true: publish it before saying the stream broke.
        if pending.is_some() {
            self.publish(StreamState::Streaming, index);
        }
        Ok(ended)
    }

    /// Applies one line to `index` (and to `changes`, a relist being in flight); a change is
    /// published within [`DEBOUNCE`] of the first of its burst (`pending`).
    fn apply(
        &self,
        index: &mut AppIndex,
        changes: Option<&mut Changes>,
        line: &str,
        pending: &mut Option<Instant>,
    ) -> Result<(), StreamError> {
        match apply_line_recording(index, changes, line)? {
            Line::Idle => {}
            Line::Event { kind, changed } => {
                let (ns, name) = self.labels();
                self.config.metrics.stream_event(ns, name, kind, Timestamp::now());
                if changed && pending.is_none() {
                    *pending = Some(Instant::now() + DEBOUNCE);
                }
            }
        }
        Ok(())
    }

    /// A relist is in: it replaces `index`, with what the stream said meanwhile (`changes`)
    /// applied again, and takes over its charge.
    fn heal(
        &self,
        listed: IndexedApplications,
        changes: &Changes,
        index: &mut AppIndex,
    ) -> Result<(), StreamError> {
        let mut fresh = replayed(listed, changes)?;
        fresh.replace_charge_of(index).map_err(StreamError::Full)?;
        let (ns, name) = self.labels();
        self.config.metrics.stream_relisted(ns, name);
        *index = fresh;
        Ok(())
    }

    /// A relist failed; the stream is fine, and goes on. Returns when to list again: an
    /// interval from now, or after [`LOGIN_RETRY`] when the login was refused.
    async fn relist_failed(&self, e: &ArgoCdError) -> Duration {
        let (ns, name) = self.labels();
        let client = &self.config.client;
        if e.is_unauthenticated() {
            client.renew_session().await;
        }
        let message = client.redact(&e.to_string()).await;
        tracing::info!(namespace = ns, instance = name, error = %message, "relist failed; the stream goes on");
        // A refused login is not tried again for a while: Argo CD locks the account out after a
        // few.
        if e.is_login_refused() { LOGIN_RETRY } else { self.config.interval }
    }
}

/// A relist's index with what the stream said while it was in flight applied again (it may be
/// newer than the list).
pub(super) fn replayed(listed: IndexedApplications, changes: &Changes) -> Result<AppIndex, StreamError> {
    let mut index = listed.index.ok_or(StreamError::Full(IndexFull::Applications))?;
    changes.replay_onto(&mut index).map_err(StreamError::Full)?;
    Ok(index)
}
