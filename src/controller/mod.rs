//! The controllers: their watches and how they are wired. The ArgoCdInstance controller
//! (`instance`) checks Argo CD when a check is due and writes the statuses of the instance and
//! its ClusterMappings; the ClusterMapping controller (`cluster_mapping`) only marks mappings
//! whose instance does not exist. `state` holds what argomap remembers per instance and decides
//! whether to poll; `slots` bounds and cancels the checks; `apply` writes statuses, events and
//! metrics; `stale` marks statuses no check could refresh; `credentials` reads Secrets;
//! `follow` follows the application stream of instances in watch mode;
//! `watch` starts the watches again after an API server outage.
//!
//! Status writes never trigger a check: the instance watch is filtered on (generation, refresh
//! annotation), and whether Argo CD is polled is decided from per-instance state, not from the
//! trigger.

mod apply;
mod cluster_mapping;
pub mod credentials;
mod error;
pub mod follow;
mod instance;
mod slots;
mod stale;
pub mod state;
mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};

pub use cluster_mapping::reconcile_mapping;
pub use error::Error;
pub use instance::reconcile_instance;
pub use watch::WATCH_SECONDS;
use watch::{watch, watch_each};

use crate::argocd;
use crate::crd::{ArgoCdInstance, CREDENTIALS_SELECTOR, ClusterMapping, MANAGER, REFRESH_ANNOTATION};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::organization::{self, ORGANIZATION_LABEL};
use crate::readiness::{Synced, Watch};
use crate::shutdown::Shutdown;
use state::States;

/// Settings of `argomap run` that shape the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only these namespaces; empty watches all.
    pub namespaces: Vec<String>,
    pub max_concurrent_checks: u16,
    /// The longest one check may take, all its requests together; it also caps the
    /// per-request `spec.timeout`, so no check holds a slot longer.
    pub max_check_duration: Duration,
    /// Minimum period between writes that only refresh `lastCheckedAt` (zero: every check).
    pub status_heartbeat: Duration,
    pub max_response_bytes: usize,
    /// What every watch's index and stream hold at most, together.
    pub max_watch_bytes: usize,
    /// Networks argomap never connects to (`--deny-url-cidrs`; none by default here, the CLI
    /// denies loopback and link-local).
    pub url_policy: argocd::UrlPolicy,
    /// Intervals after the last successful check at which a connected status is stale.
    pub stale_after_intervals: u32,
    /// Watch mode: a stream silent this long is dead (Argo CD sends a keepalive every 15 s).
    pub stream_stall: Duration,
    /// How organizations are bound to namespaces (the `OrganizationBound` condition).
    pub organization_binding: organization::Binding,
}

impl Settings {
    /// When `instance`'s data counts as stale.
    pub fn stale_after(&self, instance: &ArgoCdInstance) -> jiff::SignedDuration {
        crate::model::staleness::stale_limit(instance, self.stale_after_intervals, self.status_heartbeat)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespaces: Vec::new(),
            max_concurrent_checks: 8,
            max_check_duration: Duration::from_secs(60),
            status_heartbeat: Duration::ZERO,
            max_response_bytes: argocd::DEFAULT_MAX_RESPONSE_BYTES,
            max_watch_bytes: argocd::budget::DEFAULT_MAX_WATCH_BYTES,
            url_policy: argocd::UrlPolicy::default(),
            stale_after_intervals: 3,
            stream_stall: follow::DEFAULT_STALL,
            organization_binding: organization::Binding::default(),
        }
    }
}

/// How often a standby looks again whether it leads.
const STANDBY_RECHECK: Duration = Duration::from_secs(2);

/// What every reconcile reads.
pub struct Context {
    pub client: kube::Client,
    pub settings: Settings,
    /// Only the leader checks and writes; a standby requeues until it leads.
    pub leadership: Leadership,
    /// No check before every watch has synced.
    pub synced: Arc<Synced>,
    pub mappings: Store<ClusterMapping>,
    /// Metadata of the opted-in Secrets (labelled `argomap.io/credentials: "true"`).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Metadata of the namespaces bound to an organization (labelled
    /// `argomap.io/organization-id`).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub metrics: Arc<Metrics>,
    recorder: Recorder,
    states: States,
    retries: error::Retries,
    slots: Arc<slots::Slots>,
    /// Watch mode's tasks report here.
    follow: follow::Hub,
}

