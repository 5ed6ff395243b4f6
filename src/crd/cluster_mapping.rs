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
    /// The cluster the platform knows. `<...>` placeholders (from `argomap check -o mappings`)
    /// are refused until filled in.
    // The rule, the id pattern and the enums keep a scaffold from being applied half-done.
    #[x_kube(validation = Rule::new("!self.name.startsWith('<')").message("cluster.name is still a placeholder: fill in the platform's name of the cluster"))]
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
