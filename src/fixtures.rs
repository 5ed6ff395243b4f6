//! Builders of the objects tests start from: ArgoCdInstances, ClusterMappings, known clusters,
//! and Argo CD's wire types. One set for the unit, mock and cluster tests (the fake Argo CD's
//! sample fleet is `fake_argocd::sample_clusters`/`sample_apps`). The operator never uses them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::argocd::types::{AppMetadata, AppSpec, Application, Cluster, Destination};
use crate::crd::{
    ArgoCdInstance, ArgoCdInstanceSpec, CloudProvider, ClusterMapping, ClusterMappingSpec, KnownCluster,
    KubernetesType, LocalRef,
};

/// The id every fixture cluster carries unless a test sets another.
pub const CLUSTER_ID: &str = "0b9f6a1e-0000-4000-8000-000000000001";
/// The organization of [`instance`].
pub const ORG: &str = "5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b11";

/// A known AWS cluster, managed.
pub fn known(name: &str) -> KnownCluster {
    KnownCluster {
        id: CLUSTER_ID.into(),
        name: name.into(),
        cloud_provider: CloudProvider::Aws,
        kind: KubernetesType::Managed,
    }
}

/// ArgoCdInstance `namespace/name` at `https://<name>.example.com`, with token Secret
/// `<name>-creds`, agent cluster `Agent`, organization [`ORG`], generation 1 and the CRD's
/// default interval and timeout.
pub fn instance(namespace: &str, name: &str) -> ArgoCdInstance {
    let mut spec = ArgoCdInstanceSpec::new(
        format!("https://{name}.example.com"),
        format!("{name}-creds"),
        known("Agent"),
    );
    spec.organization_id = Some(ORG.into());
    let mut i = ArgoCdInstance::new(name, spec);
    i.metadata.namespace = Some(namespace.into());
    i.metadata.generation = Some(1);
    i
}

/// ClusterMapping `namespace/name` of `instance`, mapping `url` to known cluster `name`,
/// generation 1.
pub fn mapping(namespace: &str, name: &str, instance: &str, url: &str) -> ClusterMapping {
    let mut m = ClusterMapping::new(
        name,
        ClusterMappingSpec {
            instance_ref: LocalRef { name: instance.into() },
            argocd_cluster_url: url.into(),
            cluster: known(name),
        },
    );
    m.metadata.namespace = Some(namespace.into());
    m.metadata.generation = Some(1);
    m
}

/// `t` as a Kubernetes time; `t` must be RFC 3339 (a test's own constant).
pub fn time(t: &str) -> Time {
    Time(t.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// One entry of Argo CD's cluster list.
pub fn cluster(server: &str, name: &str) -> Cluster {
    Cluster { server: Some(server.into()), name: Some(name.into()), ..Default::default() }
}

/// One projected application, aimed at `server` or at the cluster named `dest_name`.
pub fn app(namespace: &str, name: &str, server: Option<&str>, dest_name: Option<&str>) -> Application {
    Application {
        metadata: Some(AppMetadata { name: Some(name.into()), namespace: Some(namespace.into()) }),
        spec: Some(AppSpec {
            destination: Some(Destination {
                server: server.map(String::from),
                name: dest_name.map(String::from),
            }),
        }),
    }
}
