//! The registry of instances: everything argomap keeps in memory per ArgoCdInstance, in one map
//! keyed by its `ObjectRef`: what a reconcile remembers for the next ([`InstanceState`]), the
//! check in flight (cancelled when the instance changes or goes) and the reconcile's failures
//! in a row. The instance watch alone forgets, through [`Instances::applied`],
//! [`Instances::deleted`] and [`Instances::relisted`], and the instance's metric series go with
//! it; a reconcile only reads and stores.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::state::InstanceState;
use super::triggers::trigger_key;
use crate::crd::ArgoCdInstance;
use crate::metrics::Metrics;

pub struct Instances {
    entries: Mutex<HashMap<ObjectRef<ArgoCdInstance>, Entry>>,
    metrics: Arc<Metrics>,
    next_check: AtomicU64,
}

#[derive(Default)]
struct Entry {
    /// `None` until the first reconcile stores one, and while suspended.
    state: Option<InstanceState>,
    check: Option<InFlight>,
    /// Failed reconciles in a row (not failed checks: those are in the state).
    retries: u32,
    /// The [`trigger_key`] of the instance last let through to the controller.
    trigger: Option<u64>,
}

/// The check in flight, valid while the instance keeps this UID and generation.
struct InFlight {
    version: Version,
    id: u64,
    cancel: CancellationToken,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    uid: Option<String>,
    generation: Option<i64>,
}

impl Version {
    fn of(instance: &ArgoCdInstance) -> Self {
        Version { uid: instance.metadata.uid.clone(), generation: instance.metadata.generation }
    }
}

/// A check in flight: `cancel` fires when its instance changes or is deleted, or at shutdown.
/// Ended with [`Instances::end_check`].
pub struct Check {
    id: u64,
    pub cancel: CancellationToken,
}

impl Instances {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Instances { entries: Mutex::new(HashMap::new()), metrics, next_check: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectRef<ArgoCdInstance>, Entry>> {
        // A panic while holding the lock cannot leave the map inconsistent: take it as it is.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state of the instance with this UID (cheap: clients and observations are
    /// shared); a fresh one when there is none, or it was another object's of that name.
    pub fn state(&self, key: &ObjectRef<ArgoCdInstance>, uid: Option<&str>) -> InstanceState {
        match self.lock().get(key).and_then(|e| e.state.as_ref()) {
            Some(s) if s.uid.as_deref() == uid => s.clone(),
            _ => InstanceState { uid: uid.map(str::to_owned), ..Default::default() },
        }
    }

    /// Stores what the reconcile will need next time; `None` (suspended) keeps nothing.
    pub fn store(&self, key: &ObjectRef<ArgoCdInstance>, state: Option<InstanceState>) {
        self.lock().entry(key.clone()).or_default().state = state;
    }

    /// Records a check of `instance` as in flight; `cancel` is its token.
    pub fn begin_check(&self, instance: &ArgoCdInstance, cancel: CancellationToken) -> Check {
        let id = self.next_check.fetch_add(1, Ordering::Relaxed);
        let check = InFlight { version: Version::of(instance), id, cancel: cancel.clone() };
        self.lock().entry(ObjectRef::from_obj(instance)).or_default().check = Some(check);
        Check { id, cancel }
    }

    /// The check ended.
    pub fn end_check(&self, key: &ObjectRef<ArgoCdInstance>, check: Check) {
        if let Some(entry) = self.lock().get_mut(key)
            // Only its own: a newer check of the same key may have replaced it.
            && entry.check.as_ref().is_some_and(|f| f.id == check.id)
        {
            entry.check = None;
        }
    }

    /// One more failed reconcile of `key`: the wait before the next, doubling from 5 s up to
    /// `cap` (the instance's interval: once the API is back, its reconcile resumes within one).
    pub fn failed(&self, key: &ObjectRef<ArgoCdInstance>, cap: Duration) -> Duration {
        let mut entries = self.lock();
        let entry = entries.entry(key.clone()).or_default();
        entry.retries = entry.retries.saturating_add(1);
        backoff::reconcile_retry(entry.retries, cap)
    }

    /// A reconcile of `key` succeeded: its failures are forgotten.
    pub fn succeeded(&self, key: &ObjectRef<ArgoCdInstance>) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.retries = 0;
        }
    }

    /// The watch saw `instance` (created, changed, or its status written): a check in flight
    /// for another generation, or another object of that name, is cancelled.
    pub fn applied(&self, instance: &ArgoCdInstance) {
        let now = Version::of(instance);
        if let Some(check) = self.lock().get(&ObjectRef::from_obj(instance)).and_then(|e| e.check.as_ref())
            && check.version != now
        {
            check.cancel.cancel();
        }
    }

    /// Whether the controller is told of this version of `instance`: only when its
    /// [`trigger_key`] (spec, refresh annotation) changed, so a status write triggers nothing.
    pub fn retriggers(&self, instance: &ArgoCdInstance) -> bool {
        let key = trigger_key(instance);
        let mut entries = self.lock();
        let entry = entries.entry(ObjectRef::from_obj(instance)).or_default();
        entry.trigger.replace(key) != Some(key)
    }

