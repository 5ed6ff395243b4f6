//! The ArgoCdInstance reconcile, in four steps that read top to bottom:
//! 1. *decide* (pure, [`state::decide`]): from what argomap remembers, is Argo CD polled?
//! 2. *fetch*: the I/O, with no lock held: the client (built when the settings changed) asks
//!    Argo CD for its clusters and applications;
//! 3. *evaluate* (pure, [`evaluate`]): the statuses of the instance and its ClusterMappings;
//! 4. *apply* ([`apply`]): write what changed, then events and metrics from what was written.
//!
//! The state is read in one lock section and stored in one other; a suspended instance takes
//! the same path with nothing fetched. In watch mode ([`follow`]) a change of the stream's
//! applications wakes the reconcile too, which then evaluates them with nothing fetched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::credentials::{self, CredentialsError, Resolved};
use super::state::{self, DecisionInputs, Failure, InstanceState, Plan};
use super::{Context, Error, apply, follow, guard, slots};
use crate::argocd::{self, ClientConfig};
use crate::crd::{ApplicationsMode, ArgoCdInstance, REFRESH_ANNOTATION, Reason};
use crate::model::evaluate::{self, Circumstances, Observed, Outcome, evaluate};
use crate::model::organization;
use crate::model::profiles::{Profile, Profiles};
use crate::model::status::{self, to_second};
use crate::model::stream::StreamState;

/// The controller's entry, in the guard every reconcile shares.
pub async fn reconcile(instance: Arc<ArgoCdInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(instance.as_ref());
    let result = guard::run(&ctx, KIND, reconcile_instance(&instance, &ctx)).await;
    if result.is_ok() {
        ctx.instances.succeeded(&key);
    }
    result
}

pub fn error_policy(instance: Arc<ArgoCdInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    guard::on_error(&ctx, KIND, instance.as_ref(), err, |key| {
        ctx.instances.failed(key, instance.spec.interval_duration())
    })
}

/// The kind's word in metrics and logs.
const KIND: &str = "argocdinstance";

