//! SIG-Multicluster's `ClusterProfile` (Cluster Inventory API, `multicluster.x-k8s.io/v1alpha1`),
//! as argomap reads it: never written, and only the fields below are decoded. Open Cluster
//! Management, GKE Fleet and KubeFleet produce them; argomap works unchanged without the CRD.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "multicluster.x-k8s.io";
pub const VERSION: &str = "v1alpha1";
pub const PLURAL: &str = "clusterprofiles";

/// The label of a profile (copied onto Argo CD's cluster by the integration) naming the
/// inventory member.
pub const MEMBER_ID_LABEL: &str = "multicluster.x-k8s.io/inventory-member-id";
/// The label naming the cluster manager that wrote the profile.
pub const MANAGER_LABEL: &str = "x-k8s.io/cluster-manager";
/// The profile condition argomap reports as its health.
pub const CONTROL_PLANE_HEALTHY: &str = "ControlPlaneHealthy";

/// The fields of a ClusterProfile's spec argomap reads. The derive gives the kind its type
/// information only: the CRD is SIG-Multicluster's (`sigs.k8s.io/cluster-inventory-api`), so no
/// schema is generated from this.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "multicluster.x-k8s.io",
    version = "v1alpha1",
    kind = "ClusterProfile",
    plural = "clusterprofiles",
    namespaced,
    status = "ProfileStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ProfileSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_manager: Option<Named>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Named {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProfileVersion>,
    /// How to reach the cluster (v0.1.2); `credentialProviders` is the older name of the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_providers: Vec<AccessProvider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_providers: Vec<AccessProvider>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProfileVersion {
    #[serde(default)]
    pub kubernetes: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct AccessProvider {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub cluster: Option<ProviderCluster>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ProviderCluster {
    #[serde(default)]
    pub server: Option<String>,
}