    /// The instance was deleted: everything of it goes, its check in flight is cancelled.
    pub fn deleted(&self, key: &ObjectRef<ArgoCdInstance>) {
        let gone = self.lock().remove(key);
        forget(gone);
        self.metrics.forget_instance(key.namespace.as_deref().unwrap_or_default(), &key.name);
    }

    /// A (re)list is complete and `exists` is exactly what exists: an instance deleted while
    /// the watch was away is forgotten here, with its series.
    pub fn relisted(&self, exists: &HashSet<ObjectRef<ArgoCdInstance>>) {
        let gone: Vec<Entry> = {
            let mut entries = self.lock();
            let keys: Vec<_> = entries.keys().filter(|k| !exists.contains(k)).cloned().collect();
            keys.iter().filter_map(|k| entries.remove(k)).collect()
        };
        gone.into_iter().for_each(|e| forget(Some(e)));
        // The metrics also hold series of instances this process never reconciled (a standby
        // that became leader): they go by what exists, not by what the map held.
        self.metrics.forget_instances_except(|ns, name| exists.contains(&ObjectRef::new(name).within(ns)));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Cancels the check in flight of a forgotten entry.
fn forget(entry: Option<Entry>) {
    if let Some(check) = entry.and_then(|e| e.check) {
        check.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Instances {
        Instances::new(Arc::new(Metrics::new().expect("metrics")))
    }

    fn inst(uid: &str, generation: i64) -> ArgoCdInstance {
        let mut i = crate::fixtures::instance("ns", "a");
        i.metadata.uid = Some(uid.into());
        i.metadata.generation = Some(generation);
        i
    }

    #[test]
    fn a_spec_change_or_deletion_cancels_the_check_in_flight() {
        let r = registry();
        let key = ObjectRef::from_obj(&inst("u1", 1));
        let check = r.begin_check(&inst("u1", 1), CancellationToken::new());
        r.applied(&inst("u1", 1));
        assert!(!check.cancel.is_cancelled(), "same generation: a status write, not a change");
        r.applied(&inst("u1", 2));
        assert!(check.cancel.is_cancelled());
        r.end_check(&key, check);
        let check = r.begin_check(&inst("u1", 2), CancellationToken::new());
        r.applied(&inst("u2", 2));
        assert!(check.cancel.is_cancelled(), "another object of that name");
        let check = r.begin_check(&inst("u2", 2), CancellationToken::new());
        r.deleted(&key);
        assert!(check.cancel.is_cancelled());
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn an_old_check_ending_leaves_the_newer_one_in_flight() {
        let r = registry();
        let key = ObjectRef::from_obj(&inst("u1", 1));
        let old = r.begin_check(&inst("u1", 1), CancellationToken::new());
        let new = r.begin_check(&inst("u1", 2), CancellationToken::new());
        r.end_check(&key, old);
        r.applied(&inst("u1", 3));
        assert!(new.cancel.is_cancelled(), "the newer check was still recorded");
    }

    #[test]
    fn only_a_spec_or_refresh_change_retriggers() {
        let r = registry();
        let mut i = inst("u1", 1);
        assert!(r.retriggers(&i), "first seen");
        i.status = Some(Default::default());
        assert!(!r.retriggers(&i), "a status write");
        i.metadata.generation = Some(2);
        assert!(r.retriggers(&i), "a spec change");
        r.deleted(&ObjectRef::from_obj(&i));
        assert!(r.retriggers(&i), "created again under that name");
    }

    #[test]
    fn a_recreated_instance_starts_afresh() {
        let r = registry();
        let key = ObjectRef::new("a").within("ns");
        let mut s = r.state(&key, Some("uid-1"));
        s.failures = 3;
        r.store(&key, Some(s));
        assert_eq!(r.state(&key, Some("uid-1")).failures, 3);
        assert_eq!(r.state(&key, Some("uid-2")).failures, 0, "same name, another object");
        r.store(&key, None);
        assert_eq!(r.state(&key, Some("uid-1")).failures, 0, "suspended: nothing kept");
    }

    #[test]
    fn retries_back_off_per_instance_and_reset_on_success() {
        let r = registry();
        let (a, b) = (ObjectRef::new("a").within("ns"), ObjectRef::new("b").within("ns"));
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (0..8).map(|_| r.failed(&a, cap).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(r.failed(&b, cap).as_secs(), 5, "another instance has its own count");
        assert_eq!(r.failed(&b, Duration::from_secs(10)).as_secs(), 10, "capped");
        r.succeeded(&a);
        assert_eq!(r.failed(&a, cap).as_secs(), 5);
    }

    #[test]
    fn a_relist_forgets_what_no_longer_exists_with_its_series_and_check() {
        let r = registry();
        let (kept, gone) = (ObjectRef::new("a").within("ns"), ObjectRef::new("gone").within("ns"));
        r.store(&kept, Some(InstanceState::default()));
        r.failed(&gone, Duration::from_secs(60));
        let mut g = crate::fixtures::instance("ns", "gone");
        g.metadata.uid = Some("u".into());
        let check = r.begin_check(&g, CancellationToken::new());
        r.relisted(&HashSet::from([kept.clone()]));
        assert!(check.cancel.is_cancelled());
        assert_eq!(r.len(), 1);
        assert_eq!(r.failed(&gone, Duration::from_secs(60)).as_secs(), 5, "its retries went too");
    }
}
