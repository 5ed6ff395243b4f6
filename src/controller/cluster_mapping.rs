//! The ClusterMapping reconcile: it only marks mappings whose ArgoCdInstance does not exist.
//! Every other mapping state is written by its instance's reconcile, from the same check.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::{Context, Error, STANDBY_RECHECK, apply};
use crate::crd::{ArgoCdInstance, ClusterMapping};
use crate::model::evaluate;
use crate::model::status::to_second;

pub async fn reconcile(mapping: Arc<ClusterMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(STANDBY_RECHECK));
    }
    let started = Instant::now();
    let result = reconcile_mapping(&mapping, &ctx).await;
    ctx.metrics.reconciled("clustermapping", started.elapsed());
    if result.is_ok() {
        ctx.retries.succeeded(&retry_key(&mapping));
    }
    result
}

/// The longest wait between retries of a failing mapping reconcile.
const MAPPING_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(60);

fn retry_key(m: &ClusterMapping) -> String {
    format!("clustermapping/{}/{}", m.namespace().unwrap_or_default(), m.name_any())
}

/// Marks a mapping whose instance does not exist. The instance is read from the API, not a
/// cache, so a deletion is never missed.
pub async fn reconcile_mapping(mapping: &ClusterMapping, ctx: &Context) -> Result<Action, Error> {
    let ns = mapping.namespace().unwrap_or_default();
    let instances: Api<ArgoCdInstance> = Api::namespaced(ctx.client.clone(), &ns);
    if instances.get_metadata_opt(&mapping.spec.instance_ref.name).await?.is_none() {
        let desired = evaluate::instance_not_found(mapping, to_second(Timestamp::now()));
        if mapping.status.as_ref() != Some(&desired) {
            apply::write_mapping_status(ctx, &ns, &mapping.name_any(), &desired).await?;
        }
    }
    Ok(Action::await_change())
}

pub fn error_policy(mapping: Arc<ClusterMapping>, err: &Error, ctx: Arc<Context>) -> Action {
    if matches!(err, Error::NotLeader) {
        return Action::requeue(STANDBY_RECHECK);
    }
    ctx.metrics.reconcile_failed("clustermapping", err.category());
    let wait = ctx.retries.failed(retry_key(&mapping), MAPPING_RETRY_CAP);
    tracing::warn!(namespace = mapping.namespace().unwrap_or_default(), mapping = %mapping.name_any(), error = %err, category = err.category(), retry_in = ?wait, "mapping reconcile failed");
    Action::requeue(wait)
}
