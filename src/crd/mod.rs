//! The two custom resources, `ArgoCdInstance` and `ClusterMapping` (group `argomap.io`,
//! version `v1alpha1`). Their schema, validation and printer columns are generated from these
//! types; `crds/*.yaml` is the output of `argomap crds` and a test keeps the two equal.

//!
//! Layout: `instance` and `cluster_mapping` hold one kind each, `state` the fixed words of
//! their statuses; the types both kinds share are here.

mod cluster_mapping;
mod instance;
mod state;

use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod cluster_profile;

pub use cluster_mapping::{
    ClusterMapping, ClusterMappingSpec, ClusterMappingStatus, ClusterProfileStatus, ProfileRef,
};
pub use instance::{
    AgentStatus, ApplicationsMode, ApplicationsSpec, ArgoCdInstance, ArgoCdInstanceSpec,
    ArgoCdInstanceStatus, AutoLinkSpec, AutomaticLink, ConnectionStatus, CredentialKeys, CredentialsSpec,
    DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DanglingDestination, DestinationDetails, DestinationKind,
    HealthCounts, IdentityLabel, LinkedCluster, SecretKeyRef, StatusCounts, SuggestedMapping, Summary,
    SyncCounts, TlsSpec, UnlinkedCluster,
};
pub use state::{ConnectionState, MappingState, Reason};

/// API group of both kinds.
pub const GROUP: &str = "argomap.io";
/// Field manager of every write and reporter of every Event.
pub const MANAGER: &str = "argomap";
/// Any new value of this annotation triggers an immediate check; it is echoed in
/// `status.lastHandledRefreshAt`.
pub const REFRESH_ANNOTATION: &str = "argomap.io/refresh-requested-at";
/// Only Secrets with this label set to `"true"` are ever read or watched by argomap: naming a
/// Secret in an ArgoCdInstance is not enough to make argomap send its value anywhere.
pub const CREDENTIALS_LABEL: &str = "argomap.io/credentials";
/// The Secret annotation that binds its credentials to Argo CD base URLs (comma or space
/// separated): when present, argomap sends them to no other `spec.url`.
pub const ALLOWED_URLS_ANNOTATION: &str = "argomap.io/allowed-urls";
/// [`CREDENTIALS_LABEL`] as a label selector.
pub const CREDENTIALS_SELECTOR: &str = "argomap.io/credentials=true";
/// The address Argo CD uses for the cluster it runs in.
pub const IN_CLUSTER_URL: &str = "https://kubernetes.default.svc";

const UUID_PATTERN: &str = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
// http or https, a host, an optional path; no user info (credentials belong in the Secret).
const URL_RULE: &str = r"self.matches('^https?://[^/@?#\\s]+([/?][^#\\s]*)?$')";
// An Argo CD server's base URL: the same, without a query or fragment (argomap appends Argo CD's
// paths to it, and a `?` would let the URL's writer choose the path really asked for).
const INSTANCE_URL_RULE: &str = r"self.matches('^https?://[^/@?#\\s]+(/[^?#\\s]*)?$')";

/// A reference to an object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
pub struct LocalRef {
    /// The object's name.
    // A DNS-1123 subdomain like every object name, so a `<...>` placeholder is refused.
    #[schemars(length(min = 1, max = 253), regex(pattern = NAME_PATTERN))]
    pub name: String,
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

/// Parses a spec duration such as `60s` or `1m30s` (the schema admits only these forms).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
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
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_spec_constructor_has_the_schemas_defaults() {
        let agent = KnownCluster {
            id: "0b9f6a1e-0000-4000-8000-000000000001".into(),
            name: "Agent".into(),
            cloud_provider: CloudProvider::Aws,
            kind: KubernetesType::Managed,
        };
        let written: ArgoCdInstanceSpec = serde_json::from_value(serde_json::json!({
            "url": "https://argocd.example.com",
            "credentials": {"secretRef": {"name": "creds"}},
            "agentCluster": {"id": agent.id, "name": "Agent", "cloudProvider": "AWS"},
        }))
        .expect("a spec with only the required fields");
        let built = ArgoCdInstanceSpec::new("https://argocd.example.com", "creds", agent);
        assert_eq!(built, written);
        assert_eq!((built.interval.as_str(), built.timeout.as_str()), ("60s", "10s"));
        assert_eq!(
            (built.interval_duration(), built.timeout_duration()),
            (DEFAULT_INTERVAL, DEFAULT_TIMEOUT)
        );
        let schema = serde_json::to_value(ArgoCdInstance::crd()).expect("crd json");
        let props =
            &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        assert_eq!(
            (&props["interval"]["default"], &props["timeout"]["default"]),
            (&json_str("60s"), &json_str("10s"))
        );
    }

    fn json_str(s: &str) -> serde_json::Value {
        serde_json::Value::String(s.into())
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
