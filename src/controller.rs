//! The controllers. The ArgoCdInstance controller checks Argo CD when a check is due and
//! writes the statuses of the instance and its ClusterMappings; the ClusterMapping controller
//! only marks mappings whose instance does not exist.
//!
//! Whether Argo CD is polled is decided from per-instance state, not from what triggered the
//! reconcile: a ClusterMapping change recomputes the links from the last check, and a status
//! write (filtered out anyway) could never cause a poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event as KubeEvent, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use crate::argocd::{self, ClientConfig};
use crate::check::{self, Observed, Outcome};
use crate::crd::{ArgoCdInstance, ClusterMapping, MANAGER, REFRESH_ANNOTATION, Reason};
use crate::credentials::{self, CredentialsError};
use crate::events::{self, Transition};
use crate::http;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::status;

/// Settings of `argomap run` that shape the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only this namespace; `None` watches all.
    pub namespace: Option<String>,
    pub max_concurrent_checks: u16,
    /// Minimum period between writes that only refresh `lastCheckedAt` (zero: every check).
    pub status_heartbeat: Duration,
    pub max_response_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            max_concurrent_checks: 8,
            status_heartbeat: Duration::ZERO,
            max_response_bytes: argocd::DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Credentials(CredentialsError),
    #[error("cannot serialise status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Fixed label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::Credentials(e) => e.category(),
            Error::Serialize(_) => "SerializeError",
        }
    }
}

/// What argomap remembers of one instance between reconciles (in memory only: a restart
/// simply checks once more).
#[derive(Default)]
struct InstanceState {
    client: Option<(u64, Arc<argocd::Client>)>,
    observed: Option<Arc<Observed>>,
    last_failure: Option<(Reason, String)>,
    failures: u32,
    next_check: Option<Instant>,
    checked_generation: Option<i64>,
    handled_refresh: Option<String>,
}

type States = Arc<Mutex<HashMap<ObjectRef<ArgoCdInstance>, InstanceState>>>;

pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    /// Only the leader checks and writes; a standby requeues until it leads.
    pub leadership: Leadership,
    /// No check before every watch has synced.
    pub synced: Arc<Synced>,
    pub mappings: Store<ClusterMapping>,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    states: States,
}

fn lock(states: &States) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ArgoCdInstance>, InstanceState>> {
    // A panic while holding the lock cannot leave the map inconsistent: take it as it is.
    states.lock().unwrap_or_else(|e| e.into_inner())
}

/// Kubernetes stores times to the second; so do we, or every comparison would differ.
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The next check after a success: `interval` with ±10% jitter, so instances spread out.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

/// The next check after `failures` failures in a row: 5 s doubling, capped at `interval`.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(5).saturating_mul(1 << exp).min(interval)
}

/// What makes the instance controller look again at an instance: its spec (generation) and
/// the refresh annotation, never its status.
fn trigger_key(i: &ArgoCdInstance) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    i.metadata.generation.hash(&mut h);
    i.annotations().get(REFRESH_ANNOTATION).hash(&mut h);
    Some(h.finish())
}

