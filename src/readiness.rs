//! Whether the process can serve. [`Synced`] records which of the controller's watches have
//! listed everything once; checks wait for all of them (a check before the ClusterMappings are
//! known would report mapped destinations as unlinked), and so does [`Readiness`], which
//! `/readyz` and the read API read (an unsynced cache would make every organization look empty).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Ready to serve; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The watches the controller needs synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watch {
    Instances,
    Mappings,
    Secrets,
    /// Namespaces bound to an organization (none watched with `--organization-binding=none`).
    Namespaces,
    /// ClusterProfiles (none watched without `--cluster-profiles`, or without their CRD).
    Profiles,
}

/// Which watches have listed everything once. Set from the watch streams' `InitDone`, not by
/// awaiting the stores: a store wakes only one waiter, and the controller already waits on the
/// instance store.
#[derive(Debug, Default)]
pub struct Synced {
    instances: AtomicBool,
    mappings: AtomicBool,
    secrets: AtomicBool,
    namespaces: AtomicBool,
    profiles: AtomicBool,
    readiness: Readiness,
}

impl Synced {
    /// Nothing synced yet; `readiness` turns true once everything is.
    pub fn new(readiness: Readiness) -> Self {
        Synced { readiness, ..Default::default() }
    }

    /// Everything synced already: for callers that bring their own filled caches.
    pub fn done() -> Self {
        let s = Synced::default();
        for w in [Watch::Instances, Watch::Mappings, Watch::Secrets, Watch::Namespaces, Watch::Profiles] {
            s.mark(w);
        }
        s
    }

    pub fn all(&self) -> bool {
        self.instances.load(Ordering::SeqCst)
            && self.mappings.load(Ordering::SeqCst)
            && self.secrets.load(Ordering::SeqCst)
            && self.namespaces.load(Ordering::SeqCst)
            && self.profiles.load(Ordering::SeqCst)
    }

    pub fn mark(&self, watch: Watch) {
        let flag = match watch {
            Watch::Instances => &self.instances,
            Watch::Mappings => &self.mappings,
            Watch::Secrets => &self.secrets,
            Watch::Namespaces => &self.namespaces,
            Watch::Profiles => &self.profiles,
        };
        if !flag.swap(true, Ordering::SeqCst) && self.all() {
            self.readiness.set(true);
            tracing::info!("watches synced; ready");
        }
    }
}
