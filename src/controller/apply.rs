//! Apply: the status writes (server-side apply on `/status`, field manager `argomap`, only
//! what changed), then the events and metrics that describe what was written. A failed write
//! publishes nothing, so no event or gauge claims a state that Kubernetes does not show.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use super::{Context, Error};
use crate::crd::{ArgoCdInstance, ClusterMapping, ClusterMappingStatus, MANAGER};
use crate::model::evaluate::{Evaluation, Outcome};
use crate::model::events::{self, Transition};
use crate::model::fleet;
use crate::model::status;
use crate::text;

/// Writes the evaluation of one instance reconcile, then publishes its events and metrics.
pub async fn apply(
    ctx: &Context,
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    outcome: &Outcome,
    eval: &Evaluation,
    credentials_changed: bool,
) -> Result<(), Error> {
    write(ctx, instance, mappings, eval).await?;
    // A check can finish after this replica lost the Lease with nothing to write (the status
    // unchanged); its events and series belong to the new leader, and the series were dropped
    // when this one stood by.
    if !ctx.leadership.may_write() {
        return Err(Error::NotLeader);
    }

    let mut transitions = events::instance(instance.status.as_ref(), &eval.instance);
    transitions.extend(fleet::events::shared(instance.status.as_ref(), &eval.instance));
    if credentials_changed {
        transitions.insert(0, events::credentials_changed());
    }
    publish(ctx, instance, transitions).await;
    for (name, desired) in &eval.mappings {
        if let Some(m) = mappings.iter().find(|m| &m.name_any() == name) {
            publish(ctx, *m, events::mapping(m.status.as_ref(), desired).into_iter().collect()).await;
        }
    }
    record_metrics(ctx, instance, outcome, eval);
    Ok(())
}

fn record_metrics(ctx: &Context, instance: &ArgoCdInstance, outcome: &Outcome, eval: &Evaluation) {
    let ns = instance.namespace().unwrap_or_default();
    let name = instance.name_any();
    let checked_at = eval.instance.connection.as_ref().and_then(|c| c.last_checked_at.as_ref()).map(|t| t.0);
    let dangling = eval.instance.summary.as_ref().map_or(0, |s| s.dangling_destinations);
    match (outcome, &eval.linkage) {
        (Outcome::Observed { observed, fresh: true }, Some(linkage)) => {
            let at = checked_at.unwrap_or_default();
            ctx.metrics.check_succeeded(&ns, &name, observed, linkage, dangling, at);
            tracing::info!(namespace = %ns, instance = %name, linked = linkage.linked.len(), unlinked = linkage.unlinked.len(),
                orphaned = linkage.orphaned.len(), applications = observed.destinations.applications,
                unresolved = observed.destinations.unresolved, unresolved_examples = ?observed.destinations.unresolved_examples,
                "check succeeded");
        }
        (Outcome::Observed { .. }, Some(linkage)) => ctx.metrics.linkage(&ns, &name, linkage, dangling),
        (Outcome::Failed { reason, fresh: true, .. }, _) => {
            ctx.metrics.check_failed(&ns, &name, *reason, checked_at.unwrap_or_default())
        }
        _ => {}
    }
}

/// Writes what changed: the instance status (see [`status::instance_needs_write`]) and each
/// mapping status that differs from what the mapping has.
async fn write(
    ctx: &Context,
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    eval: &Evaluation,
) -> Result<(), Error> {
    let ns = instance.namespace().unwrap_or_default();
    if status::instance_needs_write(instance.status.as_ref(), &eval.instance, ctx.settings.status_heartbeat) {
        let api: Api<ArgoCdInstance> = Api::namespaced(ctx.client.clone(), &ns);
        let name = instance.name_any();
        match patch_status(ctx, &api, &name, None, &eval.instance).await {
            Err(Error::Kube(kube::Error::Api(e))) if too_large(&e) => {
                // Retrying the same status would fail forever: write one that says why.
                tracing::warn!(namespace = %ns, instance = %name, error = %e.message, "status refused as too large; writing a minimal one");
                let minimal = status::minimal(
                    &eval.instance,
                    &text::cap(&e.message),
                    status::to_second(jiff::Timestamp::now()),
                );
                patch_status(ctx, &api, &name, None, &minimal).await?;
            }
            other => other?,
        }
    }
    for (name, desired) in &eval.mappings {
        let current = mappings.iter().find(|m| &m.name_any() == name).and_then(|m| m.status.as_ref());
        if current != Some(desired) {
            write_mapping_status(ctx, &ns, name, desired).await?;
        }
    }
    Ok(())
}

/// Writes `status` over `instance`'s, with nothing published; with `if_unchanged`, only if
/// the object is still at the resourceVersion it was read at (the API answers 409 otherwise).
pub async fn write_instance_status(
    ctx: &Context,
    instance: &ArgoCdInstance,
    status: &crate::crd::ArgoCdInstanceStatus,
    if_unchanged: bool,
) -> Result<(), Error> {
    let api: Api<ArgoCdInstance> =
        Api::namespaced(ctx.client.clone(), &instance.namespace().unwrap_or_default());
    let version = instance.resource_version().filter(|_| if_unchanged);
    patch_status(ctx, &api, &instance.name_any(), version.as_deref(), status).await
}

/// Whether the API refused a write for its size: the apiserver's own body limit (413) or
/// etcd's request limit (passed on as a 500 "request is too large").
fn too_large(e: &kube::core::Status) -> bool {
    e.code == 413 || e.message.to_ascii_lowercase().contains("too large")
}

/// Writes one ClusterMapping status.
pub async fn write_mapping_status(
    ctx: &Context,
    namespace: &str,
    name: &str,
    status: &ClusterMappingStatus,
) -> Result<(), Error> {
    let api: Api<ClusterMapping> = Api::namespaced(ctx.client.clone(), namespace);
    patch_status(ctx, &api, name, None, status).await
}

/// Server-side apply of a status, as field manager `argomap`; with `resource_version`, only
/// over that version of the object.
async fn patch_status<K>(
    ctx: &Context,
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    status: &impl Serialize,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // Checked before every write, not once per reconcile: a check can outlast the Lease. The
    // write itself must end within the confirmed Lease too (its own timeout is longer).
    let Some(window) = ctx.leadership.write_window() else {
        return Err(Error::NotLeader);
    };
    let mut patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "status": status,
    });
    if let Some(rv) = resource_version {
        patch["metadata"]["resourceVersion"] = rv.into();
    }
    let (params, patch) = (PatchParams::apply(MANAGER).force(), Patch::Apply(&patch));
    tokio::time::timeout(window, api.patch_status(name, &params, &patch))
        .await
        .map_err(|_| Error::NotLeader)??;
    tracing::debug!(kind = K::kind(&()).as_ref(), name, "status written");
    Ok(())
}

/// Publishes events best-effort: a failure is logged, never fails the reconcile.
async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, transitions: Vec<Transition>) {
    let reference = obj.object_ref(&());
    for t in transitions {
        let Some(window) = ctx.leadership.write_window() else {
            return;
        };
        let event = KubeEvent {
            type_: match t.type_ {
                events::EventType::Normal => EventType::Normal,
                events::EventType::Warning => EventType::Warning,
            },
            reason: t.reason.into(),
            note: Some(text::cap(&t.note)),
            action: t.action.into(),
            secondary: None,
        };
        match tokio::time::timeout(window, ctx.recorder.publish(&event, &reference)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(reason = t.reason, error = %e, "cannot record event"),
            Err(_) => {
                return tracing::debug!(
                    reason = t.reason,
                    "event abandoned: the Lease is no longer confirmed"
                );
            }
        }
    }
}
