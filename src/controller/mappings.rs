//! What argomap keeps in memory per ClusterMapping: the instance it named when last seen (so
//! that a changed or deleted mapping re-evaluates every instance it concerns) and its
//! reconcile's failures in a row. As for instances, only the mapping watch forgets
//! ([`Mappings::deleted`], [`Mappings::relisted`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::backoff;
use crate::crd::{ArgoCdInstance, ClusterMapping};

#[derive(Default)]
pub struct Mappings(Mutex<HashMap<ObjectRef<ClusterMapping>, Entry>>);

#[derive(Default)]
struct Entry {
    /// The instance it named when last seen.
    instance: Option<ObjectRef<ArgoCdInstance>>,
    retries: u32,
}

/// The instance a ClusterMapping names.
pub fn instance_of(m: &ClusterMapping) -> ObjectRef<ArgoCdInstance> {
    ObjectRef::new(&m.spec.instance_ref.name).within(&m.namespace().unwrap_or_default())
}

impl Mappings {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectRef<ClusterMapping>, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instances a change of `m` concerns: the one it names, and the one it named before
    /// when its `instanceRef` changed (which must drop it).
    pub fn applied(&self, m: &ClusterMapping) -> Vec<ObjectRef<ArgoCdInstance>> {
        let now = instance_of(m);
        let before = self.lock().entry(ObjectRef::from_obj(m)).or_default().instance.replace(now.clone());
        match before {
            Some(before) if before != now => vec![now, before],
            _ => vec![now],
        }
    }

    /// `m` was deleted: it is forgotten; returns the instances that must drop it.
    pub fn deleted(&self, m: &ClusterMapping) -> Vec<ObjectRef<ArgoCdInstance>> {
        let now = instance_of(m);
        match self.lock().remove(&ObjectRef::from_obj(m)).and_then(|e| e.instance) {
            Some(before) if before != now => vec![now, before],
            _ => vec![now],
        }
    }

    /// A (re)list is complete: mappings deleted while the watch was away are forgotten.
    pub fn relisted(&self, exists: &HashSet<ObjectRef<ClusterMapping>>) {
        self.lock().retain(|k, _| exists.contains(k));
    }

    /// One more failed reconcile of `key`: the wait before the next (5 s doubling, at most
    /// `cap`).
    pub fn failed(&self, key: &ObjectRef<ClusterMapping>, cap: Duration) -> Duration {
        let mut entries = self.lock();
        let entry = entries.entry(key.clone()).or_default();
        entry.retries = entry.retries.saturating_add(1);
        backoff::reconcile_retry(entry.retries, cap)
    }

    pub fn succeeded(&self, key: &ObjectRef<ClusterMapping>) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.retries = 0;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_instance_ref_concerns_the_old_instance_too() {
        let mappings = Mappings::default();
        let mut m = crate::fixtures::mapping("n", "m", "a", "https://x");
        let a = ObjectRef::new("a").within("n");
        let b = ObjectRef::new("b").within("n");
        assert_eq!(mappings.applied(&m), vec![a.clone()]);
        assert_eq!(mappings.applied(&m), vec![a.clone()], "an unchanged ref concerns its instance only");
        m.spec.instance_ref.name = "b".into();
        assert_eq!(mappings.applied(&m), vec![b.clone(), a.clone()]);
        assert_eq!(mappings.applied(&m), vec![b.clone()]);
        m.spec.instance_ref.name = "a".into();
        assert_eq!(mappings.deleted(&m), vec![a, b], "deleted right after a change of its ref");
        assert_eq!(mappings.len(), 0, "a deleted mapping is forgotten");
    }

    #[test]
    fn retries_back_off_per_mapping_and_a_relist_forgets_the_deleted() {
        let mappings = Mappings::default();
        let (kept, gone) = (ObjectRef::new("m").within("n"), ObjectRef::new("gone").within("n"));
        let cap = Duration::from_secs(60);
        let waits: Vec<u64> = (0..5).map(|_| mappings.failed(&kept, cap).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 60]);
        mappings.failed(&gone, cap);
        mappings.succeeded(&kept);
        assert_eq!(mappings.failed(&kept, cap).as_secs(), 5);
        mappings.relisted(&HashSet::from([kept]));
        assert_eq!(mappings.len(), 1);
    }
}
