//! Profiles: what is read of one, and which one an identity names.

use super::*;
use crate::crd::cluster_profile::{AccessProvider, ProfileSpec, ProfileStatus, ProviderCluster};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

const ID: &str = "0b9f6a1e-0000-4000-8000-0000000000aa";

fn object(ns: &str, name: &str, created: &str) -> ClusterProfile {
    let mut p = ClusterProfile::new(name, ProfileSpec::default());
    p.metadata.namespace = Some(ns.into());
    p.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
    p
}

fn condition(type_: &str, status: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: "R".into(),
        message: String::new(),
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
        observed_generation: None,
    }
}

#[test]
fn a_profile_in_the_shape_ocm_writes() {
    let mut o = object("open-cluster-management", "spoke-1", "2026-01-01T00:00:00Z");
    o.spec.display_name = Some("Spoke 1".into());
    o.metadata.labels = Some([(MEMBER_ID_LABEL.to_string(), "m-1".to_string())].into());
    o.metadata.annotations = Some(
        [
            (CLUSTER_ID_ANNOTATION.to_string(), ID.to_string()),
            (CLOUD_PROVIDER_ANNOTATION.to_string(), "GCP".to_string()),
        ]
        .into(),
    );
    o.status = Some(ProfileStatus {
        conditions: vec![condition("Joined", "True"), condition(CONTROL_PLANE_HEALTHY, "False")],
        version: Some(crate::crd::cluster_profile::ProfileVersion { kubernetes: Some("v1.33.1".into()) }),
        access_providers: vec![AccessProvider {
            name: Some("open-cluster-management".into()),
            cluster: Some(ProviderCluster { server: Some("https://Spoke-1.example.com:443/".into()) }),
        }],
        credential_providers: Vec::new(),
    });
    let p = Profile::from_object(&o);
    assert_eq!(p.key(), "open-cluster-management/spoke-1");
    assert_eq!(p.healthy, Some(false));
    assert_eq!(p.kubernetes_version.as_deref(), Some("v1.33.1"));
    assert_eq!(p.servers, vec!["https://spoke-1.example.com".to_string()]);
    assert_eq!(
        p.cluster,
        Some(KnownCluster {
            id: ID.into(),
            name: "Spoke 1".into(),
            cloud_provider: CloudProvider::Gcp,
            kind: KubernetesType::Managed
        }),
        "the name falls back to displayName, the type to MANAGED"
    );
}

#[test]
fn the_platform_cluster_needs_a_valid_id_and_cloud_provider() {
    let with = |pairs: &[(&str, &str)]| {
        let mut o = object("fleet", "c", "2026-01-01T00:00:00Z");
        o.metadata.annotations = Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        Profile::from_object(&o).cluster
    };
    assert_eq!(with(&[(CLUSTER_ID_ANNOTATION, ID)]), None, "no cloud provider");
    assert_eq!(with(&[(CLUSTER_ID_ANNOTATION, "not-a-uuid"), (CLOUD_PROVIDER_ANNOTATION, "AWS")]), None);
    assert_eq!(
        with(&[(CLUSTER_ID_ANNOTATION, ID), (CLOUD_PROVIDER_ANNOTATION, "aws")]),
        None,
        "the CRD's spelling"
    );
    assert_eq!(
        with(&[
            (CLUSTER_ID_ANNOTATION, ID),
            (CLOUD_PROVIDER_ANNOTATION, "AWS"),
            (CLUSTER_TYPE_ANNOTATION, "BOGUS")
        ]),
        None
    );
    let c = with(&[
        (CLUSTER_ID_ANNOTATION, ID),
        (CLOUD_PROVIDER_ANNOTATION, "AWS"),
        (CLUSTER_TYPE_ANNOTATION, "SELF_MANAGED"),
        (CLUSTER_NAME_ANNOTATION, "Prod"),
    ])
    .expect("a cluster");
    assert_eq!((c.name.as_str(), c.kind), ("Prod", KubernetesType::SelfManaged));
    let unnamed =
        with(&[(CLUSTER_ID_ANNOTATION, ID), (CLOUD_PROVIDER_ANNOTATION, "AWS")]).expect("a cluster");
    assert_eq!(unnamed.name, "c", "the profile's own name last");
}

#[test]
fn identities_name_profiles_as_their_registrars_write_them() {
    let mut o = object("fleet", "prod-eu", "2026-01-01T00:00:00Z");
    o.metadata.labels = Some([(MEMBER_ID_LABEL.to_string(), "m-7".to_string())].into());
    let profiles = Profiles::new([Profile::from_object(&o)]);
    let one = |k: &str, v: &str| matches!(profiles.named_by(k, v), Named::One { .. });
    assert!(one("argocd.argoproj.io/cluster-profile-origin", "fleet-prod-eu"));
    assert!(one("clusterprofile.x-k8s.io/origin", "fleet/prod-eu"));
    assert!(one(MEMBER_ID_LABEL, "m-7"));
    assert!(one("apps.open-cluster-management.io/cluster-name", "prod-eu"));
    assert!(one(AGENT_NAME, "prod-eu"));
    assert!(!one("clusterprofile.x-k8s.io/origin", "fleet-prod-eu"));
    assert!(!one("argocd.argoproj.io/cluster-profile-origin", "fleet/prod-eu"));
    assert!(!one("capi-to-argocd/cluster-namespace", "fleet"));
    assert!(!one(MEMBER_ID_LABEL, "m-8"));
}

#[test]
fn duplicates_follow_the_sigs_rule() {
    let labelled = |ns: &str, name: &str, created: &str| {
        let mut o = object(ns, name, created);
        o.metadata.labels = Some([(MEMBER_ID_LABEL.to_string(), "m".to_string())].into());
        Profile::from_object(&o)
    };
    let older = labelled("a", "x", "2026-01-01T00:00:00Z");
    let newer = labelled("b", "x", "2026-02-01T00:00:00Z");
    let profiles = Profiles::new([newer.clone(), older.clone()]);
    assert_eq!(
        profiles.named_by(MEMBER_ID_LABEL, "m"),
        Named::One { profile: &older, duplicates: vec![&newer] }
    );
    let twin = labelled("c", "x", "2026-01-01T00:00:00Z");
    let tied = Profiles::new([older.clone(), newer.clone(), twin.clone()]);
    assert_eq!(tied.named_by(MEMBER_ID_LABEL, "m"), Named::Tie(vec![&older, &twin, &newer]));
    assert_eq!(Profiles::default().named_by(MEMBER_ID_LABEL, "m"), Named::None);
}
