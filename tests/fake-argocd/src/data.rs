//! Test data types and their Argo CD JSON form.
//!
//! The `Wire*` structs mirror the Go types field by field, in Go declaration order, with
//! `skip_serializing_if` exactly where Go has `omitempty` on a non-struct field (encoding/json
//! never omits structs, and nil pointers without `omitempty` become `null`).

use std::collections::BTreeMap;

use serde::Serialize;

/// Server URL of the cluster Argo CD runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Name of the synthesised in-cluster entry.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// Namespace of the fake's Argo CD control plane (apps elsewhere are "apps in any namespace").
pub const CONTROL_PLANE_NAMESPACE: &str = "argocd";
/// The label argocd-agent's principal puts on an agent's cluster Secret: the agent's name.
pub const AGENT_NAME_LABEL: &str = "argocd-agent.argoproj-labs.io/agent-name";
/// The annotation that keeps the principal's own application controller off an agent's cluster.
pub const SKIP_RECONCILE_ANNOTATION: &str = "argocd.argoproj.io/skip-reconcile";

/// What a cluster Secret carries that Argo CD leaves out of `/api/v1/clusters`: the label
/// that makes it a cluster Secret, and two annotations (`toAPIResponse` drops them).
const HIDDEN_LABELS: &[&str] = &["argocd.argoproj.io/secret-type"];
const HIDDEN_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration", "managed-by"];

/// A cluster secret as `GET /api/v1/clusters` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cluster {
    /// API server URL (trailing `/` is trimmed on output, like Argo CD's secret reader).
    pub server: String,
    /// May be empty (secret without a `name` key).
    pub name: String,
    /// `Successful` | `Failed` | `Unknown` | `""` (no controller cache entry: `attemptedAt`
    /// is `null`, `cacheInfo` `{}` and `serverVersion` absent).
    pub connection_status: String,
    /// Argo CD's own `info.applicationsCount` (controller cache); may disagree with reality.
    pub applications_count: i64,
    pub server_version: Option<String>,
    pub project: Option<String>,
    pub namespaces: Vec<String>,
    /// The cluster Secret's labels (listed minus `argocd.argoproj.io/secret-type`; Go writes a
    /// map with its keys sorted, as a `BTreeMap` does).
    pub labels: BTreeMap<String, String>,
    /// The cluster Secret's annotations (listed minus `kubectl.kubernetes.io/last-applied-
    /// configuration` and `managed-by`).
    pub annotations: BTreeMap<String, String>,
    /// `connectionState.message` as the cache holds it, in place of the one the fake words
    /// after the status (ignored while the status is `""`: no cache entry, no message).
    pub connection_message: Option<String>,
    /// The cache entry is the one an argocd-agent principal writes for an agent's cluster: the
    /// connection state and nothing else (no cache info, API versions or server version).
    pub principal_info: bool,
}

impl Cluster {
    /// A healthy cluster: `Successful`, server version `v1.33.1`, 0 apps counted.
    pub fn new(server: impl Into<String>, name: impl Into<String>) -> Cluster {
        Cluster {
            server: server.into(),
            name: name.into(),
            connection_status: "Successful".to_owned(),
            server_version: Some("v1.33.1".to_owned()),
            ..Cluster::default()
        }
    }

    /// Sets `connection_status` (`Successful`, `Failed`, `Unknown` or `""`).
    pub fn with_status(mut self, status: &str) -> Cluster {
        self.connection_status = status.to_owned();
        self
    }

    /// Sets Argo CD's `info.applicationsCount`.
    pub fn with_apps_count(mut self, count: i64) -> Cluster {
        self.applications_count = count;
        self
    }

