//! The read API: `GET /organization/{organizationId}/argoCdDestinationClusterMapping`, Qovery's
//! response for the instances of one organization the caller may list, and beside it
//! `GET /organization/{organizationId}/argoCdClusterDeployments`, the same instances seen per
//! platform cluster. Both paths share everything but the body they build.
//!
//! Order of checks: token (401), then organizationId (400), then readiness (503), then access
//! (403), so a caller without a valid token learns nothing about the server, and a caller with
//! no access to an organization cannot tell whether it exists (both are 403). Tokens not
//! reviewed recently are rate-limited per client address and in flight (429). Every request has
//! one deadline (`request_timeout`) that includes waiting for a slot and reviews.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::auth::bearer_token;
use super::error::ApiError;
use super::response::Encoded;
use super::{AppState, ClientAddr, Inner};
use crate::crd::ArgoCdInstance;
use crate::model::qovery::{self, SecretUids};
use crate::model::{fleet, organization, staleness};

/// Route of Qovery's read API (axum path syntax).
pub const PATH: &str = "/organization/{organization_id}/argoCdDestinationClusterMapping";

/// Route of the view per platform cluster (axum path syntax).
pub const CLUSTERS_PATH: &str = "/organization/{organization_id}/argoCdClusterDeployments";

/// Which body a read-API path builds from the instances the caller may see.
#[derive(Clone, Copy, Debug)]
enum View {
    /// Qovery's `ArgoCdInstanceMappingResponseList`.
    Mappings,
    /// The instances per platform cluster (`model::fleet::response`).
    Clusters,
}

pub(super) async fn destination_cluster_mappings(
    State(app): State<AppState>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    respond(&app, client, &headers, path, View::Mappings).await
}

pub(super) async fn cluster_deployments(
    State(app): State<AppState>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    respond(&app, client, &headers, path, View::Clusters).await
}

async fn respond(
    app: &AppState,
    client: Option<Extension<ClientAddr>>,
    headers: &HeaderMap,
    path: Result<Path<String>, PathRejection>,
    view: View,
) -> Response {
    let deadline = app.inner.config.request_timeout;
    let client = client.map(|Extension(ClientAddr(addr))| addr.ip());
    match tokio::time::timeout(deadline, organization_view(&app.inner, client, headers, path, view)).await {
        Ok(Ok(answer)) => answer.into_response_with("application/json"),
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Timeout(deadline).into_response(),
    }
}

async fn organization_view(
    app: &Inner,
    client: Option<IpAddr>,
    headers: &HeaderMap,
    path: Result<Path<String>, PathRejection>,
    view: View,
) -> Result<Encoded, ApiError> {
    // Never closed, so an error cannot happen; were it to, refusing is the safe answer.
    let _slot = app.requests.acquire().await.map_err(|_| ApiError::NotReady)?;
    let instances = visible_instances(app, client, headers, path).await?;
    let visible: Vec<&ArgoCdInstance> = instances.iter().map(|i| i.as_ref()).collect();
    match view {
        View::Mappings => {
            let uids = secret_uids(&app.secrets, &visible);
            answer(app, visible, &uids).await
        }
        View::Clusters => clusters_answer(app, visible).await,
    }
}

