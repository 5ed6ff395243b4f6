//! Prometheus metrics (`argomap_*`). Labels are bounded: error labels are fixed categories,
//! and the series of a deleted instance or a vanished destination are removed.

pub mod fleet;
mod forget;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec, Registry, TextEncoder,
    register_gauge_vec_with_registry, register_histogram_vec_with_registry,
    register_int_counter_vec_with_registry, register_int_gauge_vec_with_registry,
};

use crate::argocd::RequestObserver;
use crate::argocd::stream::EventKind;
use crate::crd::{DestinationDetails, KnownCluster, Reason, StatusCounts};
use crate::model::evaluate::Observed;
use crate::model::linkage::Linkage;
use crate::text::printable;

/// The labels of a `destination_info` series after namespace and instance: destination,
/// argocd_cluster_name, state, cluster_id, cluster_name, cluster_type, cloud_provider.
type InfoLabels = [String; 7];

/// The per-destination series one instance has now, so that those of a destination that
/// vanished, fell out of the limit or stopped being counted by status can be removed.
#[derive(Default)]
struct DestinationSeries {
    /// `destination_applications`: (destination, linked).
    applications: BTreeSet<(String, &'static str)>,
    /// `destination_info`.
    info: BTreeSet<InfoLabels>,
    /// Destinations with `destination_applications_by_health` and `_by_sync` series.
    by_status: BTreeSet<String>,
}

pub struct Metrics {
    registry: Registry,
    instance_up: IntGaugeVec,
    last_check: GaugeVec,
    last_success: GaugeVec,
    data_age: GaugeVec,
    /// (namespace, instance) → Unix seconds of its last successful check, for `data_age`,
    /// which is computed at each scrape.
    successes: Mutex<HashMap<(String, String), f64>>,
    destinations: IntGaugeVec,
    orphaned: IntGaugeVec,
    destination_apps: IntGaugeVec,
    destination_info: IntGaugeVec,
    dangling: IntGaugeVec,
    by_health: IntGaugeVec,
    by_sync: IntGaugeVec,
    credentials_expiry: GaugeVec,
    request_duration: HistogramVec,
    request_errors: IntCounterVec,
    reconcile_duration: HistogramVec,
    reconcile_errors: IntCounterVec,
    stream_events: IntCounterVec,
    stream_reconnects: IntCounterVec,
    stream_relists: IntCounterVec,
    stream_last_event: GaugeVec,
    stream_up: IntGaugeVec,
    http_refused: IntCounterVec,
    /// (namespace, instance) → the per-destination series it has now.
    known_destinations: Mutex<HashMap<(String, String), DestinationSeries>>,
    /// (namespace, instance) of every instance with series, so that those of instances deleted
    /// while the watch was away can be found and removed.
    known_instances: Mutex<BTreeSet<(String, String)>>,
    /// Per instance, at most this many destinations have per-destination series
    /// (`destination_applications`, `destination_info`, and the counts by health and sync):
    /// those with the most applications; 0 turns these families off. They are the families
    /// whose size follows the fleet, and a scrape must stay small.
    destination_limit: usize,
    /// `argomap_cluster_instances`, counted at each scrape (`fleet`).
    pub cluster_instances: fleet::ClusterInstances,
}

/// Default of [`Metrics::destination_limit`] (`--destination-metrics-limit`).
pub const DEFAULT_DESTINATION_LIMIT: usize = 200;

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::with_destination_limit(DEFAULT_DESTINATION_LIMIT)
    }

    /// Metrics with per-destination series for at most `limit` destinations per instance.
    ///
    /// The `register_*_with_registry!` macros build each family and register it; they panic
    /// only on an invalid name or label, which these fixed ones are not (the tests build them).
    pub fn with_destination_limit(limit: usize) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let inst = &["namespace", "instance"];
        let build = register_int_gauge_vec_with_registry!(
            "argomap_build_info",
            "Build information; always 1",
            &["version"],
            r
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(Metrics {
            instance_up: register_int_gauge_vec_with_registry!(
                "argomap_instance_up",
                "1 when the last check connected, else 0",
                inst,
                r
            )?,
            last_check: register_gauge_vec_with_registry!(
                "argomap_instance_last_check_timestamp_seconds",
                "Unix time of the last finished check",
                inst,
                r
            )?,
            last_success: register_gauge_vec_with_registry!(
                "argomap_instance_last_success_timestamp_seconds",
                "Unix time of the last successful check",
                inst,
                r
            )?,
            data_age: register_gauge_vec_with_registry!(
                "argomap_instance_data_age_seconds",
                "Seconds since the last successful check, at scrape time: how old the data shown is",
                inst,
                r
            )?,
            successes: Mutex::new(HashMap::new()),
            destinations: register_int_gauge_vec_with_registry!(
                "argomap_destinations",
                "Destinations of an Argo CD instance by state (linked, unlinked)",
                &["namespace", "instance", "state"],
                r
            )?,
            orphaned: register_int_gauge_vec_with_registry!(
                "argomap_orphaned_mappings",
                "ClusterMappings whose URL the Argo CD instance does not know",
                inst,
                r
            )?,
            destination_apps: register_int_gauge_vec_with_registry!(
                "argomap_destination_applications",
                "Applications aimed at one destination, counted by argomap",
                &["namespace", "instance", "destination", "linked"],
                r
            )?,
            destination_info: register_int_gauge_vec_with_registry!(
                "argomap_destination_info",
                "Always 1: one destination, its Argo CD cluster name, state (linked, unlinked, dangling) and the platform cluster linked to it (empty when unlinked), for joins with Argo CD's metrics",
                &[
                    "namespace",
                    "instance",
                    "destination",
                    "argocd_cluster_name",
                    "state",
                    "cluster_id",
                    "cluster_name",
                    "cluster_type",
                    "cloud_provider"
                ],
                r
            )?,
            dangling: register_int_gauge_vec_with_registry!(
                "argomap_dangling_destinations",
                "Destinations applications aim at that Argo CD cannot resolve (no cluster registered for the server, a name matching none or several)",
                inst,
                r
            )?,
            by_health: register_int_gauge_vec_with_registry!(
                "argomap_destination_applications_by_health",
                "Applications aimed at one destination by Argo CD health status (instances with spec.applications.health only)",
                &["namespace", "instance", "destination", "health"],
                r
            )?,
            by_sync: register_int_gauge_vec_with_registry!(
                "argomap_destination_applications_by_sync",
                "Applications aimed at one destination by Argo CD sync status (instances with spec.applications.health only)",
                &["namespace", "instance", "destination", "sync"],
                r
            )?,
            credentials_expiry: register_gauge_vec_with_registry!(
                "argomap_credentials_expiry_timestamp_seconds",
                "Unix time at which the Argo CD token expires",
                inst,
                r
            )?,
            request_duration: register_histogram_vec_with_registry!(
                "argomap_argocd_request_duration_seconds",
                "Duration of requests to Argo CD",
                &["endpoint", "code"],
                vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
                r
            )?,
            request_errors: register_int_counter_vec_with_registry!(
                "argomap_argocd_request_errors_total",
                "Failed checks of an Argo CD instance by reason",
                &["namespace", "instance", "reason"],
                r
            )?,
            reconcile_duration: register_histogram_vec_with_registry!(
                "argomap_reconcile_duration_seconds",
                "Duration of one reconcile",
                &["controller"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
                r
            )?,
            reconcile_errors: register_int_counter_vec_with_registry!(
                "argomap_reconcile_errors_total",
                "Reconciles that failed, by error category",
                &["controller", "category"],
                r
            )?,
            stream_events: register_int_counter_vec_with_registry!(
                "argomap_stream_events_total",
                "Application events read from Argo CD's stream (watch mode), by type",
                &["namespace", "instance", "type"],
                r
            )?,
            stream_reconnects: register_int_counter_vec_with_registry!(
                "argomap_stream_reconnects_total",
                "Application streams that failed and were opened again, by why they failed",
                &["namespace", "instance", "reason"],
                r
            )?,
            stream_relists: register_int_counter_vec_with_registry!(
                "argomap_stream_relists_total",
                "Full application lists read by a watch (periodic, and after each reconnect)",
                inst,
                r
            )?,
            stream_last_event: register_gauge_vec_with_registry!(
                "argomap_stream_last_event_timestamp_seconds",
                "Unix time of the last application event read from the stream",
                inst,
                r
            )?,
            stream_up: register_int_gauge_vec_with_registry!(
                "argomap_stream_up",
                "1 while applications come from Argo CD's stream, 0 while they are polled instead (watch mode only)",
                inst,
                r
            )?,
            http_refused: register_int_counter_vec_with_registry!(
                "argomap_http_connections_refused_total",
                "HTTP connections closed by the connection budget: per_client (the address held its share), evicted (stalled while the budget was full)",
                &["server", "reason"],
                r
            )?,
            known_destinations: Mutex::new(HashMap::new()),
            known_instances: Mutex::new(BTreeSet::new()),
            destination_limit: limit,
            cluster_instances: fleet::ClusterInstances::registered(r, limit)?,
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        for ((ns, name), at) in self.successes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            self.data_age.with_label_values(&[ns.as_str(), name.as_str()]).set((now - at).max(0.0));
        }
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }

    /// A connection closed by a server's connection budget (`server`: admin or read-api).
    pub fn http_connection_refused(&self, server: &str, reason: &str) {
        self.http_refused.with_label_values(&[server, reason]).inc();
    }

    pub fn reconciled(&self, controller: &str, elapsed: Duration) {
        self.reconcile_duration.with_label_values(&[controller]).observe(elapsed.as_secs_f64());
    }

    pub fn reconcile_failed(&self, controller: &str, category: &str) {
        self.reconcile_errors.with_label_values(&[controller, category]).inc();
    }

    /// A check finished without reaching Argo CD's data.
    fn seen(&self, namespace: &str, instance: &str) {
        let mut known = self.known_instances.lock().unwrap_or_else(|e| e.into_inner());
        known.insert((namespace.to_string(), instance.to_string()));
    }

    pub fn check_failed(&self, namespace: &str, instance: &str, reason: Reason, at: jiff::Timestamp) {
        self.seen(namespace, instance);
        self.instance_up.with_label_values(&[namespace, instance]).set(0);
        self.last_check.with_label_values(&[namespace, instance]).set(at.as_millisecond() as f64 / 1000.0);
        self.request_errors.with_label_values(&[namespace, instance, reason.as_str()]).inc();
    }

    /// A check succeeded: connection, destination and expiry series. `dangling` is the
    /// instance's count of dangling destinations (`status.summary.danglingDestinations`).
    pub fn check_succeeded(
        &self,
        namespace: &str,
        instance: &str,
        observed: &Observed,
        linkage: &Linkage,
        dangling: u64,
        at: jiff::Timestamp,
    ) {
        let secs = at.as_millisecond() as f64 / 1000.0;
        self.instance_up.with_label_values(&[namespace, instance]).set(1);
        self.last_check.with_label_values(&[namespace, instance]).set(secs);
        self.last_success.with_label_values(&[namespace, instance]).set(secs);
        self.successes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), instance.to_string()), secs);
        match observed.credentials_expire_at {
            Some(exp) => {
                self.credentials_expiry.with_label_values(&[namespace, instance]).set(exp.as_second() as f64)
            }
            None => {
                let _ = self.credentials_expiry.remove_label_values(&[namespace, instance]);
            }
        }
        self.linkage(namespace, instance, linkage, dangling);
    }

    /// Destination series from a (re)computed linkage, and the count of dangling destinations.
    pub fn linkage(&self, namespace: &str, instance: &str, linkage: &Linkage, dangling: u64) {
        self.seen(namespace, instance);
        self.destinations
            .with_label_values(&[namespace, instance, "linked"])
            .set(linkage.linked.len() as i64);
        self.destinations
            .with_label_values(&[namespace, instance, "unlinked"])
            .set(linkage.unlinked.len() as i64);
        self.orphaned.with_label_values(&[namespace, instance]).set(linkage.orphaned.len() as i64);
        self.dangling
            .with_label_values(&[namespace, instance])
            .set(i64::try_from(dangling).unwrap_or(i64::MAX));
        // The destinations with the most applications (then by URL, for a stable choice).
        let mut all: Vec<Row<'_>> = linkage
            .linked
            .iter()
            .map(|l| Row {
                url: &l.argocd_cluster_url,
                argocd_name: l.argocd_cluster_name.as_deref(),
                cluster: Some(&l.cluster),
                applications: l.applications_count,
                details: &l.details,
            })
            .chain(linkage.unlinked.iter().map(|u| Row {
                url: &u.argocd_cluster_url,
                argocd_name: u.argocd_cluster_name.as_deref(),
                cluster: None,
                applications: u.applications_count,
                details: &u.details,
            }))
            .collect();
        all.sort_by(|a, b| b.applications.cmp(&a.applications).then(a.url.cmp(b.url)));
        // Held while the series are set and pruned, so two updates of one instance cannot
        // remove what the other just set.
        let mut known = self.known_destinations.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = DestinationSeries::default();
        for row in all.into_iter().take(self.destination_limit) {
            let dest = destination_label(row.url);
            let linked = if row.cluster.is_some() { "true" } else { "false" };
            let apps = i64::try_from(row.applications).unwrap_or(i64::MAX);
            self.destination_apps.with_label_values(&[namespace, instance, &dest, linked]).set(apps);
            now.applications.insert((dest.clone(), linked));
            let info = row.info_labels(dest.clone());
            self.destination_info.with_label_values(&labels(namespace, instance, &info)).set(1);
            now.info.insert(info);
            if let Some(counts) = &row.details.applications_by_status {
                for (health, n) in health_counts(counts) {
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    self.by_health.with_label_values(&[namespace, instance, &dest, health]).set(n);
                }
                for (sync, n) in sync_counts(counts) {
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    self.by_sync.with_label_values(&[namespace, instance, &dest, sync]).set(n);
                }
                now.by_status.insert(dest);
            }
        }
        let key = (namespace.to_string(), instance.to_string());
        if let Some(before) = known.get(&key) {
            self.remove_destination_series(namespace, instance, before, Some(&now));
        }
        known.insert(key, now);
    }

    /// Removes the series of `before` that `now` does not have (all of them without `now`).
    fn remove_destination_series(
        &self,
        namespace: &str,
        instance: &str,
        before: &DestinationSeries,
        now: Option<&DestinationSeries>,
    ) {
        let empty = DestinationSeries::default();
        let now = now.unwrap_or(&empty);
        for (dest, linked) in before.applications.difference(&now.applications) {
            let _ = self.destination_apps.remove_label_values(&[namespace, instance, dest, linked]);
        }
        for info in before.info.difference(&now.info) {
            let _ = self.destination_info.remove_label_values(&labels(namespace, instance, info));
        }
        for dest in before.by_status.difference(&now.by_status) {
            for health in HEALTH {
                let _ = self.by_health.remove_label_values(&[namespace, instance, dest, health]);
            }
            for sync in SYNC {
                let _ = self.by_sync.remove_label_values(&[namespace, instance, dest, sync]);
            }
        }
    }

    /// One event read from an instance's application stream.
    pub fn stream_event(&self, namespace: &str, instance: &str, kind: EventKind, at: jiff::Timestamp) {
        self.seen(namespace, instance);
        self.stream_events.with_label_values(&[namespace, instance, kind.into()]).inc();
        self.stream_last_event
            .with_label_values(&[namespace, instance])
            .set(at.as_millisecond() as f64 / 1000.0);
    }

    /// A stream failed (`reason`: a fixed category) and is opened again.
    pub fn stream_reconnect(&self, namespace: &str, instance: &str, reason: &'static str) {
        self.seen(namespace, instance);
        self.stream_reconnects.with_label_values(&[namespace, instance, reason]).inc();
    }

    pub fn stream_relisted(&self, namespace: &str, instance: &str) {
        self.seen(namespace, instance);
        self.stream_relists.with_label_values(&[namespace, instance]).inc();
    }

    /// Whether applications come from the stream now.
    pub fn stream_up(&self, namespace: &str, instance: &str, up: bool) {
        self.seen(namespace, instance);
        self.stream_up.with_label_values(&[namespace, instance]).set(i64::from(up));
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, endpoint: &'static str, code: &str, elapsed: Duration) {
        self.request_duration.with_label_values(&[endpoint, code]).observe(elapsed.as_secs_f64());
    }
}

