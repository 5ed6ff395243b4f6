//! Watch mode: one task per instance follows Argo CD's application stream and keeps the
//! per-application index ([`AppIndex`](crate::argocd::stream::AppIndex)). It lists, opens the
//! stream (from the start: Argo CD answers a stream only with its first event, see
//! `argocd::stream`), applies events, and publishes the tally (debounced) and its state; the
//! instance's reconcile reads them. The reconcile still checks the cluster list every interval,
//! and lists applications itself whenever the stream is not open, so a broken stream never
//! leaves the status older than polling would.
//!
//! The task ends when its last handle is dropped (instance deleted, changed, suspended, or
//! back to polling), on shutdown, and when this process stops leading.
//!
//! `task` holds the task's loop (its rounds, paced) and its lists in a check slot, `round` one
//! round (a list, the stream opened, how it ended), `streaming` the open stream followed until
//! it ends, and `published` what the task publishes and the handle the reconcile reads it from.

mod published;
mod round;
mod streaming;
mod task;

pub use published::{Followed, Follower};

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::slots::Slots;
use crate::argocd;
use crate::argocd::budget::WatchBudget;
use crate::argocd::tally::AppTally;
use crate::crd::ArgoCdInstance;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::stream::StreamState;
use task::Task;

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
/// At most [`PUBLISH_BURST`] publications of the stream's changes in any window this long: a
/// fleet whose applications change all the time (health, with `spec.applications.health`) gets
/// at most 12 status writes a minute per instance, not one per change, while a change after a
/// quiet spell still shows within [`DEBOUNCE`].
pub const PUBLISH_WINDOW: Duration = Duration::from_secs(15);
pub const PUBLISH_BURST: usize = 3;
/// Default of `--stream-stall-timeout`: three missed keepalives.
pub const DEFAULT_STALL: Duration = Duration::from_secs(45);
/// Streams in a row that sent not one byte before stalling: then a proxy is buffering them.
const SILENT_STREAMS: u32 = 2;

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

#[cfg(test)]
mod tests;
