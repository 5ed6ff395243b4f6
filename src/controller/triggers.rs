//! What makes the instance controller look at an instance again, apart from a due check: its
//! spec or refresh annotation (never its status), a Secret it reads, or its namespace's
//! organization label. Pure lookups over the stores.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::crd::cluster_profile::ClusterProfile;
use crate::crd::{ArgoCdInstance, ClusterMapping, REFRESH_ANNOTATION};

/// What a change of the instance must change to be reconciled: its generation (the spec) and
/// the refresh annotation, never its status; and its UID (deleted and created again while the
/// watch was away).
pub fn trigger_key(i: &ArgoCdInstance) -> u64 {
    let mut h = DefaultHasher::new();
    i.metadata.uid.hash(&mut h);
    i.metadata.generation.hash(&mut h);
    i.annotations().get(REFRESH_ANNOTATION).hash(&mut h);
    h.finish()
}

/// The instances that read Secret `s` (credentials or CA).
pub fn readers_of(
    instances: &Store<ArgoCdInstance>,
    s: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<ArgoCdInstance>> {
    let (ns, name) = (s.namespace(), s.name_any());
    instances
        .state()
        .into_iter()
        .filter(|i| i.namespace() == ns && references_secret(i, &name))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// The instances with an organization in namespace `n`: bound, unbound or moved to another
/// organization, their `OrganizationBound` condition changes.
pub fn bound_in(
    instances: &Store<ArgoCdInstance>,
    n: &PartialObjectMeta<Namespace>,
) -> Vec<ObjectRef<ArgoCdInstance>> {
    let ns = n.name_any();
    instances
        .state()
        .into_iter()
        .filter(|i| i.namespace().as_deref() == Some(ns.as_str()) && i.spec.organization_id.is_some())
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

/// The instances ClusterProfile `p` can change: those that link automatically (any profile may
/// be named by a destination's identity) and those with a ClusterMapping referencing it.
pub fn profile_readers(
    instances: &Store<ArgoCdInstance>,
    mappings: &Store<ClusterMapping>,
    p: &ClusterProfile,
) -> Vec<ObjectRef<ArgoCdInstance>> {
    let (ns, name) = (p.namespace().unwrap_or_default(), p.name_any());
    let referencing: HashSet<(Option<String>, String)> = mappings
        .state()
        .into_iter()
        .filter(|m| m.spec.cluster_profile_ref.as_ref().is_some_and(|r| r.namespace == ns && r.name == name))
        .map(|m| (m.namespace(), m.spec.instance_ref.name.clone()))
        .collect();
    instances
        .state()
        .into_iter()
        .filter(|i| i.spec.auto_link.is_some() || referencing.contains(&(i.namespace(), i.name_any())))
        .map(|i| ObjectRef::from_obj(i.as_ref()))
        .collect()
}

fn references_secret(i: &ArgoCdInstance, secret: &str) -> bool {
    i.spec.credentials.secret_ref.name == secret
        || i.spec.tls.as_ref().and_then(|t| t.ca_secret_ref.as_ref()).is_some_and(|r| r.name == secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_changes_do_not_change_the_trigger_key() {
        let mut i = crate::fixtures::instance("n", "a");
        let before = trigger_key(&i);
        i.status = Some(Default::default());
        i.metadata.resource_version = Some("99".into());
        assert_eq!(trigger_key(&i), before);
        i.metadata.annotations = Some([(REFRESH_ANNOTATION.to_string(), "now".to_string())].into());
        assert_ne!(trigger_key(&i), before);
        let refreshed = trigger_key(&i);
        i.metadata.generation = Some(2);
        assert_ne!(trigger_key(&i), refreshed);
    }

    #[test]
    fn a_secret_concerns_the_instances_that_read_it() {
        let (store, mut writer) = kube::runtime::reflector::store();
        let reads = crate::fixtures::instance("n", "a");
        let other = crate::fixtures::instance("n", "b");
        let elsewhere = crate::fixtures::instance("m", "a");
        for i in [&reads, &other, &elsewhere] {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(i.clone()));
        }
        let mut secret: PartialObjectMeta<Secret> = Default::default();
        secret.metadata.namespace = Some("n".into());
        secret.metadata.name = Some("a-creds".into());
        assert_eq!(readers_of(&store, &secret), vec![ObjectRef::from_obj(&reads)]);
    }
}
