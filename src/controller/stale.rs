//! Staleness, apart from the checks: a status that says `connected` while its last successful
//! check is older than the limit becomes Ready=Unknown (reason `Stale`) even when no reconcile
//! runs for the instance, which is exactly when its checks cannot finish. The write names the
//! resourceVersion it was computed from, so it never overwrites a fresher status.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::ResourceExt;

use super::{Context, apply};
use crate::model::staleness;
use crate::model::status::to_second;

/// How often the statuses are looked at.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Marks stale statuses until the process is cancelled; only the leader writes.
pub async fn sweep(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.cancel.cancelled() => return,
        }
        if !ctx.leadership.may_write() || !ctx.synced.all() {
            continue;
        }
        let now = to_second(Timestamp::now());
        for instance in ctx.stores.instances.state() {
            let Some(mut s) = instance.status.clone() else { continue };
            if !staleness::mark_stale(&mut s, ctx.settings.stale_after(&instance), now) {
                continue;
            }
            let (ns, name) = (instance.namespace().unwrap_or_default(), instance.name_any());
            match apply::write_instance_status(&ctx, &instance, &s, true).await {
                Ok(()) => {
                    tracing::warn!(namespace = %ns, instance = %name, "status marked stale: no successful check for too long")
                }
                // A 409 means a reconcile wrote meanwhile: its status is the fresher one.
                Err(super::Error::Kube(kube::Error::Api(s))) if s.code == 409 => {
                    tracing::debug!(namespace = %ns, instance = %name, "stale mark not written: the status changed meanwhile")
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, instance = %name, error = %e, category = e.category(), "stale mark not written")
                }
            }
        }
    }
}
