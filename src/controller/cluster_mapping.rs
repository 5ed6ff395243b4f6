//! The ClusterMapping reconcile: it only marks mappings whose ArgoCdInstance does not exist.
//! Every other mapping state is written by its instance's reconcile, from the same check.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{Context, Error, apply, guard};
use crate::crd::{ArgoCdInstance, ClusterMapping};
use crate::model::evaluate;
use crate::model::status::to_second;

/// The controller's entry, in the guard every reconcile shares.
pub async fn reconcile(mapping: Arc<ClusterMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    let result = guard::run(&ctx, KIND, reconcile_mapping(&mapping, &ctx)).await;
    if result.is_ok() {
        ctx.mappings.succeeded(&ObjectRef::from_obj(mapping.as_ref()));
    }
    result
}

/// The kind's word in metrics and logs.
const KIND: &str = "clustermapping";

/// The longest wait between retries of a failing mapping reconcile.
const MAPPING_RETRY_CAP: Duration = Duration::from_secs(60);

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
    guard::on_error(&ctx, KIND, mapping.as_ref(), err, |key| ctx.mappings.failed(key, MAPPING_RETRY_CAP))
}
