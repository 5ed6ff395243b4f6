//! The caches the watches fill, which the reconciles and the HTTP server read, and what of each
//! object is kept in them. ArgoCdInstances and ClusterMappings are watched once each, into
//! shared stores whose subscribers are the controllers; Secrets and Namespaces are kept as
//! metadata, only those selected by label, and stripped of what argomap never reads.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store, store::Writer};

use crate::crd::cluster_profile::ClusterProfile;
use crate::crd::{ArgoCdInstance, ClusterMapping};

/// What a reconcile and the HTTP server read.
#[derive(Clone)]
pub struct Stores {
    pub instances: Store<ArgoCdInstance>,
    pub mappings: Store<ClusterMapping>,
    /// Metadata of the opted-in Secrets (labelled `argomap.io/credentials: "true"`).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Metadata of the namespaces bound to an organization (labelled
    /// `argomap.io/organization-id`).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// ClusterProfiles, of all namespaces (empty without `--cluster-profiles`).
    pub profiles: Store<ClusterProfile>,
}

/// Where the watches write; the instance and mapping writers are shared (subscribed to).
pub struct Writers {
    pub instances: Writer<ArgoCdInstance>,
    pub mappings: Writer<ClusterMapping>,
    pub secrets: Writer<PartialObjectMeta<Secret>>,
    pub namespaces: Writer<PartialObjectMeta<Namespace>>,
    pub profiles: Writer<ClusterProfile>,
}

/// How many object references a shared store holds for a subscriber that has not read them
/// yet; past it the watch waits (a relist sends every object once).
const SUBSCRIBER_BUFFER: usize = 1024;

/// Empty stores and their writers.
pub fn stores() -> (Stores, Writers) {
    let (instances, instance_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let (mappings, mapping_writer) = reflector::store_shared(SUBSCRIBER_BUFFER);
    let (secrets, secret_writer) = reflector::store();
    let (namespaces, namespace_writer) = reflector::store();
    let (profiles, profile_writer) = reflector::store();
    (
        Stores { instances, mappings, secrets, namespaces, profiles },
        Writers {
            instances: instance_writer,
            mappings: mapping_writer,
            secrets: secret_writer,
            namespaces: namespace_writer,
            profiles: profile_writer,
        },
    )
}

/// Drops what argomap never needs of a Secret before it is stored: annotations (`kubectl apply`
/// keeps the whole Secret, data included, in `last-applied-configuration`) and managedFields.
/// What stays is name, namespace, UID, labels and versions.
pub fn strip_secret_metadata(secret: &mut PartialObjectMeta<Secret>) {
    secret.metadata.annotations = None;
    secret.metadata.managed_fields = None;
}

/// Drops what argomap never reads of a ClusterProfile's metadata.
pub fn strip_profile_metadata(p: &mut ClusterProfile) {
    p.metadata.managed_fields = None;
    if let Some(a) = p.metadata.annotations.as_mut() {
        a.retain(|k, _| k.starts_with("argomap.io/"));
    }
}

/// Keeps of a Namespace only what the binding needs: name and labels.
pub fn strip_namespace_metadata(ns: &mut PartialObjectMeta<Namespace>) {
    ns.metadata.annotations = None;
    ns.metadata.managed_fields = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_secret_metadata_keeps_no_annotation_or_managed_field() {
        let mut s: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "argocd-readonly", "namespace": "platform", "uid": "u-1",
                "labels": {"argomap.io/credentials": "true"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"token\":\"ZXlK\"}}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]
            }
        }))
        .expect("secret metadata");
        strip_secret_metadata(&mut s);
        let kept = serde_json::to_string(&s).expect("json");
        assert!(
            !kept.contains("ZXlK") && !kept.contains("managedFields") && !kept.contains("annotations"),
            "{kept}"
        );
        assert_eq!(s.metadata.uid.as_deref(), Some("u-1"));
        assert!(super::super::credentials::is_opted_in(&s.metadata));
    }
}
