//! What a task publishes, and the handle the reconcile reads it from.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::DropGuard;

use super::task::Task;
use crate::argocd::stream::AppIndex;
use crate::argocd::tally::AppTally;
use crate::model::stream::StreamState;

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
    pub(super) followed: watch::Receiver<Followed>,
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) _stop: DropGuard,
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

impl Task {
    pub(super) fn set_state(&self, state: StreamState) {
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
    pub(super) fn publish(&self, state: StreamState, index: &AppIndex) {
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
