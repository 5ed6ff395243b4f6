//! The `ClusterMapping` kind: one Argo CD destination URL mapped to a cluster the platform knows.

#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{KnownCluster, LocalRef, MappingState, URL_RULE};

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
    printcolumn(
        name = "Profile",
        type_ = "string",
        json_path = ".spec.clusterProfileRef.name",
        priority = 1
    ),
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster.name"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Apps", type_ = "integer", json_path = ".status.applicationsCount"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.argocdClusterUrl) || has(self.clusterProfileRef)").message("argocdClusterUrl may be left out only with clusterProfileRef (the URL then comes from the profile)"))]
#[x_kube(validation = Rule::new("has(self.cluster) || has(self.clusterProfileRef)").message("cluster may be left out only with clusterProfileRef (it then comes from the profile's argomap.io/* annotations)"))]
pub struct ClusterMappingSpec {
    /// ArgoCdInstance in the same namespace.
    pub instance_ref: LocalRef,
    /// The destination URL as Argo CD knows it (compared after normalisation). With
    /// `clusterProfileRef` it may be left out: it is then the profile's access provider server
    /// that is one of the instance's destinations, or else the Argo CD cluster whose identity
    /// names the profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048))]
    #[x_kube(validation = Rule::new(URL_RULE).message("argocdClusterUrl must be an http:// or https:// URL without user info"))]
    pub argocd_cluster_url: Option<String>,
    /// A ClusterProfile (Cluster Inventory API) this destination is: its health, Kubernetes
    /// version and display name show in status, and it can supply the URL and the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_profile_ref: Option<ProfileRef>,
    /// The cluster the platform knows; with `clusterProfileRef` it may be left out and is then
    /// read from the profile's `argomap.io/cluster-id`, `argomap.io/cloud-provider`,
    /// `argomap.io/cluster-type` and `argomap.io/cluster-name` annotations. `<...>` placeholders
    /// (from `argomap check -o mappings`) are refused until filled in.
    // The rule, the id pattern and the enums keep a scaffold from being applied half-done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!self.name.startsWith('<')").message("cluster.name is still a placeholder: fill in the platform's name of the cluster"))]
    pub cluster: Option<KnownCluster>,
}

/// A ClusterProfile, by namespace and name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ProfileRef {
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
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
    /// The destination URL in use, when it came from the ClusterProfile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_cluster_url: Option<String>,
    /// The referenced ClusterProfile as argomap last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_profile: Option<ClusterProfileStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// What a mapping shows of its ClusterProfile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterProfileStatus {
    pub namespace: String,
    pub name: String,
    /// Whether argomap sees the profile (the CRD installed, `--cluster-profiles` on, the
    /// profile there).
    pub found: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// The profile's `ControlPlaneHealthy` condition: `True`, `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_healthy: Option<String>,
}