/// One reconcile: decide → fetch → evaluate → apply.
pub async fn reconcile_instance(instance: &ArgoCdInstance, ctx: &Context) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(instance);
    let all_mappings = ctx.stores.mappings.state();
    let mappings = evaluate::mappings_of(instance, all_mappings.iter().map(|m| m.as_ref()));
    let interval = instance.spec.interval_duration();
    let resolved = if instance.spec.suspend { None } else { Some(read_credentials(instance, ctx).await?) };
    let trigger = DecisionInputs {
        generation: instance.metadata.generation,
        refresh: instance.annotations().get(REFRESH_ANNOTATION).cloned(),
        suspended: instance.spec.suspend,
        fingerprint: resolved.as_ref().and_then(|r| r.as_ref().ok()).map(|r| r.fingerprint),
        secrets: credentials::version(
            &ctx.stores.secrets,
            key.namespace.as_deref().unwrap_or_default(),
            &instance.spec,
        ),
    };

    // 1. decide
    let mut state = ctx.instances.state(&key, instance.metadata.uid.as_deref());
    let watching = instance.spec.applications.mode == ApplicationsMode::Watch && !instance.spec.suspend;
    if !watching && state.follower.take().is_some() {
        // Back to polling: the stream's task stops with its last handle, and its series go.
        state.snapshot = None;
        ctx.metrics.forget_stream(key.namespace.as_deref().unwrap_or_default(), &key.name);
    }
    let plan = state::decide(&state, &trigger, Instant::now());

    // A new instance says at once that it waits for its first check: with no status at all,
    // kstatus (Flux's `wait: true`) would call it Current while the check is still running.
    if instance.status.is_none() && matches!(plan, Plan::Poll { .. }) {
        let pending = status::awaiting_first_check(instance.metadata.generation, to_second(Timestamp::now()));
        apply::write_instance_status(ctx, instance, &pending, false).await?;
    }

    // 2. fetch
    let outcome = match plan {
        Plan::Suspend => Outcome::Suspended,
        // Between checks, what the stream changed is evaluated against the last cluster list.
        Plan::Recompute => followed_changes(&mut state).unwrap_or_else(|| state.last_outcome()),
        Plan::Poll { connect, .. } => {
            let result = match resolved {
                Some(Ok(resolved)) => {
                    match fetch_in_slot(instance, ctx, &mut state, &resolved, connect, watching).await {
                        Some(result) => result,
                        // Deleted, changed, or shutting down: nothing is recorded; a change brings
                        // its own reconcile.
                        None => {
                            tracing::debug!(namespace = %key.namespace.as_deref().unwrap_or_default(), instance = %key.name, "check cancelled");
                            return Ok(Action::requeue(Duration::from_millis(100)));
                        }
                    }
                }
                Some(Err(e)) => {
                    // Built again once the Secret is back, even with the same content.
                    state.client = None;
                    Err(Failure::new(e.reason(), e.to_string()))
                }
                None => Err(Failure::new(Reason::Suspended, String::new())),
            };
            if let Err(Failure { reason, message, .. }) = &result {
                tracing::warn!(namespace = %key.namespace.as_deref().unwrap_or_default(), instance = %key.name, %reason, %message, "check failed");
            }
            state.record(result, &trigger, interval, Instant::now())
        }
    };
    // A refresh that came too soon after the last check is checked once the floor has passed.
    let next_check = match (state.next_check, state.refresh_at(&trigger)) {
        (Some(at), Some(refresh)) => Some(at.min(refresh)),
        (at, refresh) => at.or(refresh),
    };
    let stream =
        watching.then(|| state.follower.as_ref().map_or(StreamState::Connecting, |f| f.current().state));
    ctx.instances.store(&key, (plan != Plan::Suspend).then_some(state));

    // 3. evaluate
    let circumstances = Circumstances {
        refresh_handled: matches!(plan, Plan::Poll { .. }).then(|| trigger.refresh.clone()).flatten(),
        stale_after: Some(ctx.settings.stale_after(instance)),
        stream: stream.map(|s| (s, follow::RELIST_INTERVALS)),
        organization: Some((
            ctx.settings.organization_binding,
            organization_label(&ctx.stores.namespaces, key.namespace.as_deref().unwrap_or_default()),
        )),
        profiles: Arc::new(Profiles::new(
            ctx.stores.profiles.state().iter().map(|p| Profile::from_object(p)),
        )),
        fleet: ctx.stores.instances.state(),
    };
    let eval = evaluate(instance, &mappings, &outcome, &circumstances, to_second(Timestamp::now()));

    // 4. apply
    let credentials_changed = matches!(plan, Plan::Poll { credentials_changed: true, .. });
    apply::apply(ctx, instance, &mappings, &outcome, &eval, credentials_changed).await?;

    if plan == Plan::Suspend {
        return Ok(Action::await_change());
    }
    let wait = next_check.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(interval);
    Ok(Action::requeue(wait.max(Duration::from_millis(100))))
}

/// The credentials Secret (and CA). A missing Secret or key, and the API refusing argomap the
/// Secret (401, 403: its RBAC), are the check's result, shown in status. An API that fails or
/// does not answer fails the reconcile instead (retried with backoff): a status could not be
/// written then anyway, and the last check's result is still the truth about Argo CD.
async fn read_credentials(
    instance: &ArgoCdInstance,
    ctx: &Context,
) -> Result<Result<Resolved, CredentialsError>, Error> {
    let ns = instance.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    match credentials::load(&secrets, &ctx.stores.secrets, &ns, &instance.spec).await {
        Err(CredentialsError::Kube { source: kube::Error::Api(s), name })
            if s.code == 401 || s.code == 403 =>
        {
            Ok(Err(CredentialsError::Kube { source: kube::Error::Api(s), name }))
        }
        Err(CredentialsError::Kube { source, .. }) => Err(Error::Kube(source)),
        other => Ok(other),
    }
}

