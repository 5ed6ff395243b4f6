//! The `ArgoCdInstance` kind: one Argo CD server, its credentials, and what argomap last saw of it.

// kube-derive takes one `printcolumn(...)` per column; clippy reads their repeated keys as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cluster_mapping::ProfileRef;
use super::{
    ConnectionState, DURATION_PATTERN, INSTANCE_URL_RULE, KnownCluster, LocalRef, Reason, UUID_PATTERN,
};

/// An Argo CD server that argomap checks.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "argomap.io",
    version = "v1alpha1",
    kind = "ArgoCdInstance",
    plural = "argocdinstances",
    shortname = "aci",
    namespaced,
    status = "ArgoCdInstanceStatus",
    derive = "PartialEq",
    doc = "An Argo CD server whose destination clusters argomap maps to known clusters",
    printcolumn(name = "URL", type_ = "string", json_path = ".spec.url"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.connection.status"),
    printcolumn(name = "Linked", type_ = "integer", json_path = ".status.summary.linkedClusters"),
    printcolumn(name = "Unlinked", type_ = "integer", json_path = ".status.summary.unlinkedClusters"),
    printcolumn(name = "Apps", type_ = "integer", json_path = ".status.summary.applications"),
    printcolumn(name = "Last-Checked", type_ = "date", json_path = ".status.connection.lastCheckedAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.connection.argocdVersion",
        priority = 1
    ),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.connection.reason", priority = 1),
    printcolumn(
        name = "Dangling",
        type_ = "integer",
        json_path = ".status.summary.danglingDestinations",
        priority = 1
    ),
    printcolumn(
        name = "Shared",
        type_ = "integer",
        json_path = ".status.summary.sharedClusters",
        priority = 1
    ),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.applications.mode", priority = 1),
    printcolumn(
        name = "Stream",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ApplicationStream\")].reason",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCdInstanceSpec {
    /// Base URL of the Argo CD server, with its --rootpath prefix if any.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(INSTANCE_URL_RULE).message("url must be an http:// or https:// URL without user info, query or fragment"))]
    pub url: String,
    pub credentials: CredentialsSpec,
    /// The cluster this Argo CD runs on ("agent cluster").
    pub agent_cluster: KnownCluster,
    /// Groups instances for the read API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub organization_id: Option<String>,
    /// Poll period, at least 10s.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('24h')").message("interval must be between 10s and 24h"))]
    pub interval: String,
    /// Timeout of each request to Argo CD.
    #[serde(default = "default_timeout")]
    #[schemars(regex(pattern = DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')").message("timeout must be between 1s and 10m"))]
    pub timeout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Stop checking this instance; its last status stays.
    #[serde(default)]
    pub suspend: bool,
    /// How applications are read from Argo CD.
    #[serde(default)]
    pub applications: ApplicationsSpec,
    /// Links destinations whose Argo CD cluster carries one of these identity keys naming a
    /// ClusterProfile with the `argomap.io/*` cluster annotations, without a ClusterMapping.
    /// Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_link: Option<AutoLinkSpec>,
}

/// Automatic links: the identity keys trusted to name a ClusterProfile.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AutoLinkSpec {
    /// Among `argocd.argoproj.io/cluster-profile-origin`, `clusterprofile.x-k8s.io/origin`,
    /// `multicluster.x-k8s.io/inventory-member-id`, `apps.open-cluster-management.io/cluster-name`
    /// and `argocd-agent.argoproj-labs.io/agent-name`; tried in that order.
    #[schemars(length(min = 1, max = 5))]
    #[x_kube(validation = Rule::new("self.all(k, k in ['argocd.argoproj.io/cluster-profile-origin', 'clusterprofile.x-k8s.io/origin', 'multicluster.x-k8s.io/inventory-member-id', 'apps.open-cluster-management.io/cluster-name', 'argocd-agent.argoproj-labs.io/agent-name'])").message("autoLink.identityKeys: only identity keys that name a ClusterProfile"))]
    pub identity_keys: Vec<String>,
}

/// How applications are read from Argo CD.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationsSpec {
    /// `Poll` lists every application each interval. `Watch` follows Argo CD's application
    /// stream: a change shows within a second, the list is read again only every 10 intervals
    /// and after a reconnect, and polling takes over while the stream cannot be used.
    #[serde(default)]
    pub mode: ApplicationsMode,
    /// Also count each destination's applications by health and sync status (read from Argo
    /// CD with them: a few dozen bytes more per application). Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub health: bool,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema, strum::IntoStaticStr,
)]
pub enum ApplicationsMode {
    #[default]
    Poll,
    Watch,
}