fn api<K>(client: &kube::Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Which watches have listed everything once. Checks wait for all of them (a check before the
/// ClusterMappings are known would report mapped destinations as unlinked), and so does
/// readiness. Set from the watch streams' `InitDone`, not by awaiting the stores: a store
/// wakes only one waiter, and the controller already waits on the instance store.
#[derive(Default)]
pub struct Synced {
    instances: AtomicBool,
    mappings: AtomicBool,
    secrets: AtomicBool,
    readiness: http::Readiness,
}

impl Synced {
    pub fn new(readiness: http::Readiness) -> Self {
        Synced { readiness, ..Default::default() }
    }

    pub fn all(&self) -> bool {
        self.instances.load(Ordering::SeqCst)
            && self.mappings.load(Ordering::SeqCst)
            && self.secrets.load(Ordering::SeqCst)
    }

    fn mark(&self, which: &AtomicBool) {
        if !which.swap(true, Ordering::SeqCst) && self.all() {
            self.readiness.set(true);
            tracing::info!("watches synced; ready");
        }
    }
}

/// Marks `flag` once the watch behind `event` has listed everything.
fn on_init_done<K>(synced: &Arc<Synced>, pick: fn(&Synced) -> &AtomicBool) -> impl Fn(&Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| {
        if matches!(event, Event::InitDone) {
            synced.mark(pick(&synced));
        }
    }
}

/// Where the controllers' watches are reflected, so the HTTP server reads the same caches.
pub struct Writers {
    pub instances: reflector::store::Writer<ArgoCdInstance>,
    pub mappings: reflector::store::Writer<ClusterMapping>,
    pub secrets: reflector::store::Writer<PartialObjectMeta<Secret>>,
}

/// Runs both controllers until SIGTERM or SIGINT.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    writers: Writers,
    leadership: Leadership,
    synced: Arc<Synced>,
) {
    let wc = watcher::Config::default();
    let instances: Api<ArgoCdInstance> = api(&client, &settings.namespace);
    let mappings: Api<ClusterMapping> = api(&client, &settings.namespace);
    // Secrets as metadata only: argomap reads a Secret's data only when it checks.
    let secrets: Api<PartialObjectMeta<Secret>> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let states: States = Arc::default();

    let instance_reader = writers.instances.as_reader();
    let forget = {
        let states = states.clone();
        let metrics = metrics.clone();
        move |event: &Event<ArgoCdInstance>| {
            if let Event::Delete(i) = event {
                lock(&states).remove(&ObjectRef::from_obj(i));
                metrics.forget_instance(&i.namespace().unwrap_or_default(), &i.name_any());
            }
        }
    };
    let instance_stream = watcher::watcher(instances.clone(), wc.clone())
        .default_backoff()
        .reflect(writers.instances)
        .inspect_ok(forget)
        .inspect_ok(on_init_done(&synced, |s| &s.instances))
        .applied_objects()
        .predicate_filter(trigger_key, Default::default());

    let mapping_reader = writers.mappings.as_reader();
    let mapping_stream = watcher::watcher(mappings.clone(), wc.clone())
        .default_backoff()
        .reflect(writers.mappings)
        .inspect_ok(on_init_done(&synced, |s| &s.mappings))
        .touched_objects();
    let secret_stream = watcher::watcher(secrets, wc.clone())
        .default_backoff()
        .reflect(writers.secrets)
        .inspect_ok(on_init_done(&synced, |s| &s.secrets))
        .touched_objects();

    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: settings.clone(),
        mappings: mapping_reader,
        metrics: metrics.clone(),
        recorder: recorder(&client),
        leadership,
        synced,
        states,
    });

    let by_secret = instance_reader.clone();
    let instance_controller = Controller::for_stream(instance_stream, instance_reader)
        .with_config(ControllerConfig::default().concurrency(settings.max_concurrent_checks))
        .watches_stream(mapping_stream, |m: ClusterMapping| {
            Some(ObjectRef::new(&m.spec.instance_ref.name).within(&m.namespace().unwrap_or_default()))
        })
        .watches_stream(secret_stream, move |s| {
            let ns = s.namespace();
            let name = s.name_any();
            by_secret
                .state()
                .into_iter()
                .filter(|i| i.namespace() == ns && references_secret(i, &name))
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "instance reconcile did not run");
            }
        });

    // Only deletions of instances matter to the mapping controller: a new instance writes the
    // states of its mappings itself.
    let deletions =
        watcher::watcher(instances, wc.clone()).default_backoff().try_filter_map(|event| async move {
            Ok(match event {
                Event::Delete(i) => Some(i),
                _ => None,
            })
        });
    let mapping_controller = Controller::new(mappings, wc);
    let mapping_store = mapping_controller.store();
    let mapping_controller = mapping_controller
        .watches_stream(deletions, move |i: ArgoCdInstance| {
            let ns = i.namespace();
            let name = i.name_any();
            mapping_store
                .state()
                .into_iter()
                .filter(|m| m.namespace() == ns && m.spec.instance_ref.name == name)
                .map(|m| ObjectRef::from_obj(m.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile_mapping, mapping_error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "mapping reconcile did not run");
            }
        });

    tokio::join!(instance_controller, mapping_controller);
}