/// Bytes of a `destination` label value at most. Argo CD's cluster URLs are far shorter; one
/// past it keeps its first bytes and gets a digest of the whole, so two long URLs stay apart.
pub const DESTINATION_LABEL_MAX: usize = 256;

/// The `destination` label of a destination URL (see [`DESTINATION_LABEL_MAX`]).
fn destination_label(url: &str) -> String {
    if url.len() <= DESTINATION_LABEL_MAX {
        return url.to_string();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, url.as_bytes());
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    // "…" and the digest take 3 + 1 + 16 bytes; the rest is the URL's start, cut on a char.
    let mut keep = DESTINATION_LABEL_MAX - 20;
    while !url.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}…#{hex}", &url[..keep])
}

/// Bytes of a cluster name or id label value at most (a Kubernetes name's length; Argo CD
/// sets no limit on its cluster names, argomap keeps 253 bytes of them).
pub const NAME_LABEL_MAX: usize = 253;

/// The `health` label values, Argo CD's health statuses.
pub const HEALTH: [&str; 6] = ["Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"];
/// The `sync` label values, Argo CD's sync statuses.
pub const SYNC: [&str; 3] = ["Synced", "OutOfSync", "Unknown"];

fn health_counts(c: &StatusCounts) -> [(&'static str, u64); 6] {
    let h = &c.health;
    let counts = [h.healthy, h.progressing, h.degraded, h.suspended, h.missing, h.unknown];
    std::array::from_fn(|i| (HEALTH[i], counts[i]))
}

fn sync_counts(c: &StatusCounts) -> [(&'static str, u64); 3] {
    let s = &c.sync;
    let counts = [s.synced, s.out_of_sync, s.unknown];
    std::array::from_fn(|i| (SYNC[i], counts[i]))
}

/// One destination of a linkage, as the per-destination families show it.
struct Row<'a> {
    url: &'a str,
    argocd_name: Option<&'a str>,
    /// The platform cluster linked to it (a ClusterMapping's, or the agent cluster for the
    /// implicit in-cluster link).
    cluster: Option<&'a KnownCluster>,
    applications: u64,
    details: &'a DestinationDetails,
}

impl Row<'_> {
    /// `state` is `dangling` before `linked` or `unlinked`: Argo CD has no cluster for the
    /// destination, so its own operations on the applications aimed there fail whether or not
    /// a mapping links it (a link keeps its `cluster_*` labels).
    fn state(&self) -> &'static str {
        match (self.details.dangling, self.cluster.is_some()) {
            (true, _) => "dangling",
            (false, true) => "linked",
            (false, false) => "unlinked",
        }
    }

    fn info_labels(&self, destination: String) -> InfoLabels {
        let name = |s: &str| printable(s, NAME_LABEL_MAX);
        let (id, cluster, kind, provider) = match self.cluster {
            Some(c) => (name(&c.id), name(&c.name), serialized(&c.kind), serialized(&c.cloud_provider)),
            None => Default::default(),
        };
        [
            destination,
            self.argocd_name.map(name).unwrap_or_default(),
            self.state().to_string(),
            id,
            cluster,
            kind,
            provider,
        ]
    }
}

/// A `destination_info` label set: namespace, instance, then `info`.
fn labels<'a>(namespace: &'a str, instance: &'a str, info: &'a InfoLabels) -> [&'a str; 9] {
    let [a, b, c, d, e, f, g] = info;
    [namespace, instance, a, b, c, d, e, f, g]
}

/// The string a unit enum variant serializes to (the CRD's spelling: `AWS`, `SELF_MANAGED`).
fn serialized(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