impl Context {
    /// A context for tests and tools that drive reconciles directly: always the leader, and
    /// the caller's store is as synced as it will get.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        mappings: Store<ClusterMapping>,
        secrets: Store<PartialObjectMeta<Secret>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = Arc::new(slots::Slots::new(settings.max_concurrent_checks));
        let (notify, _) = futures::channel::mpsc::unbounded();
        let budget = argocd::budget::WatchBudget::new(settings.max_watch_bytes);
        Context {
            recorder: recorder(&client),
            client,
            leadership: Leadership::always(),
            synced: Arc::new(Synced::done()),
            mappings,
            secrets,
            namespaces: reflector::store().0,
            metrics,
            states: States::default(),
            retries: Default::default(),
            follow: follow::Hub::new(notify, slots.clone(), budget),
            slots,
            settings,
        }
    }
}

/// Events are reported by `argomap`, with the pod name as instance when it is known.
fn recorder(client: &kube::Client) -> Recorder {
    let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
    Recorder::new(client.clone(), reporter)
}

/// `Api`s of a namespaced kind: one per watched namespace, or one over all.
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

/// Where the controllers' watches are reflected, so the HTTP server reads the same caches.
pub struct Writers {
    pub instances: reflector::store::Writer<ArgoCdInstance>,
    pub mappings: reflector::store::Writer<ClusterMapping>,
    pub secrets: reflector::store::Writer<PartialObjectMeta<Secret>>,
    pub namespaces: reflector::store::Writer<PartialObjectMeta<Namespace>>,
}

