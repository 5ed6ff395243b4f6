//! The controllers and how they are wired. The ArgoCdInstance controller (`instance`) checks
//! Argo CD when a check is due and writes the statuses of the instance and its ClusterMappings;
//! the ClusterMapping controller (`cluster_mapping`) only marks mappings whose instance does
//! not exist. Each kind is watched once per namespace (`stores`); what argomap keeps per
//! object lives in two registries (`instances`, `mappings`) that only the watches prune.
//!
//! The rooms: `state` decides whether to poll; `slots` bounds the checks; `apply` writes
//! statuses, events and metrics; `stale` marks statuses no check could refresh;
//! `credentials` reads Secrets; `follow` follows the application stream in watch mode;
//! `triggers` says which change concerns which instance; `fleet` counts the instances per
//! platform cluster for the metrics; `watch` starts the watches again
//! after an API server outage; `backoff` holds every retry policy; `guard` what every
//! reconcile does around its work.
//!
//! Status writes never trigger a check: the instance stream lets through only changes of
//! (UID, generation, refresh annotation), and whether Argo CD is polled is decided from the
//! registry's state, not from the trigger.

mod apply;
mod backoff;
mod cluster_mapping;
pub mod credentials;
mod error;
mod fleet;
pub mod follow;
mod guard;
mod instance;
mod instances;
mod mappings;
mod settings;
mod slots;
mod stale;
pub mod state;
mod stores;
mod triggers;
mod watch;

use std::collections::HashSet;
use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use tokio_util::sync::CancellationToken;

pub use cluster_mapping::reconcile_mapping;
pub use error::Error;
pub use instance::reconcile_instance;
pub use settings::Settings;
pub use stores::{Stores, Writers, stores, strip_secret_metadata};
pub use watch::WATCH_SECONDS;

use crate::argocd::budget::WatchBudget;
use crate::crd::cluster_profile::ClusterProfile;
use crate::crd::{ArgoCdInstance, CREDENTIALS_SELECTOR, ClusterMapping, MANAGER};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::organization::{self, ORGANIZATION_LABEL};
use crate::readiness::{Synced, Watch};
use instances::Instances;
use mappings::{Mappings, instance_of};
use watch::{watch, watch_each};

/// What every reconcile reads.
pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    /// Only the leader checks and writes; a standby requeues until it leads.
    pub leadership: Leadership,
    /// No check before every watch has synced.
    pub synced: Arc<Synced>,
    pub stores: Stores,
    pub metrics: Arc<Metrics>,
    /// The process's: cancelled at shutdown, which ends every check, wait for a slot and
    /// stream task at once (shutdown never waits on a hanging Argo CD).
    pub cancel: CancellationToken,
    recorder: Recorder,
    instances: Instances,
    mappings: Mappings,
    slots: Arc<slots::Slots>,
    /// Watch mode's tasks report here.
    follow: follow::Shared,
}

/// Instances whose stream task saw their applications change (the instance controller's
/// `reconcile_on`).
pub type Wakes = UnboundedReceiver<ObjectRef<ArgoCdInstance>>;

impl Context {
    /// The one constructor, for [`run`] and for tests that drive reconciles directly: it leads
    /// and its stores count as synced until [`Context::led_by`] says otherwise.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        stores: Stores,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> (Self, Wakes) {
        let slots = Arc::new(slots::Slots::new(settings.max_concurrent_checks, cancel.clone()));
        let (notify, wakes) = unbounded();
        let budget = WatchBudget::new(settings.max_watch_bytes);
        let follow = follow::Shared::new(notify, slots.clone(), budget, cancel.child_token());
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        let ctx = Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            leadership: Leadership::always(),
            synced: Arc::new(Synced::done()),
            stores,
            instances: Instances::new(metrics.clone()),
            mappings: Mappings::default(),
            metrics,
            cancel,
            slots,
            follow,
        };
        (ctx, wakes)
    }

    /// Works only while `leadership` leads, and once every watch in `synced` has listed.
    pub fn led_by(self, leadership: Leadership, synced: Arc<Synced>) -> Self {
        Context { leadership, synced, ..self }
    }
}

