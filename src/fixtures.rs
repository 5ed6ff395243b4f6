//! Builders of the objects tests start from: ArgoCdInstances, ClusterMappings, known clusters,
//! and Argo CD's wire types; the manifests `argomap check -f` reads; the Qovery contract as a
//! validator. One set for the unit tests (`crate::fixtures`) and, through the
//! `argomap-test-support` crate (`tests/support`), for the integration suites. Compiled only
//! for tests and with the `test-support` feature: the operator never has them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::argocd::types::{AppMetadata, AppSpec, AppStatus, Application, Cluster, Destination, StatusField};
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
            argocd_cluster_url: Some(url.into()),
            cluster_profile_ref: None,
            cluster: Some(known(name)),
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

/// A destination `url` linked by its ClusterMapping `m` to [`known`] cluster `Linked`, 1 application.
pub fn linked(url: &str) -> crate::crd::LinkedCluster {
    crate::crd::LinkedCluster {
        argocd_cluster_url: url.into(),
        argocd_cluster_name: None,
        mapping: Some("m".into()),
        cluster: known("Linked"),
        applications_count: 1,
        argocd_connection_state: None,
        also_deployed_by: Vec::new(),
        also_deployed_by_count: 0,
        details: Default::default(),
    }
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
        status: None,
    }
}

/// [`app`] with Argo CD's health and sync status.
pub fn app_with_status(
    namespace: &str,
    name: &str,
    server: Option<&str>,
    dest_name: Option<&str>,
    health: &str,
    sync: &str,
) -> Application {
    let field = |s: &str| Some(StatusField { status: Some(s.into()) });
    Application {
        status: Some(AppStatus { health: field(health), sync: field(sync) }),
        ..app(namespace, name, server, dest_name)
    }
}

/// [`cluster`] registered with `labels` and `annotations` (argocd-agent's, a cluster manager's).
pub fn labelled_cluster(
    server: &str,
    name: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
) -> Cluster {
    Cluster {
        labels: labels.iter().copied().collect(),
        annotations: annotations.iter().copied().collect(),
        ..cluster(server, name)
    }
}

/// What `argomap check -f` reads: ArgoCdInstance `platform/prod-argocd` (token Secret
/// `argocd-readonly`, agent cluster `Production EU`, the CRD's defaults; its URL a placeholder
/// for `argomap check --url`), its ClusterMappings `prod-eks` (`https://10.0.0.1:6443`) and `legacy-gke`
/// (`https://gke.example.com`), and a Secret, a kind `check` ignores.
pub const MANIFESTS: &str = r#"
apiVersion: argomap.io/v1alpha1
kind: ArgoCdInstance
metadata: {name: prod-argocd, namespace: platform}
spec:
  url: http://will-be-replaced
  credentials: {secretRef: {name: argocd-readonly}}
  agentCluster: {id: 0b9f6a1e-0000-4000-8000-000000000001, name: Production EU, cloudProvider: AWS}
---
apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {name: prod-eks, namespace: platform}
spec:
  instanceRef: {name: prod-argocd}
  argocdClusterUrl: https://10.0.0.1:6443
  cluster: {id: 0b9f6a1e-0000-4000-8000-000000000002, name: Prod EKS, cloudProvider: AWS}
---
apiVersion: argomap.io/v1alpha1
kind: ClusterMapping
metadata: {name: legacy-gke, namespace: platform}
spec:
  instanceRef: {name: prod-argocd}
  argocdClusterUrl: https://gke.example.com
  cluster: {id: 0b9f6a1e-0000-4000-8000-000000000003, name: Legacy GKE, cloudProvider: GCP}
---
apiVersion: v1
kind: Secret
metadata: {name: ignored}
"#;

/// The Qovery read API's contract (`tests/fixtures/qovery-argocd-mapping-openapi.yaml`) and a
/// validator of its `ArgoCdInstanceMappingResponseList`.
pub mod contract {
    use serde_json::Value;

    /// The contract as written.
    pub const CONTRACT: &str = include_str!("../tests/fixtures/qovery-argocd-mapping-openapi.yaml");

    /// The contract's document, made strict: every object schema also forbids members it does
    /// not name, so a misspelt or extra field fails instead of passing unnoticed.
    pub fn strict_document() -> Value {
        let mut doc: Value = serde_yaml::from_str(CONTRACT).expect("contract parses");
        let schemas = doc["components"]["schemas"].as_object_mut().expect("the contract has schemas");
        for schema in schemas.values_mut() {
            if schema["type"] == "object" {
                schema["additionalProperties"] = Value::Bool(false);
            }
        }
        doc
    }

    /// Validator of `ArgoCdInstanceMappingResponseList`, strict. Draft 2020-12 because OpenAPI
    /// 3.0's `format: uuid` is only a known format from draft 2019-09 on; formats are asserted,
    /// and an unknown format is an error rather than silently accepted.
    pub fn validator() -> jsonschema::Validator {
        let schema = serde_json::json!({
            "$ref": "#/components/schemas/ArgoCdInstanceMappingResponseList",
            "components": strict_document()["components"].clone(),
        });
        jsonschema::draft202012::options()
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .build(&schema)
            .expect("contract schema compiles")
    }

    /// Every way `body` breaks the contract, with where.
    pub fn violations(body: &Value) -> Vec<String> {
        thread_local! {
            static V: jsonschema::Validator = validator();
        }
        V.with(|v| v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect())
    }

    #[track_caller]
    pub fn assert_valid(body: &Value) {
        let errors = violations(body);
        assert!(errors.is_empty(), "body breaks the contract:\n  {}\nbody: {body:#}", errors.join("\n  "));
    }
}
