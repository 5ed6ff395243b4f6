//! The ArgoCdInstance reconcile, in four steps that read top to bottom:
//! 1. *decide* (pure, [`state::decide`]): from what argomap remembers, is Argo CD polled?
//! 2. *fetch*: the I/O, with no lock held: the client (built when the settings changed) asks
//!    Argo CD for its clusters and applications;
//! 3. *evaluate* (pure, [`evaluate`]): the statuses of the instance and its ClusterMappings;
//! 4. *apply* ([`apply`]): write what changed, then events and metrics from what was written.
//!
//! The state is read in one lock section and stored in one other; a suspended instance takes
//! the same path with nothing fetched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::credentials::{self, CredentialsError, Resolved};
use super::state::{self, Failure, InstanceState, Plan, Trigger};
use super::{Context, Error, STANDBY_RECHECK, apply};
use crate::argocd::{self, ClientConfig};
use crate::crd::{ArgoCdInstance, REFRESH_ANNOTATION, Reason};
use crate::model::evaluate::{self, Observed, Outcome, evaluate};
use crate::model::status::to_second;

/// The controller's entry: only the leader works, and only once every watch has synced.
pub async fn reconcile(instance: Arc<ArgoCdInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(STANDBY_RECHECK));
    }
    if !ctx.synced.all() {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let started = Instant::now();
    let result = reconcile_instance(&instance, &ctx).await;
    ctx.metrics.reconciled("argocdinstance", started.elapsed());
    result
}

pub fn error_policy(instance: Arc<ArgoCdInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("argocdinstance", err.category());
    tracing::warn!(namespace = instance.namespace().unwrap_or_default(), instance = %instance.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// One reconcile: decide → fetch → evaluate → apply.
pub async fn reconcile_instance(instance: &ArgoCdInstance, ctx: &Context) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(instance);
    let all_mappings = ctx.mappings.state();
    let mappings = evaluate::mappings_of(instance, all_mappings.iter().map(|m| m.as_ref()));
    let interval = instance.spec.interval_duration();
    let resolved = if instance.spec.suspend { None } else { Some(read_credentials(instance, ctx).await?) };
    let trigger = Trigger {
        generation: instance.metadata.generation,
        refresh: instance.annotations().get(REFRESH_ANNOTATION).cloned(),
        suspended: instance.spec.suspend,
        fingerprint: resolved.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.fingerprint),
    };

    // 1. decide
    let mut state = ctx.states.get(&key, instance.metadata.uid.as_deref());
    let plan = state::decide(&state, &trigger, Instant::now());

    // 2. fetch
    let outcome = match plan {
        Plan::Suspend => Outcome::Suspended,
        Plan::Recompute => state.last_outcome(),
        Plan::Poll { connect, .. } => {
            let result = match resolved {
                Some(Ok(resolved)) => fetch(instance, ctx, &mut state, &resolved, connect).await,
                Some(Err(e)) => Err(Failure::new(e.reason(), e.to_string())),
                None => Err(Failure::new(Reason::Suspended, String::new())),
            };
            if let Err(Failure { reason, message, .. }) = &result {
                tracing::warn!(namespace = %key.namespace.as_deref().unwrap_or_default(), instance = %key.name, %reason, %message, "check failed");
            }
            state.record(result, &trigger, interval, Instant::now())
        }
    };
    let next_check = state.next_check;
    ctx.states.put(&key, (plan != Plan::Suspend).then_some(state));

    // 3. evaluate
    let refresh_handled = matches!(plan, Plan::Poll { .. }).then(|| trigger.refresh.clone()).flatten();
    let eval = evaluate(instance, &mappings, &outcome, refresh_handled, to_second(Timestamp::now()));

    // 4. apply
    let credentials_changed = matches!(plan, Plan::Poll { credentials_changed: true, .. });
    apply::apply(ctx, instance, &mappings, &outcome, &eval, credentials_changed).await?;

    if plan == Plan::Suspend {
        return Ok(Action::await_change());
    }
    let wait = next_check.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(interval);
    Ok(Action::requeue(wait.max(Duration::from_millis(100))))
}

/// The credentials Secret (and CA): a Kubernetes API failure fails the reconcile (retried),
/// a missing Secret or key is the check's result.
async fn read_credentials(
    instance: &ArgoCdInstance,
    ctx: &Context,
) -> Result<Result<Resolved, CredentialsError>, Error> {
    let ns = instance.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match credentials::load(&secrets, &ctx.secrets, &ns, &instance.spec).await {
        Err(e @ CredentialsError::Kube { .. }) => Err(Error::Credentials(e)),
        other => Ok(other),
    }
}

/// Polls Argo CD, first building a client when `connect` says the settings changed. No lock
/// is held here.
async fn fetch(
    instance: &ArgoCdInstance,
    ctx: &Context,
    state: &mut InstanceState,
    resolved: &Resolved,
    connect: bool,
) -> Result<Observed, Failure> {
    if connect {
        state.client = None;
        let config = ClientConfig {
            url: instance.spec.url.clone(),
            credentials: resolved.credentials.clone(),
            timeout: instance.spec.timeout_duration(),
            tls: resolved.tls.clone(),
            max_response_bytes: ctx.settings.max_response_bytes,
        };
        let client = argocd::Client::new(config).map_err(|e| failure(&e))?;
        state.client = Some((resolved.fingerprint, Arc::new(client)));
    }
    let Some((_, client)) = &state.client else {
        return Err(Failure::new(Reason::Pending, "no Argo CD client"));
    };
    match client.snapshot(ctx.metrics.as_ref()).await {
        Ok(snapshot) => Ok(Observed::from_snapshot(snapshot)),
        Err(e) => Err(failure(&e)),
    }
}

fn failure(e: &argocd::ArgoCdError) -> Failure {
    Failure { reason: evaluate::reason_of(e), message: e.to_string(), login_refused: e.is_login_refused() }
}