/// Runs both controllers until `ctx.cancel`, then lets reconciles in flight finish. The
/// context's client makes the requests (each under a timeout, see [`crate::app`]);
/// `watch_client` only watches, whose requests stay open for minutes by design.
pub async fn run(ctx: Context, wakes: Wakes, watch_client: kube::Client, writers: Writers) {
    let ctx = Arc::new(ctx);
    fleet::export(&ctx);
    let (cancel, synced, namespaces) = (ctx.cancel.clone(), ctx.synced.clone(), &ctx.settings.namespaces);
    let Writers {
        instances: instance_writer,
        mappings: mapping_writer,
        secrets,
        namespaces: ns_writer,
        profiles: profile_writer,
    } = writers;
    let subscribed = (instance_writer.subscribe(), mapping_writer.subscribe(), mapping_writer.subscribe());
    let (Some(instance_changes), Some(mapping_changes), Some(own_mappings)) = subscribed else {
        tracing::error!("the instance and mapping stores must be shared (controller::stores)");
        return;
    };
    // The server ends every watch after WATCH_SECONDS, so the watch client's read timeout
    // (crate::app) can never cut a healthy idle watch, and no request hangs forever.
    let wc = watcher::Config::default().timeout(WATCH_SECONDS);

    // What subscribers are not told (deletions) and relists, through channels.
    let (orphans_tx, orphans) = unbounded::<ObjectRef<ClusterMapping>>();
    let (touched_tx, touched) = unbounded::<ObjectRef<ArgoCdInstance>>();
    let (relisted_tx, relisted) = unbounded::<()>();
    let instance_watch = watch(apis(&watch_client, namespaces), wc.clone())
        .reflect_shared(instance_writer)
        .inspect_ok(instance_seen(ctx.clone(), orphans_tx))
        .inspect_ok(on_init_done(&synced, Watch::Instances));
    let mapping_watch = watch(apis(&watch_client, namespaces), wc.clone())
        .reflect_shared(mapping_writer)
        .inspect_ok(mapping_seen(ctx.clone(), touched_tx, relisted_tx))
        .inspect_ok(on_init_done(&synced, Watch::Mappings));
    let secret_changes = secret_watch(&ctx, &watch_client, &wc, secrets);
    let namespace_changes = namespace_watch(&ctx, &watch_client, &wc, ns_writer);
    let profile_changes = profile_watch(&ctx, &watch_client, &wc, profile_writer).await;

    let changes = instance_changes.filter({
        let ctx = ctx.clone();
        move |i| futures::future::ready(ctx.instances.retriggers(i))
    });
    let instance_controller = Controller::for_shared_stream(changes, ctx.stores.instances.clone())
        .trigger_backoff(backoff::NoWait)
        // Unbounded reconciles: what is bounded is the checks (`slots`), so a reconcile that
        // only recomputes never waits behind a slow Argo CD.
        .with_config(ControllerConfig::default())
        .watches_shared_stream(
            mapping_changes,
            mapper(&ctx, |ctx, m: Arc<ClusterMapping>| ctx.mappings.applied(&m)),
        )
        .watches_stream(
            secret_changes,
            mapper(&ctx, |ctx, s| triggers::readers_of(&ctx.stores.instances, &s)),
        )
        .watches_stream(
            namespace_changes,
            mapper(&ctx, |ctx, n| triggers::bound_in(&ctx.stores.instances, &n)),
        )
        .watches_stream(
            profile_changes,
            mapper(&ctx, |ctx, p| triggers::profile_readers(&ctx.stores.instances, &ctx.stores.mappings, &p)),
        )
        .reconcile_on(touched)
        .reconcile_all_on(relisted)
        .reconcile_on(wakes)
        .graceful_shutdown_on(cancel.clone().cancelled_owned())
        .run(instance::reconcile, instance::error_policy, ctx.clone())
        .for_each(|res| log_unrun("instance", res));
    let mapping_controller = Controller::for_shared_stream(own_mappings, ctx.stores.mappings.clone())
        .trigger_backoff(backoff::NoWait)
        .reconcile_on(orphans)
        .graceful_shutdown_on(cancel.clone().cancelled_owned())
        .run(cluster_mapping::reconcile, cluster_mapping::error_policy, ctx.clone())
        .for_each(|res| log_unrun("mapping", res));
    // One task for all of it, on purpose: kube-runtime 5's shared-store subscriber returns
    // Pending without a wake-up when an object was deleted before it read it, and the next wake
    // of any part here (at the latest the staleness sweep's 10 s tick) polls it again.
    tokio::join!(
        drive(instance_watch, &cancel),
        drive(mapping_watch, &cancel),
        instance_controller,
        mapping_controller,
        stale::sweep(ctx.clone()),
    );
}

