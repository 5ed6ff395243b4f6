//! The two custom resources, `ArgoCdInstance` and `ClusterMapping` (group `argomap.io`,
//! version `v1alpha1`). Their schema, validation and printer columns are generated from these
//! types; `crds/*.yaml` is the output of `argomap crds` and a test keeps the two equal.

// kube-derive takes one `printcolumn(...)` per column; clippy reads their repeated keys as
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of both kinds.
pub const GROUP: &str = "argomap.io";
/// Field manager of every write and reporter of every Event.
pub const MANAGER: &str = "argomap";
/// Any new value of this annotation triggers an immediate check; it is echoed in
/// `status.lastHandledRefreshAt`.
pub const REFRESH_ANNOTATION: &str = "argomap.io/refresh-requested-at";
/// The address Argo CD uses for the cluster it runs in.
pub const IN_CLUSTER_URL: &str = "https://kubernetes.default.svc";

const UUID_PATTERN: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
// http or https, a host, an optional path; no user info (credentials belong in the Secret).
const URL_RULE: &str = r"self.matches('^https?://[^/@?#\\s]+([/?][^#\\s]*)?$')";

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
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.connection.reason", priority = 1)
)]
#[serde(rename_all = "camelCase")]
pub struct ArgoCdInstanceSpec {
    /// Base URL of the Argo CD server, with its --rootpath prefix if any.
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message("url must be an http:// or https:// URL without user info"))]
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
}

fn default_interval() -> String {
    "60s".into()
}

fn default_timeout() -> String {
    "10s".into()
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

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
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

/// A cluster the platform knows (Qovery's cluster fields).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KnownCluster {
    #[schemars(regex(pattern = UUID_PATTERN))]
    pub id: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    pub cloud_provider: CloudProvider,
    #[serde(default, rename = "type")]
    pub kind: KubernetesType,
}

/// Qovery's CloudVendorEnum.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloudProvider {
    Aws,
    Scw,
    Gcp,
    Do,
    Azure,
    Ovh,
    Civo,
    Hetzner,
    Oracle,
    Ibm,
    OnPremise,
}

/// Qovery's KubernetesEnum.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KubernetesType {
    #[default]
    Managed,
    SelfManaged,
    PartiallyManaged,
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

/// Qovery's ArgoCdConnectionStatusEnum.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    Connected,
    Error,
}

/// Why a check ended as it did. Fixed set: used as status reason, event reason and metric label.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum Reason {
    Connected,
    AuthenticationFailed,
    InsufficientPermissions,
    Unreachable,
    Timeout,
    #[serde(rename = "TLSError")]
    TlsError,
    InvalidResponse,
    CredentialsNotFound,
    Suspended,
    /// Before the first check finished.
    Pending,
}

impl Reason {
    pub const ALL: [Reason; 10] = [
        Reason::Connected,
        Reason::AuthenticationFailed,
        Reason::InsufficientPermissions,
        Reason::Unreachable,
        Reason::Timeout,
        Reason::TlsError,
        Reason::InvalidResponse,
        Reason::CredentialsNotFound,
        Reason::Suspended,
        Reason::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connected => "Connected",
            Reason::AuthenticationFailed => "AuthenticationFailed",
            Reason::InsufficientPermissions => "InsufficientPermissions",
            Reason::Unreachable => "Unreachable",
            Reason::Timeout => "Timeout",
            Reason::TlsError => "TLSError",
            Reason::InvalidResponse => "InvalidResponse",
            Reason::CredentialsNotFound => "CredentialsNotFound",
            Reason::Suspended => "Suspended",
            Reason::Pending => "Pending",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
}

/// Maps one Argo CD destination URL to a cluster the platform knows.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "argomap.io",
    version = "v1alpha1",
    kind = "ClusterMapping",
    plural = "clustermappings",
    shortname = "clm",
    namespaced,
    status = "ClusterMappingStatus",
    derive = "PartialEq",
    doc = "Maps an Argo CD destination cluster URL to a known cluster",
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.instanceRef.name"),
    printcolumn(name = "ArgoCD-URL", type_ = "string", json_path = ".spec.argocdClusterUrl"),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Apps", type_ = "integer", json_path = ".status.applicationsCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMappingSpec {
    /// ArgoCdInstance in the same namespace.
    pub instance_ref: LocalRef,
    /// The destination URL as Argo CD knows it (compared after normalisation).
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message("argocdClusterUrl must be an http:// or https:// URL without user info"))]
    pub argocd_cluster_url: String,
    pub cluster: KnownCluster,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterMappingStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MappingState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<i64>")]
    pub applications_count: Option<u64>,
    /// For `Conflict`: the mapping that holds the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicts_with: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MappingState {
    Linked,
    Orphaned,
    Conflict,
    InstanceNotFound,
    Pending,
}

impl MappingState {
    pub fn as_str(self) -> &'static str {
        match self {
            MappingState::Linked => "Linked",
            MappingState::Orphaned => "Orphaned",
            MappingState::Conflict => "Conflict",
            MappingState::InstanceNotFound => "InstanceNotFound",
            MappingState::Pending => "Pending",
        }
    }
}

/// Both CRDs as a multi-document YAML stream: the output of `argomap crds`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "---\n{}---\n{}",
        serde_yaml::to_string(&ArgoCdInstance::crd())?,
        serde_yaml::to_string(&ClusterMapping::crd())?
    ))
}

/// One CRD per file, as kept in `crds/`.
pub fn crd_files() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![
        ("argocdinstances.yaml", serde_yaml::to_string(&ArgoCdInstance::crd())?),
        ("clustermappings.yaml", serde_yaml::to_string(&ClusterMapping::crd())?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_keys_default_to_token() {
        let spec = CredentialsSpec::default();
        assert_eq!(spec.keys(), CredentialKeys::Token("token"));
        let spec = CredentialsSpec { token_key: Some("apiToken".into()), ..Default::default() };
        assert_eq!(spec.keys(), CredentialKeys::Token("apiToken"));
        let spec = CredentialsSpec {
            username_key: Some("u".into()),
            password_key: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(spec.keys(), CredentialKeys::Login { username: "u", password: "p" });
    }

    #[test]
    fn reason_serializes_as_design_names() {
        for r in [Reason::TlsError, Reason::Connected, Reason::CredentialsNotFound] {
            let v = serde_json::to_value(r).expect("serialize");
            assert_eq!(v, serde_json::Value::String(r.as_str().into()));
        }
    }

    #[test]
    fn crd_schema_carries_validation() {
        let crd = serde_json::to_string(&ArgoCdInstance::crd()).expect("crd json");
        for needle in [
            "x-kubernetes-validations",
            "duration('10s')",
            "tokenKey cannot be combined",
            UUID_PATTERN,
            r#""shortNames":["aci"]"#,
            r#""priority":1"#,
        ] {
            assert!(crd.contains(&needle.replace('\\', "\\\\")) || crd.contains(needle), "missing {needle}");
        }
    }
}
