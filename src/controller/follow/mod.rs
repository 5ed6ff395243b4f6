//! Watch mode: one task per instance follows Argo CD's application stream and keeps the
//! per-application index ([`AppIndex`]). It lists, opens the stream (from the start: Argo CD
//! answers a stream only with its first event, see `argocd::stream`), applies events, and
//! publishes the tally (debounced) and its state; the instance's reconcile reads them. The
//! reconcile still checks the cluster list every interval, and lists applications itself
//! whenever the stream is not open, so a broken stream never leaves the status older than
//! polling would.
//!
//! The task ends when its last handle is dropped (instance deleted, changed, suspended, or
//! back to polling), on shutdown, and when this process stops leading.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::slots::{Lane, PROVEN_LEASH, Slots};
use super::state::LOGIN_RETRY;
use crate::argocd::budget::WatchBudget;
use crate::argocd::stream::{
    AppIndex, Changes, IndexFull, IndexedApplications, KEEPALIVE, Line, StreamError, apply_line_recording,
};
use crate::argocd::tally::AppTally;
use crate::argocd::{self, ArgoCdError};
use crate::crd::ArgoCdInstance;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::stream::StreamState;

/// The full list is read again every this many intervals (and after every reconnect): Argo CD
/// drops events when a watcher falls behind, and the list heals whatever was missed. The open
/// stream stays open across these relists: a new stream would begin by sending every
/// application again, uncompressed (Argo CD never gzips an event stream), where the list is
/// gzipped.
pub const RELIST_INTERVALS: u32 = 10;
/// A stream is opened again after this long even when healthy (a connection should not live
/// for ever through proxies); failures reopen it sooner.
pub const MAX_STREAM_AGE: Duration = Duration::from_secs(6 * 60 * 60);
/// Rounds that Argo CD served a list in, in any window of this many intervals: a server that
/// ends every stream at once gets one list and one stream an interval (with the reconcile's
/// own list and cluster list, twice what polling costs it), however soon it hangs up.
const ROUNDS_PER_WINDOW: u32 = 2;
/// Changes are published at most this long after the first of a burst.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Default of `--stream-stall-timeout`: three missed keepalives.
pub const DEFAULT_STALL: Duration = Duration::from_secs(45);
/// Streams in a row that sent not one byte before stalling: then a proxy is buffering them.
const SILENT_STREAMS: u32 = 2;

/// A relist in flight beside the stream (`None`: shutdown began while it waited for a slot).
type Listing<'a> =
    Pin<Box<dyn Future<Output = Option<Result<IndexedApplications, ArgoCdError>>> + Send + 'a>>;

/// What the task publishes.
#[derive(Clone, Debug)]
pub struct Followed {
    pub state: StreamState,
    /// The applications as the stream has them (meaningful while streaming).
    pub tally: Arc<AppTally>,
    /// Grows with every publication: the reconcile recomputes when it differs from the one it
    /// evaluated last.
    pub version: u64,
}

/// A handle on one instance's task; the task stops when the last handle goes.
pub struct Follower {
    followed: watch::Receiver<Followed>,
    task: tokio::task::JoinHandle<()>,
    _stop: DropGuard,
}

impl Follower {
    /// What the task published last.
    pub fn current(&self) -> Followed {
        self.followed.borrow().clone()
    }

    /// Whether the task ended (leadership lost, shutdown): a new one is started then.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits, at most `limit`, until the task is past `Connecting` (its first list and stream).
    pub async fn settled(&self, limit: Duration) -> Followed {
        let mut rx = self.followed.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(|f| f.state != StreamState::Connecting)).await;
        self.current()
    }
}

/// What every task shares: where it reports (changes of an instance wake its reconcile), the
/// check slots its lists take, the byte budget of every watch, and the shutdown token.
#[derive(Clone)]
pub struct Shared {
    notify: futures::channel::mpsc::UnboundedSender<ObjectRef<ArgoCdInstance>>,
    /// Cancelled on shutdown; every task's token is a child of it.
    pub cancel: CancellationToken,
    slots: Arc<Slots>,
    budget: Arc<WatchBudget>,
}

impl Shared {
    pub(super) fn new(
        notify: futures::channel::mpsc::UnboundedSender<ObjectRef<ArgoCdInstance>>,
        slots: Arc<Slots>,
        budget: Arc<WatchBudget>,
        cancel: CancellationToken,
    ) -> Self {
        Shared { notify, cancel, slots, budget }
    }