/// A trigger mapper that reads the context.
fn mapper<T, I>(
    ctx: &Arc<Context>,
    f: impl Fn(&Context, T) -> I + Send + Sync + 'static,
) -> impl Fn(T) -> I + Send + Sync + 'static {
    let ctx = ctx.clone();
    move |obj| f(&ctx, obj)
}

/// Reconciles that could not run (a queue or store error) are logged, not fatal.
async fn log_unrun<T, E: std::fmt::Display>(kind: &str, res: Result<T, E>) {
    if let Err(e) = res {
        tracing::debug!(error = %e, kind, "reconcile did not run");
    }
}

/// Polls a shared reflector's watch until `cancel` (its subscribers are fed only while it is
/// polled, and it waits for them: it must stop with the controllers).
async fn drive<K>(
    events: impl futures::Stream<Item = watcher::Result<Event<K>>>,
    cancel: &CancellationToken,
) {
    events
        .take_until(cancel.cancelled())
        .for_each(|event| async move {
            if let Err(e) = event {
                tracing::debug!(error = %e, "watch failed; retrying");
            }
        })
        .await;
}

/// The instance watch's bookkeeping: the registry learns of changes, deletions and relists,
/// and the mappings of an instance that is gone are marked by the mapping controller.
fn instance_seen(
    ctx: Arc<Context>,
    orphans: UnboundedSender<ObjectRef<ClusterMapping>>,
) -> impl Fn(&Event<ArgoCdInstance>) {
    move |event| match event {
        Event::Apply(i) | Event::InitApply(i) => ctx.instances.applied(i),
        Event::Delete(i) => {
            let key = ObjectRef::from_obj(i);
            ctx.instances.deleted(&key);
            for m in ctx.stores.mappings.state().iter().filter(|m| instance_of(m) == key) {
                let _ = orphans.unbounded_send(ObjectRef::from_obj(m.as_ref()));
            }
        }
        // A (re)list is complete and the store holds exactly what exists: a deletion missed
        // during a watch gap is forgotten here, and its mappings marked.
        Event::InitDone => {
            let exists: HashSet<ObjectRef<ArgoCdInstance>> =
                ctx.stores.instances.state().iter().map(|i| ObjectRef::from_obj(i.as_ref())).collect();
            ctx.instances.relisted(&exists);
            for m in ctx.stores.mappings.state().iter().filter(|m| !exists.contains(&instance_of(m))) {
                let _ = orphans.unbounded_send(ObjectRef::from_obj(m.as_ref()));
            }
        }
        Event::Init => {}
    }
}

/// The mapping watch's bookkeeping: a deleted mapping re-evaluates the instances it concerned;
/// a (re)list re-evaluates every instance once the store holds the new list (a mapping deleted
/// during a watch gap sends no event at all).
fn mapping_seen(
    ctx: Arc<Context>,
    touched: UnboundedSender<ObjectRef<ArgoCdInstance>>,
    relisted: UnboundedSender<()>,
) -> impl Fn(&Event<ClusterMapping>) {
    move |event| match event {
        Event::Delete(m) => {
            for i in ctx.mappings.deleted(m) {
                let _ = touched.unbounded_send(i);
            }
        }
        Event::InitDone => {
            let exists: HashSet<ObjectRef<ClusterMapping>> =
                ctx.stores.mappings.state().iter().map(|m| ObjectRef::from_obj(m.as_ref())).collect();
            ctx.mappings.relisted(&exists);
            let _ = relisted.unbounded_send(());
        }
        Event::Apply(_) | Event::InitApply(_) | Event::Init => {}
    }
}

/// Secrets as metadata only, and only those opted in by label: argomap reads a Secret's data
/// only when it checks, and holds nothing of any other Secret.
fn secret_watch(
    ctx: &Context,
    watch_client: &kube::Client,
    wc: &watcher::Config,
    writer: kube::runtime::reflector::store::Writer<PartialObjectMeta<Secret>>,
) -> impl futures::Stream<Item = watcher::Result<PartialObjectMeta<Secret>>> + use<> {
    let apis: Vec<Api<PartialObjectMeta<Secret>>> = apis(watch_client, &ctx.settings.namespaces);
    watch(apis, wc.clone().labels(CREDENTIALS_SELECTOR))
        .modify(strip_secret_metadata)
        .reflect(writer)
        .inspect_ok(on_init_done(&ctx.synced, Watch::Secrets))
        .touched_objects()
}

