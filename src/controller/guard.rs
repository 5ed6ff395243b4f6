//! What every reconcile does around its own work: only the leader works, and only once every
//! watch has listed what exists; each run is timed, and a failed one is counted and retried
//! later and later (the kind's own count says how much later).

use std::future::Future;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::{Context, Error};

/// How often a standby looks again whether it leads.
pub const STANDBY_RECHECK: Duration = Duration::from_secs(2);

/// Runs `work` when this replica leads and the watches have synced.
pub async fn run(
    ctx: &Context,
    kind: &'static str,
    work: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(STANDBY_RECHECK));
    }
    if !ctx.synced.all() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = Instant::now();
    let result = work.await;
    ctx.metrics.reconciled(kind, started.elapsed());
    result
}

/// The error policy of every kind: a lost Lease waits as a standby does; any other failure is
/// counted and retried after `failed`'s wait (the kind counts failures in a row).
pub fn on_error<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    err: &Error,
    failed: impl FnOnce(&ObjectRef<K>) -> Duration,
) -> Action {
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    if matches!(err, Error::NotLeader) {
        tracing::debug!(kind, %namespace, %name, "not written: the Lease is not confirmed");
        return Action::requeue(STANDBY_RECHECK);
    }
    ctx.metrics.reconcile_failed(kind, err.category());
    let wait = failed(&ObjectRef::from_obj(obj));
    tracing::warn!(kind, %namespace, %name, error = %err, category = err.category(), retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}