    /// Shared by tasks nobody listens to (reconciles driven by hand, in tests), with 8 slots of
    /// their own and `budget`.
    pub fn detached(budget: Arc<WatchBudget>) -> Self {
        let (notify, _) = futures::channel::mpsc::unbounded();
        let cancel = CancellationToken::new();
        Shared::new(notify, Arc::new(Slots::new(8, cancel.clone())), budget, cancel)
    }
}

/// What one task needs: the instance it follows, its client, its interval and stall timeout,
/// the metrics it records, and the leadership it stops without.
pub struct TaskConfig {
    pub key: ObjectRef<ArgoCdInstance>,
    pub client: Arc<argocd::Client>,
    pub interval: Duration,
    pub stall: Duration,
    pub metrics: Arc<Metrics>,
    pub leadership: Leadership,
}

/// Starts following one instance.
pub fn start(config: TaskConfig, shared: &Shared) -> Follower {
    let (tx, rx) = watch::channel(Followed {
        state: StreamState::Connecting,
        tally: Arc::new(AppTally::default()),
        version: 0,
    });
    let cancel = shared.cancel.child_token();
    let task = Task {
        config,
        publish: tx,
        shared: shared.clone(),
        cancel: cancel.clone(),
        last_list: Default::default(),
    };
    let task = tokio::spawn(task.run());
    Follower { followed: rx, task, _stop: cancel.drop_guard() }
}

struct Task {
    config: TaskConfig,
    publish: watch::Sender<Followed>,
    shared: Shared,
    cancel: CancellationToken,
    /// How the last list ended: its lane, as for a check (see `slots`).
    last_list: std::sync::Mutex<Option<Result<Duration, ()>>>,
}

/// How one round (list, then stream) ended.
enum Round {
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
    fn labels(&self) -> (&str, &str) {
        (self.config.key.namespace.as_deref().unwrap_or_default(), &self.config.key.name)
    }

    fn relist_period(&self) -> Duration {
        super::backoff::spread(self.config.interval.saturating_mul(RELIST_INTERVALS))
    }

    async fn run(self) {
        let mut failures = 0u32;
        let mut silent = 0u32;
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
            let ended = self.round(&mut failures, &mut silent, &mut listed).await;
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
    async fn list(&self) -> Option<Result<IndexedApplications, ArgoCdError>> {
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

    /// One list and one stream, until the stream fails or reaches [`MAX_STREAM_AGE`]; the
    /// periodic relists happen beside the open stream.
    async fn round(&self, failures: &mut u32, silent: &mut u32, listed_ok: &mut bool) -> Round {
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
            wait: super::backoff::stream_retry(*failures, self.config.interval),
        }
    }

    fn set_state(&self, state: StreamState) {
        let (ns, name) = self.labels();
        self.config.metrics.stream_up(ns, name, state.is_streaming());
        let changed = self.publish.send_if_modified(|f| {
            if f.state == state {
                return false;
            }
            f.state = state;
            f.version += 1;
            true
        });
        if changed {
            let _ = self.shared.notify.unbounded_send(self.config.key.clone());
        }
    }

    /// Publishes `index`'s tally in `state`, and wakes the reconcile if either changed.
    fn publish(&self, state: StreamState, index: &AppIndex) {
        let (ns, name) = self.labels();
        self.config.metrics.stream_up(ns, name, state.is_streaming());
        let tally = index.tally();
        let changed = self.publish.send_if_modified(|f| {
            if f.state == state && *f.tally == tally {
                return false;
            }
            f.state = state;
            f.tally = Arc::new(tally);
            f.version += 1;
            true
        });
        if changed {
            let _ = self.shared.notify.unbounded_send(self.config.key.clone());
        }
    }
}

/// A relist's index with what the stream said while it was in flight applied again (it may be
/// newer than the list).
fn replayed(listed: IndexedApplications, changes: &Changes) -> Result<AppIndex, StreamError> {
    let mut index = listed.index.ok_or(StreamError::Full(IndexFull::Applications))?;
    changes.replay_onto(&mut index).map_err(StreamError::Full)?;
    Ok(index)
}

/// Answers that say this server (or a proxy before it) does not serve the stream at all:
/// retrying soon cannot help, polling can.
fn cannot_stream(e: &ArgoCdError) -> bool {
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

fn state_message(state: &StreamState) -> &str {
    match state {
        StreamState::Reconnecting(m)
        | StreamState::Unavailable(m)
        | StreamState::TooManyApplications(m)
        | StreamState::OverBudget(m) => m,
        StreamState::Connecting | StreamState::Streaming => "",
    }
}

#[cfg(test)]
mod tests;