    /// Adds a label to the cluster Secret.
    pub fn with_label(mut self, key: &str, value: &str) -> Cluster {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Adds an annotation to the cluster Secret.
    pub fn with_annotation(mut self, key: &str, value: &str) -> Cluster {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Sets `connectionState.message` (shown while the status is not `""`).
    pub fn with_connection_message(mut self, message: &str) -> Cluster {
        self.connection_message = Some(message.to_owned());
        self
    }

    /// An agent's cluster as argocd-agent's principal registers it (v0.9): server
    /// `<resource_proxy>?agentName=<agent>`, named after the agent, the agent-name label, the
    /// skip-reconcile annotation, and the connection state the principal writes while the
    /// agent is connected.
    pub fn agent(resource_proxy: &str, agent: &str) -> Cluster {
        Cluster {
            server: format!("{}?agentName={agent}", resource_proxy.trim_end_matches('/')),
            name: agent.to_owned(),
            server_version: None,
            principal_info: true,
            ..Cluster::default()
        }
        .with_label(AGENT_NAME_LABEL, agent)
        .with_annotation(SKIP_RECONCILE_ANNOTATION, "true")
        .with_agent_connected(true)
    }

    /// The connection state argocd-agent's principal writes for the agent of
    /// [`Cluster::agent`]: `Successful` and `Agent: '<name>' is connected with principal`, or
    /// `Failed` and `... is disconnected with principal`.
    pub fn with_agent_connected(mut self, connected: bool) -> Cluster {
        let agent = self.labels.get(AGENT_NAME_LABEL).cloned().unwrap_or_else(|| self.name.clone());
        let (status, state) =
            if connected { ("Successful", "connected") } else { ("Failed", "disconnected") };
        self.connection_status = status.to_owned();
        self.connection_message = Some(format!("Agent: '{agent}' is {state} with principal"));
        self
    }
}

/// An Argo CD Application. Everything not listed here is synthesised realistically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct App {
    pub name: String,
    /// e.g. `argocd`; another namespace means "apps in any namespace".
    pub namespace: String,
    /// Sent as given; `""` is how Argo CD stores "default" when unset, and the `projects`
    /// filter treats it as `default`.
    pub project: String,
    pub dest_server: Option<String>,
    pub dest_name: Option<String>,
    pub dest_namespace: Option<String>,
    /// `spec.sources` (two sources) instead of `spec.source`.
    pub multi_source: bool,
    /// `Synced` | `OutOfSync` | `Unknown` | `""` (never reconciled).
    pub sync_status: String,
    /// `Healthy` | `Progressing` | `Degraded` | `Suspended` | `Missing` | `Unknown` | `""`.
    pub health_status: String,
    /// `status.health.message` (e.g. why it is `Degraded`); `""` leaves it out.
    pub health_message: String,
}

impl App {
    /// App in `argocd`, project `default`, destination by server URL, `Synced`/`Healthy`.
    pub fn to_server(name: impl Into<String>, server: impl Into<String>) -> App {
        App { dest_server: Some(server.into()), ..App::base(name.into()) }
    }

    /// Like [`App::to_server`] but the destination names a cluster (`spec.destination.name`).
    pub fn to_name(name: impl Into<String>, cluster_name: impl Into<String>) -> App {
        App { dest_name: Some(cluster_name.into()), ..App::base(name.into()) }
    }

    /// Moves the app to another namespace.
    pub fn in_namespace(mut self, namespace: &str) -> App {
        self.namespace = namespace.to_owned();
        self
    }

    /// Sets `spec.project`.
    pub fn in_project(mut self, project: &str) -> App {
        self.project = project.to_owned();
        self
    }

    /// Makes it a multi-source app.
    pub fn as_multi_source(mut self) -> App {
        self.multi_source = true;
        self
    }

    /// Sets sync and health status (and clears the health message).
    pub fn with_status(mut self, sync: &str, health: &str) -> App {
        self.sync_status = sync.to_owned();
        self.health_status = health.to_owned();
        self.health_message = String::new();
        self
    }

    /// Sets `status.health.message`.
    pub fn with_health_message(mut self, message: &str) -> App {
        self.health_message = message.to_owned();
        self
    }

    fn base(name: String) -> App {
        App {
            dest_namespace: Some(name.clone()),
            name,
            namespace: CONTROL_PLANE_NAMESPACE.to_owned(),
            project: "default".to_owned(),
            sync_status: "Synced".to_owned(),
            health_status: "Healthy".to_owned(),
            ..App::default()
        }
    }

