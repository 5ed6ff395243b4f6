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
use crate::crd::Reason;
use crate::model::evaluate::Observed;
use crate::model::linkage::Linkage;

/// `destination_applications` label pairs (destination, linked) per (namespace, instance).
type DestinationSeries = HashMap<(String, String), BTreeSet<(String, &'static str)>>;

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
    /// (namespace, instance) → the `destination_applications` label pairs it has now, so
    /// vanished destinations can be removed.
    known_destinations: Mutex<DestinationSeries>,
    /// (namespace, instance) of every instance with series, so that those of instances deleted
    /// while the watch was away can be found and removed.
    known_instances: Mutex<BTreeSet<(String, String)>>,
    /// Per instance, at most this many `destination_applications` series (those with the
    /// most applications); 0 turns the family off. It is the one family whose size follows
    /// the fleet, and a scrape must stay small.
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

    /// Metrics with at most `limit` `destination_applications` series per instance.
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

    /// A check succeeded: connection, destination and expiry series.
    pub fn check_succeeded(
        &self,
        namespace: &str,
        instance: &str,
        observed: &Observed,
        linkage: &Linkage,
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
        self.linkage(namespace, instance, linkage);
    }

    /// Destination series from a (re)computed linkage.
    pub fn linkage(&self, namespace: &str, instance: &str, linkage: &Linkage) {
        self.seen(namespace, instance);
        self.destinations
            .with_label_values(&[namespace, instance, "linked"])
            .set(linkage.linked.len() as i64);
        self.destinations
            .with_label_values(&[namespace, instance, "unlinked"])
            .set(linkage.unlinked.len() as i64);
        self.orphaned.with_label_values(&[namespace, instance]).set(linkage.orphaned.len() as i64);
        // The destinations with the most applications (then by URL, for a stable choice).
        let mut all: Vec<(&str, &'static str, u64)> = linkage
            .linked
            .iter()
            .map(|l| (l.argocd_cluster_url.as_str(), "true", l.applications_count))
            .chain(
                linkage
                    .unlinked
                    .iter()
                    .map(|u| (u.argocd_cluster_url.as_str(), "false", u.applications_count)),
            )
            .collect();
        all.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        let mut now = BTreeSet::new();
        for (url, linked, count) in all.into_iter().take(self.destination_limit) {
            let label = destination_label(url);
            self.destination_apps.with_label_values(&[namespace, instance, &label, linked]).set(count as i64);
            now.insert((label, linked));
        }
        let key = (namespace.to_string(), instance.to_string());
        let mut known = self.known_destinations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = known.insert(key, now.clone()) {
            for (dest, linked) in before.difference(&now) {
                let _ = self.destination_apps.remove_label_values(&[namespace, instance, dest, linked]);
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

#[cfg(test)]
mod tests;