/// `spec.interval` when none is written: the schema's default and [`ArgoCdInstanceSpec::new`]'s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// `spec.timeout` when none is written, likewise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl ArgoCdInstanceSpec {
    /// The spec of an Argo CD server at `url` whose token is key `token` of Secret `secret_name`,
    /// running on `agent_cluster`; every other field is the schema's default (no organization,
    /// no TLS settings, polled every [`DEFAULT_INTERVAL`] within [`DEFAULT_TIMEOUT`]).
    pub fn new(url: impl Into<String>, secret_name: impl Into<String>, agent_cluster: KnownCluster) -> Self {
        ArgoCdInstanceSpec {
            url: url.into(),
            credentials: CredentialsSpec {
                secret_ref: LocalRef { name: secret_name.into() },
                ..Default::default()
            },
            agent_cluster,
            organization_id: None,
            interval: default_interval(),
            timeout: default_timeout(),
            tls: None,
            suspend: false,
            applications: ApplicationsSpec::default(),
            auto_link: None,
        }
    }

    /// The poll period; the schema only admits valid durations, anything else is the default.
    pub fn interval_duration(&self) -> Duration {
        super::parse_duration(&self.interval).unwrap_or(DEFAULT_INTERVAL)
    }

    /// The per-request timeout, likewise.
    pub fn timeout_duration(&self) -> Duration {
        super::parse_duration(&self.timeout).unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// A whole number of seconds as the schema writes durations (`60s`).
fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

fn default_interval() -> String {
    seconds(DEFAULT_INTERVAL)
}

fn default_timeout() -> String {
    seconds(DEFAULT_TIMEOUT)
}

/// Where the Argo CD credentials live. Either `tokenKey` (default `token`) or
/// `usernameKey` with `passwordKey`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tokenKey) || (!has(self.usernameKey) && !has(self.passwordKey))").message("credentials: tokenKey cannot be combined with usernameKey/passwordKey"))]
#[x_kube(validation = Rule::new("has(self.usernameKey) == has(self.passwordKey)").message("credentials: usernameKey and passwordKey must be given together"))]
pub struct CredentialsSpec {
    /// Secret in the same namespace.
    pub secret_ref: LocalRef,
    /// Key holding an Argo CD API token (default `token`; argocd-operator local users use `apiToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub token_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub username_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub password_key: Option<String>,
}

/// How the credentials in the Secret are to be used, once defaults are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialKeys<'a> {
    Token(&'a str),
    Login { username: &'a str, password: &'a str },
}

impl CredentialsSpec {
    pub fn keys(&self) -> CredentialKeys<'_> {
        match (&self.username_key, &self.password_key) {
            (Some(username), Some(password)) if self.token_key.is_none() => {
                CredentialKeys::Login { username, password }
            }
            _ => CredentialKeys::Token(self.token_key.as_deref().unwrap_or("token")),
        }
    }
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Skip certificate verification (sets the InsecureTLS warning condition).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Extra CA (PEM) trusted besides the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Name to verify the server certificate against, instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCdInstanceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStatus>,
    #[serde(default)]
    pub linked_clusters: Vec<LinkedCluster>,
    #[serde(default)]
    pub unlinked_clusters: Vec<UnlinkedCluster>,
    #[serde(default)]
    pub orphaned_mappings: Vec<String>,
    /// Destinations applications aim at that Argo CD cannot resolve (no cluster registered for
    /// the server, or a cluster name matching none or several): Argo CD's own operations on
    /// those applications break (sync windows, deletions). Left out while the token cannot see
    /// the whole cluster list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dangling_destinations: Vec<DanglingDestination>,
    /// Set when a list above was cut at its cap; the summary counts stay exact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_refresh_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    pub status: ConnectionState,
    pub reason: Reason,
    /// Human text, no secrets, at most 1 KiB.
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_check_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_expire_at: Option<Time>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedCluster {
    pub argocd_cluster_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_cluster_name: Option<String>,
    /// The ClusterMapping that links it; absent for the implicit in-cluster link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    pub cluster: KnownCluster,
    #[schemars(with = "i64")]
    pub applications_count: u64,
    /// Argo CD's own view of the connection (a hint from its controller cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_connection_state: Option<String>,
    /// The other ArgoCdInstances (`namespace/name`) whose status links a destination to the
    /// same platform cluster (`cluster.id`), in order; at most 10, `alsoDeployedByCount`
    /// counts them all. Refreshed at each check of this instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_deployed_by: Vec<String>,
    /// How many other ArgoCdInstances deploy to that platform cluster.
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub also_deployed_by_count: u64,
    #[serde(flatten)]
    pub details: DestinationDetails,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlinkedCluster {
    pub argocd_cluster_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_cluster_name: Option<String>,
    #[schemars(with = "i64")]
    pub applications_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_connection_state: Option<String>,
    #[serde(flatten)]
    pub details: DestinationDetails,
}

/// What else is known of a destination, linked or not.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationDetails {
    /// Which cluster it is in its registrar's words: the recognised identity labels and
    /// annotations of Argo CD's cluster (ClusterProfile origin, inventory member id, Open
    /// Cluster Management, Cluster API, argocd-agent), most specific first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity: Vec<IdentityLabel>,
    /// The argocd-agent agent this cluster stands for on a principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_agent: Option<AgentStatus>,
    /// Applications aim here, but Argo CD has no cluster registered for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dangling: bool,
    /// The applications by health and sync status (`spec.applications.health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_by_status: Option<StatusCounts>,
    /// Linked without a ClusterMapping (`spec.autoLink`): by which identity, to which profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic: Option<AutomaticLink>,
    /// Unlinked, but its identity names a ClusterProfile: the mapping to write (or the reason
    /// `spec.autoLink` did not link it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_mapping: Option<SuggestedMapping>,
}

/// How a destination was linked without a ClusterMapping.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutomaticLink {
    pub identity: IdentityLabel,
    pub cluster_profile_ref: ProfileRef,
    /// Newer profiles the identity names too (not used).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Those profiles, `namespace/name` (the Cluster Inventory API's rule: the oldest wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

/// The ClusterMapping an unlinked destination's identity suggests.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuggestedMapping {
    pub identity: IdentityLabel,
    /// The profile the identity names (absent when argomap sees none, or a tie of several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_profile_ref: Option<ProfileRef>,
    /// Whether the profile gives the platform's cluster (its `argomap.io/*` annotations): the
    /// mapping then needs no `cluster`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub profile_gives_cluster: bool,
    /// Why it is a suggestion and not a link, e.g. the profile lacks `argomap.io/cluster-id`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Other profiles the identity names, `namespace/name`: newer ones, or, with no
    /// `clusterProfileRef`, those tied as the oldest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<String>,
}

