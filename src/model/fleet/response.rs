//! The body of `GET /organization/{organizationId}/argoCdClusterDeployments`: per platform
//! cluster, the ArgoCdInstances deploying to it ([`super::clusters`]), in the snake_case of
//! Qovery's response beside it. Pure.
//!
//! Each instance carries its connection as Qovery's view reports it: `connected` only while its
//! status says so and is not stale, `error` otherwise (and before its first check). Where it
//! deploys is what its status last said either way.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::{Deserialize, Serialize};

use super::clusters;
use crate::crd::{ArgoCdInstance, CloudProvider, ConnectionState, KubernetesType};
use crate::model::qovery::TooLarge;

/// The answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ClusterDeploymentsList {
    pub results: Vec<ClusterDeploymentsResponse>,
}

/// One platform cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ClusterDeploymentsResponse {
    pub cluster_id: String,
    pub cluster_name: String,
    pub cloud_provider: CloudProvider,
    #[serde(rename = "type")]
    pub kind: KubernetesType,
    pub argocd_instances: Vec<InstanceDeploymentResponse>,
}

/// One ArgoCdInstance deploying to it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InstanceDeploymentResponse {
    pub namespace: String,
    pub name: String,
    pub argocd_url: String,
    pub status: ConnectionState,
    /// Its applications aimed at this cluster, over all its destinations to it.
    pub applications_count: u64,
    /// Its destinations (Argo CD cluster URLs) that are this cluster, sorted.
    pub argocd_cluster_urls: Vec<String>,
}

/// The answer for instances the caller has already filtered (organization, access); those
/// `stale` says yes to are reported as `error`.
pub fn build<'a>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    stale: &dyn Fn(&ArgoCdInstance) -> bool,
) -> ClusterDeploymentsList {
    let instances: Vec<&ArgoCdInstance> = instances.into_iter().collect();
    let status: BTreeMap<(String, String), ConnectionState> = instances
        .iter()
        .map(|i| {
            let said = i.status.as_ref().and_then(|s| s.connection.as_ref()).map(|c| c.status);
            let state = match said {
                Some(ConnectionState::Connected) if !stale(i) => ConnectionState::Connected,
                _ => ConnectionState::Error,
            };
            ((i.namespace().unwrap_or_default(), i.name_any()), state)
        })
        .collect();
    let results = clusters(instances.iter().copied())
        .into_iter()
        .map(|c| ClusterDeploymentsResponse {
            cluster_id: c.cluster.id,
            cluster_name: c.cluster.name,
            cloud_provider: c.cluster.cloud_provider,
            kind: c.cluster.kind,
            argocd_instances: c
                .instances
                .into_iter()
                .map(|d| InstanceDeploymentResponse {
                    status: status
                        .get(&(d.namespace.clone(), d.name.clone()))
                        .copied()
                        .unwrap_or(ConnectionState::Error),
                    argocd_cluster_urls: d.destinations.into_iter().map(|x| x.argocd_cluster_url).collect(),
                    applications_count: d.applications_count,
                    namespace: d.namespace,
                    name: d.name,
                    argocd_url: d.argocd_url,
                })
                .collect(),
        })
        .collect();
    ClusterDeploymentsList { results }
}

/// The JSON of [`build`]'s answer, abandoned as soon as it passes `limit` bytes. The view is
/// built whole first (the statuses bound it); only its encoding is cut short.
pub fn write_capped<'a>(
    instances: impl IntoIterator<Item = &'a ArgoCdInstance>,
    stale: &dyn Fn(&ArgoCdInstance) -> bool,
    limit: usize,
) -> Result<Vec<u8>, TooLarge> {
    let list = build(instances, stale);
    let mut out = b"{\"results\":[".to_vec();
    for (n, entry) in list.results.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        // Writing into a Vec fails only on a serializer error, which these plain types cannot have.
        serde_json::to_writer(&mut out, entry).map_err(|_| TooLarge { limit })?;
        if out.len() > limit {
            return Err(TooLarge { limit });
        }
    }
    out.extend_from_slice(b"]}");
    if out.len() > limit {
        return Err(TooLarge { limit });
    }
    Ok(out)
}