    /// Project as Argo CD evaluates it (`Spec.GetProject()`).
    pub(crate) fn effective_project(&self) -> &str {
        if self.project.is_empty() { "default" } else { &self.project }
    }
}

// ---------------------------------------------------------------------------------------
// Clusters: v1alpha1.ClusterList / Cluster / ClusterInfo / ConnectionState

#[derive(Serialize)]
pub(crate) struct WireListMeta {
    #[serde(rename = "resourceVersion", skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct WireClusterList {
    pub metadata: WireListMeta,
    /// `None` = Go nil slice = `null` (an empty list comes back from the gRPC hop as nil).
    pub items: Option<Vec<WireCluster>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireCluster {
    server: String,
    name: String,
    config: WireClusterConfig,
    connection_state: WireConnectionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    namespaces: Vec<String>,
    info: WireClusterInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl WireCluster {
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What survives `Cluster.Sanitized()`: only `tlsClientConfig.insecure` is mandatory.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireClusterConfig {
    tls_client_config: WireTlsClientConfig,
}

#[derive(Serialize)]
struct WireTlsClientConfig {
    insecure: bool,
}

#[derive(Clone, Serialize)]
struct WireConnectionState {
    status: String,
    message: String,
    /// Go `*metav1.Time` without omitempty: `null` when there is no cache entry.
    #[serde(rename = "attemptedAt")]
    attempted_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireClusterInfo {
    connection_state: WireConnectionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<String>,
    cache_info: WireCacheInfo,
    applications_count: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    api_versions: Vec<String>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireCacheInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    resources_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apis_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_cache_sync_time: Option<String>,
}

const API_VERSIONS: &[&str] = &[
    "apps/v1",
    "apps/v1/Deployment",
    "apps/v1/StatefulSet",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1/Ingress",
    "v1",
    "v1/ConfigMap",
    "v1/Secret",
    "v1/Service",
];

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

/// The cluster list as Argo CD builds it: secrets in order (the in-cluster secret hidden when
/// in-cluster is disabled), then the synthesised `in-cluster` entry if enabled and missing.
pub(crate) fn cluster_list(
    clusters: &[Cluster],
    apps: &[App],
    in_cluster_enabled: bool,
    now: i64,
) -> Vec<WireCluster> {
    let mut list: Vec<Cluster> = clusters
        .iter()
        .map(|c| Cluster { server: c.server.trim_end_matches('/').to_owned(), ..c.clone() })
        .filter(|c| in_cluster_enabled || c.server != IN_CLUSTER_SERVER)
        .collect();
    if in_cluster_enabled && !list.iter().any(|c| c.server == IN_CLUSTER_SERVER) {
        // Synthesised entry. Its count is computed like the controller would (the other
        // entries' states imply one runs); the list itself takes part in name resolution.
        list.push(Cluster::new(IN_CLUSTER_SERVER, IN_CLUSTER_NAME));
        let count = count_apps_on(IN_CLUSTER_SERVER, &list, apps);
        if let Some(last) = list.last_mut() {
            last.applications_count = count;
        }
    }
    list.iter().map(|c| wire_cluster(c, now)).collect()
}

/// How the controller counts: apps whose destination resolves (name → server via the cluster
/// list, which must yield exactly one match) to `server`.
fn count_apps_on(server: &str, clusters: &[Cluster], apps: &[App]) -> i64 {
    let resolves_here = |app: &App| match (non_empty(&app.dest_server), non_empty(&app.dest_name)) {
        (Some(s), None) => s.trim_end_matches('/') == server,
        (None, Some(n)) => {
            let mut hits = clusters.iter().filter(|c| c.name == n);
            matches!((hits.next(), hits.next()), (Some(c), None) if c.server == server)
        }
        _ => false,
    };
    apps.iter().filter(|a| resolves_here(a)).count().try_into().unwrap_or(i64::MAX)
}

fn wire_cluster(c: &Cluster, now: i64) -> WireCluster {
    let attempted = Some(rfc3339(now));
    let (mut state, mut cache_info, mut api_versions) = match c.connection_status.as_str() {
        "" => (
            WireConnectionState { status: String::new(), message: String::new(), attempted_at: None },
            WireCacheInfo::default(),
            Vec::new(),
        ),
        "Successful" => (
            WireConnectionState {
                status: "Successful".to_owned(),
                message: String::new(),
                attempted_at: attempted,
            },
            WireCacheInfo {
                resources_count: Some(1532),
                apis_count: Some(58),
                last_cache_sync_time: Some(rfc3339(now - 3600)),
            },
            API_VERSIONS.iter().map(|s| (*s).to_owned()).collect(),
        ),
        "Failed" => (
            WireConnectionState {
                status: "Failed".to_owned(),
                message: format!(
                    "failed to sync cluster {0}: failed to get server version: Get \"{0}/version?timeout=32s\": dial tcp: i/o timeout",
                    c.server
                ),
                attempted_at: attempted,
            },
            WireCacheInfo::default(),
            Vec::new(),
        ),
        other => (
            WireConnectionState {
                status: other.to_owned(),
                message: if other == "Unknown" && c.applications_count == 0 {
                    "Cluster has no applications and is not being monitored.".to_owned()
                } else {
                    String::new()
                },
                attempted_at: attempted,
            },
            WireCacheInfo::default(),
            Vec::new(),
        ),
    };
    let cached = !c.connection_status.is_empty();
    if let Some(message) = c.connection_message.as_ref().filter(|_| cached) {
        state.message.clone_from(message);
    }
    if c.principal_info {
        // setClusterInfo on the principal writes a ClusterInfo holding the connection only.
        cache_info = WireCacheInfo::default();
        api_versions.clear();
    }
    // Without a cache entry nothing but the secret is known, not even the version.
    let server_version = non_empty(&c.server_version).filter(|_| cached && !c.principal_info);
    let visible = |map: &BTreeMap<String, String>, hidden: &[&str]| -> BTreeMap<String, String> {
        map.iter()
            .filter(|(k, _)| !hidden.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    WireCluster {
        server: c.server.clone(),
        name: c.name.clone(),
        config: WireClusterConfig { tls_client_config: WireTlsClientConfig { insecure: false } },
        // The deprecated top-level copies are taken from `info` (`toAPIResponse`).
        connection_state: state.clone(),
        server_version: server_version.clone(),
        namespaces: c.namespaces.clone(),
        info: WireClusterInfo {
            connection_state: state,
            server_version,
            cache_info,
            applications_count: c.applications_count,
            api_versions,
        },
        project: non_empty(&c.project),
        labels: visible(&c.labels, HIDDEN_LABELS),
        annotations: visible(&c.annotations, HIDDEN_ANNOTATIONS),
    }
}

// ---------------------------------------------------------------------------------------
// Applications: v1alpha1.Application and the parts the fake fills in

#[derive(Serialize)]
pub(crate) struct WireApp {
    pub metadata: WireObjectMeta,
    pub spec: WireSpec,
    pub status: WireStatus,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireObjectMeta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub generation: i64,
    pub creation_timestamp: String,
    pub finalizers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<WireSource>,
    pub destination: WireDestination,
    pub project: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<WireSource>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSource {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `server`, `namespace`, `name`: all omitempty, in Go order.
#[derive(Clone, Serialize)]
pub(crate) struct WireDestination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireStatus {
    pub sync: WireSyncStatus,
    pub health: WireHealth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    pub summary: Empty,
    pub resource_health_source: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_types: Vec<String>,
    pub controller_namespace: String,
    pub source_hydrator: Empty,
}

/// A Go struct whose members are all omitempty and unset: always sent as `{}`.
#[derive(Serialize)]
pub(crate) struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireSyncStatus {
    pub status: String,
    pub compared_to: WireComparedTo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct WireComparedTo {
    pub source: WireSource,
    pub destination: WireDestination,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<WireSource>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireHealth {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// FNV-1a, to derive stable uids/revisions from an app's identity.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A moment in the fake's recent past (2026-08-22T09:35:42Z).
const RECENTLY: i64 = 1_787_391_342;

/// When an application's health last changed: none before its first assessment, else a moment
/// in the month before [`RECENTLY`] fixed by the application and its health. So an application
/// whose health stays serialises to the same bytes each time, as its stored object would, and
/// a new health comes with a new time.
fn health_transition(id: &str, health: &str) -> Option<String> {
    if health.is_empty() {
        return None;
    }
    let back = fnv(&format!("{id}#health#{health}")) % (30 * 86_400);
    Some(rfc3339(RECENTLY - i64::try_from(back).unwrap_or_default()))
}

pub(crate) fn wire_app(app: &App, now: i64) -> WireApp {
    let id = format!("{}/{}", app.namespace, app.name);
    let h = fnv(&id);
    let h2 = fnv(&format!("{id}#"));
    let uid = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        h2 >> 52,
        h2 & 0xffff_ffff_ffff
    );
    let revision = format!("{h:016x}{h2:016x}{:08x}", (h ^ h2) >> 32);
    let destination = WireDestination {
        server: non_empty(&app.dest_server),
        namespace: non_empty(&app.dest_namespace),
        name: non_empty(&app.dest_name),
    };
    let (source, sources) = if app.multi_source {
        (
            None,
            vec![
                WireSource {
                    repo_url: "https://charts.example.com/stable".to_owned(),
                    path: None,
                    target_revision: Some("4.2.0".to_owned()),
                    chart: Some(app.name.clone()),
                    reference: None,
                },
                WireSource {
                    repo_url: "https://git.example.com/platform/helm-values.git".to_owned(),
                    path: None,
                    target_revision: Some("main".to_owned()),
                    chart: None,
                    reference: Some("values".to_owned()),
                },
            ],
        )
    } else {
        let src = WireSource {
            repo_url: format!("https://git.example.com/{}/{}.git", app.namespace, app.name),
            path: Some("deploy".to_owned()),
            target_revision: Some("HEAD".to_owned()),
            chart: None,
            reference: None,
        };
        (Some(src), Vec::new())
    };
    let reconciled = !app.sync_status.is_empty();
    let has_revision = reconciled && app.sync_status != "Unknown";
    let (revision, revisions) = match (has_revision, app.multi_source) {
        (false, _) => (None, Vec::new()),
        (true, false) => (Some(revision), Vec::new()),
        (true, true) => (None, vec!["4.2.0".to_owned(), revision]),
    };
    WireApp {
        metadata: WireObjectMeta {
            name: app.name.clone(),
            namespace: app.namespace.clone(),
            uid,
            resource_version: (900_000 + h % 100_000).to_string(),
            generation: 1 + (h % 7) as i64,
            creation_timestamp: "2026-05-02T10:11:12Z".to_owned(),
            finalizers: vec!["resources-finalizer.argocd.argoproj.io".to_owned()],
        },
        spec: WireSpec {
            source: source.clone(),
            destination: destination.clone(),
            project: app.project.clone(),
            sources: sources.clone(),
        },
        status: WireStatus {
            sync: WireSyncStatus {
                status: app.sync_status.clone(),
                compared_to: WireComparedTo {
                    // Multi-source apps compare against an empty single source.
                    source: source.unwrap_or(WireSource {
                        repo_url: String::new(),
                        path: None,
                        target_revision: None,
                        chart: None,
                        reference: None,
                    }),
                    destination,
                    sources,
                },
                revision,
                revisions,
            },
            health: WireHealth {
                status: Some(app.health_status.clone()).filter(|s| !s.is_empty()),
                message: Some(app.health_message.clone()).filter(|m| !m.is_empty()),
                last_transition_time: health_transition(&id, &app.health_status),
            },
            reconciled_at: Some(rfc3339(now - 30)).filter(|_| reconciled),
            source_type: (!app.multi_source).then(|| "Directory".to_owned()),
            summary: Empty {},
            resource_health_source: "appTree".to_owned(),
            source_types: if app.multi_source {
                // ref-only sources contribute ""
                vec!["Helm".to_owned(), String::new()]
            } else {
                Vec::new()
            },
            controller_namespace: CONTROL_PLANE_NAMESPACE.to_owned(),
            source_hydrator: Empty {},
        },
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` like metav1.Time (UTC, second precision).
pub(crate) fn rfc3339(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_787_391_342), "2026-08-22T09:35:42Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn what_argo_cd_hides_of_a_secret_is_left_out() {
        let c = Cluster::new("https://a", "a")
            .with_label("argocd.argoproj.io/secret-type", "cluster")
            .with_annotation("managed-by", "argocd.argoproj.io")
            .with_annotation("kubectl.kubernetes.io/last-applied-configuration", "{}");
        let json = serde_json::to_value(wire_cluster(&c, 0)).expect("json");
        assert!(json.get("labels").is_none() && json.get("annotations").is_none(), "{json}");
        let agent =
            serde_json::to_value(wire_cluster(&Cluster::agent("https://proxy:9090/", "e"), 0)).expect("json");
        assert_eq!(agent["server"], "https://proxy:9090?agentName=e");
        assert_eq!(agent["labels"][AGENT_NAME_LABEL], "e");
        assert_eq!(agent["connectionState"]["message"], "Agent: 'e' is connected with principal");
    }

    #[test]
    fn health_keeps_its_transition_time_until_it_changes() {
        let app = App::to_server("a", "https://a").with_status("Synced", "Degraded");
        let health = |app: &App, now| serde_json::to_value(wire_app(app, now).status.health).expect("json");
        assert_eq!(health(&app, 0), health(&app, 100_000), "the same whenever it is sent");
        assert_eq!(health(&app.clone().with_health_message("why"), 0)["message"], "why");
        let later = health(&app.clone().with_status("Synced", "Healthy"), 0);
        assert_ne!(later["lastTransitionTime"], health(&app, 0)["lastTransitionTime"]);
        assert_eq!(health(&app.with_status("", ""), 0), serde_json::json!({}));
    }

    #[test]
    fn synthesised_in_cluster_counts_apps_by_server_and_name() {
        let apps = vec![
            App::to_server("a", "https://kubernetes.default.svc/"),
            App::to_name("b", "in-cluster"),
            App::to_server("c", "https://elsewhere"),
        ];
        let list = cluster_list(&[Cluster::new("https://elsewhere/", "x")], &apps, true, 0);
        let json = serde_json::to_value(&list).expect("json");
        assert_eq!(json[0]["server"], "https://elsewhere");
        assert_eq!(json[1]["name"], "in-cluster");
        assert_eq!(json[1]["info"]["applicationsCount"], 2);
        assert_eq!(cluster_list(&[], &apps, false, 0).len(), 0);
    }
}