/// Runs both controllers until `shutdown`, then lets reconciles in flight finish. `client`
/// makes the requests (each under a timeout, see [`crate::app`]); `watch_client` only
/// watches, whose requests stay open for minutes by design.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    watch_client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    writers: Writers,
    leadership: Leadership,
    synced: Arc<Synced>,
    shutdown: Shutdown,
) {
    // The server ends every watch after WATCH_SECONDS, so the watch client's read timeout
    // (crate::app) can never cut a healthy idle watch, and no request hangs forever.
    let wc = watcher::Config::default().timeout(WATCH_SECONDS);
    let instances: Vec<Api<ArgoCdInstance>> = apis(&watch_client, &settings.namespaces);
    let mappings: Vec<Api<ClusterMapping>> = apis(&watch_client, &settings.namespaces);
    // Secrets as metadata only, and only those opted in by label: argomap reads a Secret's
    // data only when it checks, and holds nothing of any other Secret.
    let secrets: Vec<Api<PartialObjectMeta<Secret>>> = apis(&watch_client, &settings.namespaces);
    let states = States::default();
    let slots = Arc::new(slots::Slots::new(settings.max_concurrent_checks));

    let instance_reader = writers.instances.as_reader();
    let mapping_reader = writers.mappings.as_reader();
    // Mappings to look at again because their instance vanished while the watch was away.
    let (orphans_tx, orphans) = futures::channel::mpsc::unbounded::<ObjectRef<ClusterMapping>>();
    let forget = {
        let states = states.clone();
        let slots = slots.clone();
        let metrics = metrics.clone();
        let (live, mappings) = (instance_reader.clone(), mapping_reader.clone());
        move |event: &Event<ArgoCdInstance>| match event {
            Event::Apply(i) | Event::InitApply(i) => slots.changed(i),
            Event::Delete(i) => {
                slots.deleted(&ObjectRef::from_obj(i));
                states.put(&ObjectRef::from_obj(i), None);
                metrics.forget_instance(&i.namespace().unwrap_or_default(), &i.name_any());
            }
            // A (re)list is complete and the store holds exactly what exists: a deletion missed
            // during a watch gap is pruned here, with its series, and its mappings re-checked.
            Event::InitDone => {
                let exists: HashSet<ObjectRef<ArgoCdInstance>> =
                    live.state().iter().map(|i| ObjectRef::from_obj(i.as_ref())).collect();
                for gone in states.retain(|key| exists.contains(key)) {
                    metrics.forget_instance(gone.namespace.as_deref().unwrap_or_default(), &gone.name);
                }
                metrics.forget_instances_except(|ns, name| exists.contains(&ObjectRef::new(name).within(ns)));
                for m in mappings.state() {
                    if !exists.contains(&instance_of(&m)) {
                        let _ = orphans_tx.unbounded_send(ObjectRef::from_obj(m.as_ref()));
                    }
                }
            }
            _ => {}
        }
    };
    let instance_stream = watch(instances.clone(), wc.clone())
        .reflect(writers.instances)
        .inspect_ok(forget)
        .inspect_ok(on_init_done(&synced, Watch::Instances))
        .applied_objects()
        .predicate_filter(trigger_key, Default::default());

    // A (re)list of mappings re-evaluates every instance once the store holds the new list: its
    // InitApply events arrive before the store swaps to it, and a mapping deleted during a
    // watch gap sends no event at all.
    let (relisted_tx, relisted) = futures::channel::mpsc::unbounded::<()>();
    let mapping_stream = watch(mappings.clone(), wc.clone())
        .reflect(writers.mappings)
        .inspect_ok(on_init_done(&synced, Watch::Mappings))
        .inspect_ok(move |event| {
            if matches!(event, Event::InitDone) {
                let _ = relisted_tx.unbounded_send(());
            }
        })
        .touched_objects();
    let secret_reader = writers.secrets.as_reader();
    let secret_stream = watch(secrets, wc.clone().labels(CREDENTIALS_SELECTOR))
        .modify(strip_secret_metadata)
        .reflect(writers.secrets)
        .inspect_ok(on_init_done(&synced, Watch::Secrets))
        .touched_objects();

    // Namespaces bound to an organization, metadata only: one watch over all (or one per
    // watched namespace, by name), selecting the label, so a namespace whose label goes is a
    // deletion here.
    let namespace_reader = writers.namespaces.as_reader();
    let namespace_stream = match settings.organization_binding {
        organization::Binding::None => {
            synced.mark(Watch::Namespaces);
            futures::stream::pending().boxed()
        }
        organization::Binding::NamespaceLabel => {
            let wc = wc.clone().labels(ORGANIZATION_LABEL);
            let apis: Vec<(Api<PartialObjectMeta<Namespace>>, watcher::Config)> = if settings
                .namespaces
                .is_empty()
            {
                vec![(Api::all(watch_client.clone()), wc)]
            } else {
                let by_name = |ns: &String| wc.clone().fields(&format!("metadata.name={ns}"));
                settings.namespaces.iter().map(|ns| (Api::all(watch_client.clone()), by_name(ns))).collect()
            };
            watch_each(apis)
                .modify(strip_namespace_metadata)
                .reflect(writers.namespaces)
                .inspect_ok(on_init_done(&synced, Watch::Namespaces))
                .touched_objects()
                .boxed()
        }
    };

    // Watch mode's tasks wake the reconcile of their instance when its applications changed.
    let (notify, followed) = futures::channel::mpsc::unbounded::<ObjectRef<ArgoCdInstance>>();
    let hub =
        follow::Hub::new(notify, slots.clone(), argocd::budget::WatchBudget::new(settings.max_watch_bytes));
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings: settings.clone(),
        mappings: mapping_reader,
        secrets: secret_reader,
        namespaces: namespace_reader,
        metrics: metrics.clone(),
        recorder: recorder(&client),
        leadership,
        synced,
        states,
        retries: Default::default(),
        slots: slots.clone(),
        follow: hub.clone(),
    });

    let by_secret = instance_reader.clone();
    let by_namespace = instance_reader.clone();
    let (stale_ctx, stale_instances) = (ctx.clone(), instance_reader.clone());
    let instance_controller = Controller::for_stream(instance_stream, instance_reader)
        .trigger_backoff(watch::NoWait)
        // Unbounded reconciles: what is bounded is the checks (`slots`), so a reconcile that only
        // recomputes never waits behind a slow Argo CD.
        .with_config(ControllerConfig::default())
        .watches_stream(mapping_stream, {
            let owners = MappingOwners::default();
            move |m: ClusterMapping| owners.touched(&m)
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
        // A namespace bound, unbound or moved to another organization: its instances'
        // OrganizationBound condition.
        .watches_stream(namespace_stream, move |n: PartialObjectMeta<Namespace>| {
            let ns = n.name_any();
            by_namespace
                .state()
                .into_iter()
                .filter(|i| i.namespace().as_deref() == Some(ns.as_str()) && i.spec.organization_id.is_some())
                .map(|i| ObjectRef::from_obj(i.as_ref()))
                .collect::<Vec<_>>()
        })
        .reconcile_all_on(relisted)
        .reconcile_on(followed)
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(instance::reconcile, instance::error_policy, ctx.clone())
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "instance reconcile did not run");
            }
        });

    // Only deletions of instances matter to the mapping controller: a new instance writes the
    // states of its mappings itself.
    let deletions = watch(instances, wc.clone()).try_filter_map(|event| async move {
        Ok(match event {
            Event::Delete(i) => Some(i),
            _ => None,
        })
    });
    let (mapping_store, mapping_writer) = reflector::store();
    let own_mappings = watch(mappings, wc).reflect(mapping_writer).applied_objects();
    let mapping_controller = Controller::for_stream(own_mappings, mapping_store.clone())
        .trigger_backoff(watch::NoWait)
        .reconcile_on(orphans)
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
        .graceful_shutdown_on(shutdown.clone().wait())
        .run(cluster_mapping::reconcile, cluster_mapping::error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "mapping reconcile did not run");
            }
        });

    // Checks in flight are cancelled at once: shutdown never waits on a hanging Argo CD.
    let cancel_checks = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.wait().await;
            slots.cancel_all();
            hub.cancel.cancel();
        }
    };
    tokio::join!(
        instance_controller,
        mapping_controller,
        stale::sweep(stale_ctx, stale_instances, shutdown),
        cancel_checks
    );
}