/// One recognised identity label or annotation of an Argo CD cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct IdentityLabel {
    pub key: String,
    pub value: String,
}

/// An agent's cluster on an argocd-agent principal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub name: String,
    /// The agent's connection as the principal reports it in Argo CD's cluster info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// Applications per health status and per sync status (zeros left out).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusCounts {
    #[serde(default)]
    pub health: HealthCounts,
    #[serde(default)]
    pub sync: SyncCounts,
}

fn zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCounts {
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub healthy: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub progressing: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub degraded: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub suspended: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub missing: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub unknown: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "PascalCase")]
pub struct SyncCounts {
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub synced: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub out_of_sync: u64,
    #[serde(default, skip_serializing_if = "zero")]
    #[schemars(with = "i64")]
    pub unknown: u64,
}

/// A destination Argo CD cannot resolve.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DanglingDestination {
    /// The server URL (normalised) or the cluster name, as the applications give it.
    pub destination: String,
    pub kind: DestinationKind,
    /// Whether a cluster is registered under it (a name registered several times is ambiguous).
    pub registered: bool,
    #[schemars(with = "i64")]
    pub applications_count: u64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, strum::IntoStaticStr)]
pub enum DestinationKind {
    /// `spec.destination.server`.
    Server,
    /// `spec.destination.name`.
    Name,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[schemars(with = "i64")]
    pub linked_clusters: u64,
    #[schemars(with = "i64")]
    pub unlinked_clusters: u64,
    #[schemars(with = "i64")]
    pub orphaned_mappings: u64,
    #[schemars(with = "i64")]
    pub applications: u64,
    #[schemars(with = "i64")]
    pub unresolved_applications: u64,
    #[serde(default)]
    #[schemars(with = "i64")]
    pub dangling_destinations: u64,
    /// Linked platform clusters another ArgoCdInstance also deploys to (`alsoDeployedBy`).
    #[serde(default)]
    #[schemars(with = "i64")]
    pub shared_clusters: u64,
}