/// The instances of the path's organization the caller may see (empty: an organization
/// with none, for a caller who could see every organization's).
async fn visible_instances(
    app: &Inner,
    client: Option<IpAddr>,
    headers: &HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Vec<Arc<ArgoCdInstance>>, ApiError> {
    let caller = match &app.access {
        Some(access) => Some(access.authenticate(&bearer_token(headers)?, client).await?),
        None => None,
    };
    let Path(organization_id) = path.map_err(|e| ApiError::BadPath(e.body_text()))?;
    if !qovery::is_uuid(&organization_id) {
        return Err(ApiError::BadOrganizationId);
    }
    // An unsynced store would make every organization look unknown.
    if !app.readiness.is_ready() {
        return Err(ApiError::NotReady);
    }
    // Only instances whose namespace is bound to the organization (else the instance's
    // OrganizationBound condition says why it is left out).
    let bound = |i: &ArgoCdInstance| {
        let ns = i.namespace().unwrap_or_default();
        let namespace = app.namespaces.get(&ObjectRef::new(&ns));
        let label = namespace.as_ref().and_then(|n| organization::label_of(n.metadata.labels.as_ref()));
        organization::is_bound(app.config.organization_binding, &organization_id, label)
    };
    let instances: Vec<Arc<ArgoCdInstance>> = app
        .instances
        .state()
        .into_iter()
        .filter(|i| qovery::in_organization(i, &organization_id) && bound(i))
        .collect();
    if instances.is_empty() {
        // Truthful only for a caller who could see every organization's instances; anyone else
        // gets the answer an organization it cannot see gives (403): no existence oracle.
        return match (&app.access, &caller) {
            (Some(access), Some((key, user))) if !access.allowed_everywhere(*key, user).await? => {
                Err(ApiError::Forbidden)
            }
            _ => Ok(Vec::new()),
        };
    }
    let namespaces: BTreeSet<String> = instances.iter().map(|i| i.namespace().unwrap_or_default()).collect();
    let allowed = match (&app.access, &caller) {
        (Some(access), Some((key, user))) => access.allowed(*key, user, namespaces).await?,
        _ => namespaces,
    };
    if allowed.is_empty() {
        return Err(ApiError::Forbidden);
    }
    Ok(instances.into_iter().filter(|i| allowed.contains(&i.namespace().unwrap_or_default())).collect())
}

/// Whether an instance's connected status is too old to be true now (reported as `error`).
fn stale_at(app: &Inner, now: jiff::Timestamp) -> impl Fn(&ArgoCdInstance) -> bool + '_ {
    let (intervals, heartbeat) = (app.config.stale_after_intervals, app.config.status_heartbeat);
    move |i: &ArgoCdInstance| {
        let limit = staleness::stale_limit(i, intervals, heartbeat);
        i.status.as_ref().is_some_and(|s| staleness::is_stale(s, limit, now))
    }
}

/// Qovery's answer, within [`HttpConfig::max_response_bytes`](super::HttpConfig).
async fn answer(app: &Inner, visible: Vec<&ArgoCdInstance>, uids: &SecretUids) -> Result<Encoded, ApiError> {
    let stale = stale_at(app, jiff::Timestamp::now());
    let (bytes, skipped) = qovery::write_capped(visible, uids, &stale, app.config.max_response_bytes)
        .map_err(|e| ApiError::TooLarge(e.limit))?;
    for s in &skipped {
        tracing::debug!(namespace = %s.namespace, instance = %s.name, reason = s.reason.as_str(), "instance left out of the read API response");
    }
    encoded(app, bytes).await
}

/// The answer per platform cluster, within the same byte limit.
async fn clusters_answer(app: &Inner, visible: Vec<&ArgoCdInstance>) -> Result<Encoded, ApiError> {
    let stale = stale_at(app, jiff::Timestamp::now());
    let bytes = fleet::response::write_capped(visible, &stale, app.config.max_response_bytes)
        .map_err(|e| ApiError::TooLarge(e.limit))?;
    encoded(app, bytes).await
}

/// `bytes` as the response, holding their share of the in-flight answer bytes until written.
async fn encoded(app: &Inner, bytes: Vec<u8>) -> Result<Encoded, ApiError> {
    // Waits for room within the request's deadline (the caller's timeout ends the wait).
    let kib = u32::try_from(super::kib(bytes.len()).max(1)).unwrap_or(u32::MAX);
    let share = app.inflight.clone().acquire_many_owned(kib).await.map_err(|_| ApiError::NotReady)?;
    Ok(Encoded::new(Bytes::from(bytes), app.config.response_deadline, Some(share)))
}

/// The UIDs of the visible instances' credentials Secrets, from the controller's
/// metadata-only Secret watch: no API call per request.
fn secret_uids(secrets: &Store<PartialObjectMeta<Secret>>, instances: &[&ArgoCdInstance]) -> SecretUids {
    instances
        .iter()
        .filter_map(|i| {
            let (ns, name) = (i.namespace().unwrap_or_default(), i.spec.credentials.secret_ref.name.clone());
            let secret = secrets.get(&ObjectRef::new(&name).within(&ns))?;
            let uid = secret.metadata.uid.clone()?;
            Some(((ns, name), uid))
        })
        .collect()
}