/// Drops what argomap never needs of a Secret before it is stored: annotations (`kubectl apply`
/// keeps the whole Secret, data included, in `last-applied-configuration`) and managedFields.
/// What stays is name, namespace, UID, labels and versions.
pub fn strip_secret_metadata(secret: &mut PartialObjectMeta<Secret>) {
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
}

/// Keeps of a Namespace only what the binding needs: name and labels.
fn strip_namespace_metadata(ns: &mut PartialObjectMeta<Namespace>) {
    ns.metadata.annotations = None;
    ns.metadata.managed_fields = None;
}

/// The organization the namespace `ns` is bound to, as last seen.
fn organization_label(namespaces: &Store<PartialObjectMeta<Namespace>>, ns: &str) -> Option<String> {
    let namespace = namespaces.get(&ObjectRef::new(ns))?;
    organization::label_of(namespace.metadata.labels.as_ref()).map(str::to_owned)
}

/// The instance a ClusterMapping names.
fn instance_of(m: &ClusterMapping) -> ObjectRef<ArgoCdInstance> {
    ObjectRef::new(&m.spec.instance_ref.name).within(&m.namespace().unwrap_or_default())
}

/// Which instance each ClusterMapping named when last seen, so that a changed `instanceRef`
/// re-evaluates both the old instance (which must drop the mapping) and the new one at once.
/// A deleted mapping (without finalizers it carries no deletionTimestamp) keeps its entry: one
/// small pair per mapping name ever seen, and at worst one spare reconcile if the name returns.
#[derive(Default)]
struct MappingOwners(Mutex<HashMap<ObjectRef<ClusterMapping>, ObjectRef<ArgoCdInstance>>>);

impl MappingOwners {
    /// The instances a change of `m` concerns.
    fn touched(&self, m: &ClusterMapping) -> Vec<ObjectRef<ArgoCdInstance>> {
        let now = instance_of(m);
        let mut owners = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let before = if m.metadata.deletion_timestamp.is_some() {
            owners.remove(&ObjectRef::from_obj(m))
        } else {
            owners.insert(ObjectRef::from_obj(m), now.clone())
        };
        match before {
            Some(before) if before != now => vec![now, before],
            _ => vec![now],
        }
    }
}

fn references_secret(i: &ArgoCdInstance, secret: &str) -> bool {
    i.spec.credentials.secret_ref.name == secret
        || i.spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()).is_some_and(|r| r.name == secret)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_do_not_change_the_trigger_key() {
        let mut i = crate::fixtures::instance("n", "a");
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

    #[test]
    fn a_changed_instance_ref_concerns_the_old_instance_too() {
        let owners = MappingOwners::default();
        let mut m = crate::fixtures::mapping("n", "m", "a", "https://x");
        let a = ObjectRef::new("a").within("n");
        let b = ObjectRef::new("b").within("n");
        assert_eq!(owners.touched(&m), vec![a.clone()]);
        assert_eq!(owners.touched(&m), vec![a.clone()], "an unchanged ref concerns its instance only");
        m.spec.instance_ref.name = "b".into();
        assert_eq!(owners.touched(&m), vec![b.clone(), a]);
        assert_eq!(owners.touched(&m), vec![b]);
    }

    #[test]
    fn stored_secret_metadata_keeps_no_annotation_or_managed_field() {
        let mut s: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "argocd-readonly", "namespace": "platform", "uid": "u-1",
                "labels": {"argomap.io/credentials": "true"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"token\":\"ZXlK\"}}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]
            }
        }))
        .expect("secret metadata");
        strip_secret_metadata(&mut s);
        let kept = serde_json::to_string(&s).expect("json");
        assert!(
            !kept.contains("ZXlK") && !kept.contains("managedFields") && !kept.contains("annotations"),
            "{kept}"
        );
        assert_eq!(s.metadata.uid.as_deref(), Some("u-1"));
        assert!(crate::controller::credentials::is_opted_in(&s.metadata));
    }
}