fn references_secret(i: &ArgoCdInstance, secret: &str) -> bool {
    i.spec.credentials.secret_ref.name == secret
        || i.spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()).is_some_and(|r| r.name == secret)
}

/// How often a standby looks again whether it leads.
const STANDBY_RECHECK: Duration = Duration::from_secs(2);

async fn reconcile(instance: Arc<ArgoCdInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
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

fn error_policy(instance: Arc<ArgoCdInstance>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("argocdinstance", err.category());
    tracing::warn!(namespace = instance.namespace().unwrap_or_default(), instance = %instance.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// One reconcile: decide whether a check is due, run it, and write what changed.
pub async fn reconcile_instance(instance: &ArgoCdInstance, ctx: &Context) -> Result<Action, Error> {
    let ns = instance.namespace().unwrap_or_default();
    let name = instance.name_any();
    let key = ObjectRef::from_obj(instance);
    let all_mappings = ctx.mappings.state();
    let mappings = check::mappings_of(instance, all_mappings.iter().map(|m| m.as_ref()));
    let refresh = instance.annotations().get(REFRESH_ANNOTATION).cloned();
    let generation = instance.metadata.generation;

    if instance.spec.suspend {
        lock(&ctx.states).remove(&key);
        let eval = check::evaluate(instance, &mappings, &Outcome::Suspended, refresh, now());
        write(ctx, instance, &mappings, &eval).await?;
        return Ok(Action::await_change());
    }
    let interval = check::parse_duration(&instance.spec.interval).unwrap_or(Duration::from_secs(60));
    let timeout = check::parse_duration(&instance.spec.timeout).unwrap_or(Duration::from_secs(10));

    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let resolved = match credentials::load(&secrets, &ns, &instance.spec).await {
        Err(e @ CredentialsError::Kube { .. }) => return Err(Error::Credentials(e)),
        other => other,
    };

    // Decide under the lock, check without it.
    let mut credentials_changed = false;
    let (due, client) = {
        let mut states = lock(&ctx.states);
        let st = states.entry(key.clone()).or_default();
        let mut due = st.next_check.is_none_or(|t| t <= Instant::now())
            || st.checked_generation != generation
            || (refresh.is_some() && refresh != st.handled_refresh);
        let client = match &resolved {
            Ok(r) => match &st.client {
                Some((fp, c)) if *fp == r.fingerprint => Ok(c.clone()),
                previous => {
                    // New credentials, URL or TLS settings: a new connection, checked at once.
                    credentials_changed = previous.is_some();
                    due = true;
                    st.client = None;
                    let config = ClientConfig {
                        url: instance.spec.url.clone(),
                        credentials: r.credentials.clone(),
                        timeout,
                        tls: r.tls.clone(),
                        max_response_bytes: ctx.settings.max_response_bytes,
                    };
                    argocd::Client::new(config).map(|c| {
                        let c = Arc::new(c);
                        st.client = Some((r.fingerprint, c.clone()));
                        c
                    })
                }
            },
            Err(_) => Err(argocd::ArgoCdError::InvalidUrl(String::new())),
        };
        (due, client)
    };

    let outcome = if due {
        let result = match (&resolved, client) {
            (Err(e), _) => Err((Reason::CredentialsNotFound, e.to_string())),
            (Ok(_), Err(e)) => Err((e.reason(), e.to_string())),
            (Ok(_), Ok(client)) => {
                check::fetch(&client, ctx.metrics.as_ref()).await.map_err(|e| (e.reason(), e.to_string()))
            }
        };
        let mut states = lock(&ctx.states);
        let st = states.entry(key.clone()).or_default();
        st.checked_generation = generation;
        st.handled_refresh = refresh.clone();
        match result {
            Ok(observed) => {
                let observed = Arc::new(observed);
                st.observed = Some(observed.clone());
                st.last_failure = None;
                st.failures = 0;
                st.next_check = Some(Instant::now() + jittered(interval));
                Outcome::Observed { observed, fresh: true }
            }
            Err((reason, message)) => {
                st.last_failure = Some((reason, message.clone()));
                st.failures += 1;
                st.next_check = Some(Instant::now() + backoff(st.failures, interval));
                tracing::warn!(namespace = %ns, instance = %name, %reason, %message, "check failed");
                Outcome::Failed { reason, message, fresh: true }
            }
        }
    } else {
        let states = lock(&ctx.states);
        let st = states.get(&key);
        match (st.and_then(|s| s.last_failure.clone()), st.and_then(|s| s.observed.clone())) {
            (Some((reason, message)), _) => Outcome::Failed { reason, message, fresh: false },
            (None, Some(observed)) => Outcome::Observed { observed, fresh: false },
            (None, None) => Outcome::Failed { reason: Reason::Pending, message: String::new(), fresh: false },
        }
    };

    let now = now();
    let eval = check::evaluate(instance, &mappings, &outcome, if due { refresh } else { None }, now);
    match (&outcome, &eval.linkage) {
        (Outcome::Observed { observed, fresh: true }, Some(linkage)) => {
            ctx.metrics.check_succeeded(&ns, &name, observed, linkage, now);
            tracing::info!(namespace = %ns, instance = %name, linked = linkage.linked.len(), unlinked = linkage.unlinked.len(),
                orphaned = linkage.orphaned.len(), applications = observed.destinations.applications,
                unresolved = observed.destinations.unresolved, unresolved_examples = ?observed.destinations.unresolved_examples,
                "check succeeded");
        }
        (Outcome::Observed { .. }, Some(linkage)) => ctx.metrics.linkage(&ns, &name, linkage),
        (Outcome::Failed { reason, fresh: true, .. }, _) => {
            ctx.metrics.check_failed(&ns, &name, reason.as_str(), now)
        }
        _ => {}
    }
    write(ctx, instance, &mappings, &eval).await?;
    let mut transitions = events::instance(instance.status.as_ref(), &eval.instance);
    if credentials_changed {
        transitions.insert(0, events::credentials_changed());
    }
    publish(ctx, instance, transitions).await;
    for (name, desired) in &eval.mappings {
        if let Some(m) = mappings.iter().find(|m| &m.name_any() == name) {
            publish(ctx, *m, events::mapping(m.status.as_ref(), desired).into_iter().collect()).await;
        }
    }

    let next = lock(&ctx.states).get(&key).and_then(|s| s.next_check);
    let wait = next.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or(interval);
    Ok(Action::requeue(wait.max(Duration::from_millis(100))))
}

/// Server-side apply of a status, as field manager `argomap`.
async fn apply_status<K>(api: &Api<K>, name: &str, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name},
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// Writes what changed: the instance status (see [`status::instance_needs_write`]) and each
/// mapping status that differs from what the mapping has.
async fn write(
    ctx: &Context,
    instance: &ArgoCdInstance,
    mappings: &[&ClusterMapping],
    eval: &check::Evaluation,
) -> Result<(), Error> {
    let ns = instance.namespace().unwrap_or_default();
    if status::instance_needs_write(instance.status.as_ref(), &eval.instance, ctx.settings.status_heartbeat) {
        let api: Api<ArgoCdInstance> = Api::namespaced(ctx.client.clone(), &ns);
        apply_status(&api, &instance.name_any(), &eval.instance).await?;
    }
    let api: Api<ClusterMapping> = Api::namespaced(ctx.client.clone(), &ns);
    for (name, desired) in &eval.mappings {
        let current = mappings.iter().find(|m| &m.name_any() == name).and_then(|m| m.status.as_ref());
        if current != Some(desired) {
            apply_status(&api, name, desired).await?;
        }
    }
    Ok(())
}

async fn reconcile_mapping(mapping: Arc<ClusterMapping>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leadership.is_leader() {
        return Ok(Action::requeue(STANDBY_RECHECK));
    }
    let started = Instant::now();
    let result = reconcile_mapping_inner(&mapping, &ctx).await;
    ctx.metrics.reconciled("clustermapping", started.elapsed());
    result
}

/// Marks a mapping whose instance does not exist; anything else is the instance's business.
/// The instance is read from the API, not a cache, so a deletion is never missed.
pub async fn reconcile_mapping_inner(mapping: &ClusterMapping, ctx: &Context) -> Result<Action, Error> {
    let ns = mapping.namespace().unwrap_or_default();
    let instances: Api<ArgoCdInstance> = Api::namespaced(ctx.client.clone(), &ns);
    if instances.get_metadata_opt(&mapping.spec.instance_ref.name).await?.is_none() {
        let desired = check::instance_not_found(mapping, now());
        if mapping.status.as_ref() != Some(&desired) {
            let api: Api<ClusterMapping> = Api::namespaced(ctx.client.clone(), &ns);
            apply_status(&api, &mapping.name_any(), &desired).await?;
        }
    }
    Ok(Action::await_change())
}

fn mapping_error_policy(mapping: Arc<ClusterMapping>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed("clustermapping", err.category());
    tracing::warn!(namespace = mapping.namespace().unwrap_or_default(), mapping = %mapping.name_any(), error = %err, "mapping reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

impl Context {
    /// A context for tests and tools that drive reconciles directly.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        mappings: Store<ClusterMapping>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let recorder = recorder(&client);
        // The caller's store is as synced as it will get.
        let synced = Arc::new(Synced::default());
        for flag in [&synced.instances, &synced.mappings, &synced.secrets] {
            flag.store(true, Ordering::SeqCst);
        }
        Context {
            client,
            settings,
            leadership: Leadership::always(),
            synced,
            mappings,
            metrics,
            recorder,
            states: Arc::default(),
        }
    }
}

/// Events are reported by `argomap`, with the pod name as instance when it is known.
fn recorder(client: &kube::Client) -> Recorder {
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
    Recorder::new(client.clone(), reporter)
}

/// Publishes events best-effort: a failure is logged, never fails the reconcile.
async fn publish<K: Resource<DynamicType = ()>>(ctx: &Context, obj: &K, transitions: Vec<Transition>) {
    let reference = obj.object_ref(&());
    for t in transitions {
        let event = KubeEvent {
            type_: t.type_,
            reason: t.reason.into(),
            note: Some(status::cap_message(&t.note)),
            action: t.action.into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(reason = t.reason, error = %e, "cannot record event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_the_interval() {
        let i = Duration::from_secs(60);
        let got: Vec<u64> = (1..=6).map(|n| backoff(n, i).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(1000, i), i);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100)).as_secs_f64();
            assert!((90.0..=110.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn status_changes_do_not_change_the_trigger_key() {
        let mut i: ArgoCdInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "argomap.io/v1alpha1", "kind": "ArgoCdInstance",
            "metadata": {"name": "a", "namespace": "n", "generation": 1},
            "spec": {"url": "https://a", "credentials": {"secretRef": {"name": "s"}},
                     "agentCluster": {"id": "0b9f6a1e-0000-4000-8000-000000000001", "name": "A", "cloudProvider": "AWS"}}
        }))
        .expect("instance");
        let before = trigger_key(&i);
        i.status = Some(Default::default());
        i.metadata.resource_version = Some("99".into());
        assert_eq!(trigger_key(&i), before);
        i.metadata.annotations = Some([(REFRESH_ANNOTATION.to_string(), "now".to_string())].into());
        assert_ne!(trigger_key(&i), before);
        let refreshed = trigger_key(&i);
        i.metadata.generation = Some(2);
        assert_ne!(trigger_key(&i), refreshed);
    }
}