/// Namespaces bound to an organization, metadata only: one watch over all (or one per watched
/// namespace, by name), selecting the label, so a namespace whose label goes is a deletion here.
fn namespace_watch(
    ctx: &Context,
    watch_client: &kube::Client,
    wc: &watcher::Config,
    writer: kube::runtime::reflector::store::Writer<PartialObjectMeta<Namespace>>,
) -> futures::stream::BoxStream<'static, watcher::Result<PartialObjectMeta<Namespace>>> {
    let synced = &ctx.synced;
    match ctx.settings.organization_binding {
        organization::Binding::None => {
            synced.mark(Watch::Namespaces);
            futures::stream::pending().boxed()
        }
        organization::Binding::NamespaceLabel => {
            let wc = wc.clone().labels(ORGANIZATION_LABEL);
            let names = &ctx.settings.namespaces;
            let apis: Vec<(Api<PartialObjectMeta<Namespace>>, watcher::Config)> = if names.is_empty() {
                vec![(Api::all(watch_client.clone()), wc)]
            } else {
                let by_name = |ns: &String| wc.clone().fields(&format!("metadata.name={ns}"));
                names.iter().map(|ns| (Api::all(watch_client.clone()), by_name(ns))).collect()
            };
            watch_each(apis)
                .modify(stores::strip_namespace_metadata)
                .reflect(writer)
                .inspect_ok(on_init_done(synced, Watch::Namespaces))
                .touched_objects()
                .boxed()
        }
    }
}

/// `Api`s of a namespaced kind: one per watched namespace, or one over all.
/// ClusterProfiles of every namespace (a fleet keeps them in its own), with `--cluster-profiles`
/// and their CRD installed; otherwise nothing, and argomap works as without them.
async fn profile_watch(
    ctx: &Context,
    watch_client: &kube::Client,
    wc: &watcher::Config,
    writer: kube::runtime::reflector::store::Writer<ClusterProfile>,
) -> futures::stream::BoxStream<'static, watcher::Result<ClusterProfile>> {
    let synced = &ctx.synced;
    if !ctx.settings.cluster_profiles {
        synced.mark(Watch::Profiles);
        return futures::stream::pending().boxed();
    }
    let api: Api<ClusterProfile> = Api::all(watch_client.clone());
    // Without the CRD, or without the grant, the watch would never sync and checks would wait
    // for it: argomap says why and goes on without profiles. Any other failure is retried.
    if let Err(kube::Error::Api(e)) = api.list_metadata(&kube::api::ListParams::default().limit(1)).await
        && let Some(why) = profiles_unavailable(e.code)
    {
        tracing::error!("--cluster-profiles: {why}; not reading ClusterProfiles");
        synced.mark(Watch::Profiles);
        return futures::stream::pending().boxed();
    }
    watch(vec![api], wc.clone())
        .modify(stores::strip_profile_metadata)
        .reflect(writer)
        .inspect_ok(on_init_done(synced, Watch::Profiles))
        .touched_objects()
        .boxed()
}

/// Why ClusterProfiles cannot be read, from the API's answer to listing them.
fn profiles_unavailable(code: u16) -> Option<&'static str> {
    match code {
        404 => Some("the ClusterProfile CRD (multicluster.x-k8s.io) is not installed"),
        403 => {
            Some("argomap may not list ClusterProfiles (the chart grants it with clusterProfiles.enabled)")
        }
        _ => None,
    }
}

fn apis<K>(client: &kube::Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect()
    }
}

/// Marks `watch` synced once the stream behind `event` has listed everything.
fn on_init_done<K>(synced: &Arc<Synced>, watch: Watch) -> impl Fn(&Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| {
        if matches!(event, Event::InitDone) {
            synced.mark(watch);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn profiles_are_given_up_without_their_crd_or_grant_only() {
        assert!(super::profiles_unavailable(404).is_some_and(|w| w.contains("not installed")));
        assert!(super::profiles_unavailable(403).is_some_and(|w| w.contains("clusterProfiles.enabled")));
        // Anything else may pass: the watch retries it.
        for code in [401, 429, 500, 503] {
            assert_eq!(super::profiles_unavailable(code), None);
        }
    }
}
