//! Check slots: how many checks talk to Argo CD at once, and which checks in flight are
//! cancelled. A check holds a slot only while it fetches, never longer than its deadline.
//! Instances whose last check timed out share a small lane of their own, so servers that hang
//! cannot take every slot from the healthy ones. A check is cancelled when its instance is
//! deleted or its spec changes (a new check follows at once), and all of them on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::crd::ArgoCdInstance;

/// What identifies the check in flight: it stays valid while the instance keeps its UID and
/// generation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Checked {
    uid: Option<String>,
    generation: Option<i64>,
}

pub struct Slots {
    healthy: Arc<Semaphore>,
    slow: Arc<Semaphore>,
    shutdown: CancellationToken,
    in_flight: Mutex<HashMap<ObjectRef<ArgoCdInstance>, InFlight>>,
    next_id: AtomicU64,
}

struct InFlight {
    checked: Checked,
    id: u64,
    cancel: CancellationToken,
}

/// A slot in use and the token that cancels its check; the slot is freed when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    id: u64,
    pub cancel: CancellationToken,
}

impl Slots {
    /// `max` slots for instances that answer, and a quarter of that (at least one) for those
    /// whose last check timed out.
    pub fn new(max: u16) -> Self {
        let max = usize::from(max.max(1));
        Slots {
            healthy: Arc::new(Semaphore::new(max)),
            slow: Arc::new(Semaphore::new((max / 4).max(1))),
            shutdown: CancellationToken::new(),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ArgoCdInstance>, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot of the lane `timed_out` names; `None` once shutdown began.
    pub async fn acquire(&self, instance: &ArgoCdInstance, timed_out: bool) -> Option<Slot> {
        let lane = if timed_out { &self.slow } else { &self.healthy };
        let permit = tokio::select! {
            p = lane.clone().acquire_owned() => p.ok()?,
            _ = self.shutdown.cancelled() => return None,
        };
        let cancel = self.shutdown.child_token();
        let checked =
            Checked { uid: instance.metadata.uid.clone(), generation: instance.metadata.generation };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(ObjectRef::from_obj(instance), InFlight { checked, id, cancel: cancel.clone() });
        Some(Slot { _permit: permit, id, cancel })
    }

    /// The check of `instance` ended.
    pub fn release(&self, instance: &ArgoCdInstance, slot: Slot) {
        let key = ObjectRef::from_obj(instance);
        let mut in_flight = self.lock();
        // Only its own entry: a newer check of the same key may have replaced it.
        if in_flight.get(&key).is_some_and(|f| f.id == slot.id) {
            in_flight.remove(&key);
        }
    }

    /// The instance changed (as the watch saw it): a check in flight for another generation or
    /// another object of that name is cancelled.
    pub fn changed(&self, instance: &ArgoCdInstance) {
        let now = Checked { uid: instance.metadata.uid.clone(), generation: instance.metadata.generation };
        if let Some(f) = self.lock().get(&ObjectRef::from_obj(instance))
            && f.checked != now
        {
            f.cancel.cancel();
        }
    }

    /// The instance was deleted: its check in flight is cancelled.
    pub fn deleted(&self, key: &ObjectRef<ArgoCdInstance>) {
        if let Some(f) = self.lock().remove(key) {
            f.cancel.cancel();
        }
    }

    /// Cancels every check, and every wait for a slot (shutdown).
    pub fn cancel_all(&self) {
        self.shutdown.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn inst(generation: i64) -> ArgoCdInstance {
        let mut i = crate::fixtures::instance("ns", "a");
        i.metadata.uid = Some("u1".into());
        i.metadata.generation = Some(generation);
        i
    }

    #[tokio::test]
    async fn a_spec_change_or_deletion_cancels_the_check_in_flight() {
        let slots = Slots::new(8);
        let slot = slots.acquire(&inst(1), false).await.expect("slot");
        slots.changed(&inst(1));
        assert!(!slot.cancel.is_cancelled(), "same generation: a status write, not a change");
        slots.changed(&inst(2));
        assert!(slot.cancel.is_cancelled());
        slots.release(&inst(1), slot);
        let slot = slots.acquire(&inst(2), false).await.expect("slot");
        slots.deleted(&ObjectRef::from_obj(&inst(2)));
        assert!(slot.cancel.is_cancelled());
    }

    #[tokio::test]
    async fn timed_out_instances_cannot_take_the_healthy_slots() {
        let slots = Slots::new(8);
        let slow = slots.acquire(&inst(1), true).await.expect("the slow lane has two");
        let slow2 = slots.acquire(&inst(1), true).await.expect("slot");
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire(&inst(1), true)).await;
        assert!(third.is_err(), "the slow lane is full");
        let mut healthy = Vec::new();
        for _ in 0..8 {
            healthy.push(slots.acquire(&inst(1), false).await.expect("healthy slots are all free"));
        }
        drop((slow, slow2, healthy));
    }

    #[tokio::test]
    async fn shutdown_cancels_checks_and_waits_for_slots() {
        let slots = Arc::new(Slots::new(1));
        let slot = slots.acquire(&inst(1), false).await.expect("slot");
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(&inst(1), false).await.is_none() }
        });
        slots.cancel_all();
        assert!(slot.cancel.is_cancelled());
        assert!(waiter.await.expect("joined"), "a wait for a slot ends at shutdown");
    }
}