/// Watch mode, between checks: the stream's applications against the last check's clusters,
/// when the stream published something not evaluated yet (and the last check succeeded).
fn followed_changes(state: &mut InstanceState) -> Option<Outcome> {
    let followed = state.follower.as_ref()?.current();
    if followed.version == state.evaluated_stream_version
        || !followed.state.is_streaming()
        || state.last_failure.is_some()
    {
        return None;
    }
    let snapshot = state.snapshot.as_ref()?;
    state.evaluated_stream_version = followed.version;
    let observed = Arc::new(Observed::from_snapshot(argocd::Snapshot {
        applications: (*followed.tally).clone(),
        ..(**snapshot).clone()
    }));
    state.observed = Some(observed.clone());
    Some(Outcome::Observed { observed, fresh: false })
}

/// [`fetch`] in a check slot and within `--max-check-duration`; `None` when the check was
/// cancelled (instance deleted or changed, shutdown) before it ended.
///
/// New, failing and slow servers wait in probation, apart from the ones that answer (see
/// `slots`). A check in the proven lane that has not ended within [`slots::PROVEN_LEASH`] (a
/// new instance whose server hangs, or one that became slow) gives its slot back and goes on
/// in probation, so that no server holds a proven slot for longer.
async fn fetch_in_slot(
    instance: &ArgoCdInstance,
    ctx: &Context,
    state: &mut InstanceState,
    resolved: &Resolved,
    connect: bool,
    watching: bool,
) -> Option<Result<Observed, Failure>> {
    if let Err(f) = connect_client(instance, ctx, state, resolved, connect) {
        return Some(Err(f));
    }
    let followed = match watching {
        true => match follow_settled(instance, ctx, state).await {
            Some(followed) => Some(followed),
            None => return Some(Err(Failure::new(Reason::Pending, "no stream task"))),
        },
        false => None,
    };
    let deadline = ctx.settings.max_check_duration;
    let last = state.last_check.map(|took| if state.last_failure.is_some() { Err(()) } else { Ok(took) });
    let slow_after = deadline.min(instance.spec.timeout_duration());
    let mut leashed = Duration::ZERO;
    let key = ObjectRef::from_obj(instance);
    let ns = key.namespace.as_deref().unwrap_or_default();
    if slots::Lane::of(last, slow_after) == slots::Lane::Proven {
        let slot = ctx.slots.acquire(ns, slots::Lane::Proven).await?;
        let check = ctx.instances.begin_check(instance, ctx.cancel.child_token());
        let leash = slots::PROVEN_LEASH.min(deadline);
        let started = Instant::now();
        // `None`: cancelled; `Some(None)`: still running at the end of the leash.
        let ran = tokio::select! {
            r = tokio::time::timeout(leash, fetch(ctx, state, followed.as_ref())) => Some(r.ok()),
            _ = check.cancel.cancelled() => None,
        };
        ctx.instances.end_check(&key, check);
        drop(slot);
        if let Some(result) = ran? {
            state.last_check = Some(started.elapsed());
            return Some(result);
        }
        tracing::debug!(namespace = ns, instance = %key.name, ?leash, "check not done within the proven lane's leash; going on in probation");
        leashed = leash;
    }
    let slot = ctx.slots.acquire(ns, slots::Lane::Probation).await?;
    let check = ctx.instances.begin_check(instance, ctx.cancel.child_token());
    let started = Instant::now();
    let fetched = tokio::select! {
        r = tokio::time::timeout(deadline, fetch(ctx, state, followed.as_ref())) => {
            Some(r.unwrap_or_else(|_| Err(Failure::new(Reason::Timeout, format!(
                "the check did not finish within {} (--max-check-duration)",
                humantime::format_duration(deadline)
            )))))
        }
        _ = check.cancel.cancelled() => None,
    };
    ctx.instances.end_check(&key, check);
    drop(slot);
    if fetched.is_some() {
        state.last_check = Some(leashed + started.elapsed());
    }
    fetched
}

/// Builds the instance's client when `connect` says the settings changed (no request is made).
fn connect_client(
    instance: &ArgoCdInstance,
    ctx: &Context,
    state: &mut InstanceState,
    resolved: &Resolved,
    connect: bool,
) -> Result<(), Failure> {
    if !connect {
        return Ok(());
    }
    state.client = None;
    state.follower = None;
    let timeout = instance.spec.timeout_duration().min(ctx.settings.max_check_duration);
    let config = ClientConfig::new(instance.spec.url.clone(), resolved.credentials.clone(), timeout)
        .with_tls(resolved.tls.clone())
        .with_max_response_bytes(ctx.settings.max_response_bytes)
        .with_url_policy(ctx.settings.url_policy.clone())
        .with_health(instance.spec.applications.health);
    let client = argocd::Client::new(config).map_err(|e| failure(&e))?;
    state.client = Some((resolved.fingerprint, Arc::new(client)));
    Ok(())
}

/// Watch mode: starts the stream's task when there is none (or it ended), and waits, at most
/// the request timeout, until it is past its first list and stream. It waits outside any
/// check slot: the task's lists take slots of their own.
async fn follow_settled(
    instance: &ArgoCdInstance,
    ctx: &Context,
    state: &mut InstanceState,
) -> Option<follow::Followed> {
    let (_, client) = state.client.clone()?;
    if state.follower.as_ref().is_none_or(|f| f.is_finished()) {
        let config = follow::TaskConfig {
            key: ObjectRef::from_obj(instance),
            client,
            interval: instance.spec.interval_duration(),
            stall: ctx.settings.stream_stall,
            metrics: ctx.metrics.clone(),
            leadership: ctx.leadership.clone(),
        };
        state.follower = Some(Arc::new(follow::start(config, &ctx.follow)));
    }
    let follower = state.follower.clone()?;
    // A task just started lists first: wait for that rather than list twice.
    Some(follower.settled(instance.spec.timeout_duration()).await)
}

/// Polls Argo CD. In watch mode (`followed`: what the stream's task published) the
/// applications come from the stream while it is open, and from a list otherwise. No lock is
/// held here.
async fn fetch(
    ctx: &Context,
    state: &mut InstanceState,
    followed: Option<&follow::Followed>,
) -> Result<Observed, Failure> {
    let Some((_, client)) = state.client.clone() else {
        return Err(Failure::new(Reason::Pending, "no Argo CD client"));
    };
    let Some(followed) = followed else {
        return client
            .snapshot(ctx.metrics.as_ref())
            .await
            .map(Observed::from_snapshot)
            .map_err(|e| failure(&e));
    };
    let result = if followed.state.is_streaming() {
        client.snapshot_with((*followed.tally).clone(), ctx.metrics.as_ref()).await
    } else {
        client.snapshot(ctx.metrics.as_ref()).await
    };
    let mut snapshot = result.map_err(|e| failure(&e))?;
    if followed.state.is_streaming() {
        state.evaluated_stream_version = followed.version;
    }
    // Kept without its applications: the stream's replace them between checks.
    let applications = std::mem::take(&mut snapshot.applications);
    state.snapshot = Some(Arc::new(snapshot.clone()));
    snapshot.applications = applications;
    Ok(Observed::from_snapshot(snapshot))
}

fn failure(e: &argocd::ArgoCdError) -> Failure {
    Failure { reason: evaluate::reason_of(e), message: e.to_string(), login_refused: e.is_login_refused() }
}

/// The organization the namespace `ns` is bound to, as last seen.
fn organization_label(namespaces: &Store<PartialObjectMeta<Namespace>>, ns: &str) -> Option<String> {
    let namespace = namespaces.get(&ObjectRef::new(ns))?;
    organization::label_of(namespace.metadata.labels.as_ref()).map(str::to_owned)
}
