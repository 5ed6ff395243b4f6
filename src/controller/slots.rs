//! Check slots: how many checks talk to Argo CD at once, and which checks in flight are
//! cancelled. A check holds a slot only while it fetches, never longer than its deadline.
//!
//! Two lanes, so that servers that hang or crawl cannot take the slots of the ones that answer:
//! - **proven**: instances whose last check succeeded within the leash and in under half its
//!   request timeout, and
//!   those with no check remembered (new ones, or after a restart); a check holds a proven slot
//!   for at most [`PROVEN_LEASH`], then goes on in probation;
//! - **probation**: a quarter of that (at least one): instances whose last check failed or was
//!   slow, and checks that outran the leash.
//!
//! Within each lane one namespace holds at most its share (three quarters of the proven lane,
//! half of probation, at least one), so no tenant can hold every slot.
//!
//! A check is cancelled when its instance is deleted or its spec changes (a new check follows
//! at once), and all of them on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// The longest a check holds a proven slot: one still running then goes on in probation. A
/// healthy check takes tens of milliseconds; a first check of a large Argo CD may take a few
/// seconds, and finishes in probation.
pub const PROVEN_LEASH: Duration = Duration::from_secs(2);

/// Which lane a check waits in (see the module's comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Proven,
    Probation,
}

impl Lane {
    /// The lane of an instance whose last check ended `last`: `Err` when it failed, `None`
    /// when none is remembered (a new instance, or after a restart or a leader change: it
    /// starts proven, on the leash). A check must take under half of `slow_after` (its request
    /// timeout), and within the leash, to stay proven: one that outran the leash would outrun it
    /// again, and each time be started over in probation (a second request to Argo CD). Pure.
    pub fn of(last: Option<Result<Duration, ()>>, slow_after: Duration) -> Lane {
        match last {
            Some(Ok(took)) if took < slow_after / 2 && took < PROVEN_LEASH => Lane::Proven,
            Some(_) => Lane::Probation,
            None => Lane::Proven,
        }
    }
}

pub struct Slots {
    proven: Arc<Semaphore>,
    probation: Arc<Semaphore>,
    /// Each namespace's share of each lane, made when first asked for.
    shares: Mutex<HashMap<(String, Lane), Arc<Semaphore>>>,
    share: [usize; 2],
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
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    id: u64,
    pub cancel: CancellationToken,
}

/// A slot held by a watch's list; freed when dropped.
pub struct ListSlot {
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Slots {
    /// `max` proven slots, and a quarter of that (at least one) in probation.
    pub fn new(max: u16) -> Self {
        let max = usize::from(max.max(1));
        let probation = (max / 4).max(1);
        Slots {
            proven: Arc::new(Semaphore::new(max)),
            probation: Arc::new(Semaphore::new(probation)),
            shares: Mutex::new(HashMap::new()),
            share: [(max * 3 / 4).max(1), (probation / 2).max(1)],
            shutdown: CancellationToken::new(),
            in_flight: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ArgoCdInstance>, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The namespace's share of `lane`.
    fn share(&self, namespace: &str, lane: Lane) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        let permits = self.share[usize::from(lane == Lane::Probation)];
        shares
            .entry((namespace.to_owned(), lane))
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }

    /// Waits for the namespace's share, then a slot of `lane`; `None` once shutdown began.
    async fn permits(
        &self,
        namespace: &str,
        lane: Lane,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let share = self.share(namespace, lane);
        let slots = match lane {
            Lane::Proven => &self.proven,
            Lane::Probation => &self.probation,
        };
        tokio::select! {
            p = async {
                let share = share.acquire_owned().await.ok()?;
                let slot = slots.clone().acquire_owned().await.ok()?;
                Some((share, slot))
            } => p,
            _ = self.shutdown.cancelled() => None,
        }
    }

    /// A slot of `lane` for a check of `instance` (see [`Slots::permits`]); the check is
    /// cancelled with its instance.
    pub async fn acquire(&self, instance: &ArgoCdInstance, lane: Lane) -> Option<Slot> {
        let namespace = instance.metadata.namespace.as_deref().unwrap_or_default();
        let permits = self.permits(namespace, lane).await?;
        let cancel = self.shutdown.child_token();
        let checked =
            Checked { uid: instance.metadata.uid.clone(), generation: instance.metadata.generation };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(ObjectRef::from_obj(instance), InFlight { checked, id, cancel: cancel.clone() });
        Some(Slot { _permits: permits, id, cancel })
    }

    /// A slot of `lane` for a watch's list of the applications, in `namespace`: lists hold a
    /// check's memory, so they take check slots too (and a leader change cannot start every
    /// watch's list at once). The watch's task cancels its own list.
    pub async fn acquire_for_list(&self, namespace: &str, lane: Lane) -> Option<ListSlot> {
        Some(ListSlot { _permits: self.permits(namespace, lane).await? })
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

    fn in_ns(ns: &str) -> ArgoCdInstance {
        crate::fixtures::instance(ns, "a")
    }

    fn inst(generation: i64) -> ArgoCdInstance {
        let mut i = crate::fixtures::instance("ns", "a");
        i.metadata.uid = Some("u1".into());
        i.metadata.generation = Some(generation);
        i
    }

    #[tokio::test]
    async fn a_spec_change_or_deletion_cancels_the_check_in_flight() {
        let slots = Slots::new(8);
        let slot = slots.acquire(&inst(1), Lane::Proven).await.expect("slot");
        slots.changed(&inst(1));
        assert!(!slot.cancel.is_cancelled(), "same generation: a status write, not a change");
        slots.changed(&inst(2));
        assert!(slot.cancel.is_cancelled());
        slots.release(&inst(1), slot);
        let slot = slots.acquire(&inst(2), Lane::Proven).await.expect("slot");
        slots.deleted(&ObjectRef::from_obj(&inst(2)));
        assert!(slot.cancel.is_cancelled());
    }

    #[tokio::test]
    async fn instances_in_probation_cannot_take_the_proven_slots() {
        let slots = Slots::new(8);
        let (a, b) = (in_ns("a"), in_ns("b"));
        let slow = slots.acquire(&a, Lane::Probation).await.expect("probation has two");
        let slow2 = slots.acquire(&b, Lane::Probation).await.expect("slot");
        let third =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire(&in_ns("c"), Lane::Probation))
                .await;
        assert!(third.is_err(), "probation is full");
        let mut proven = Vec::new();
        for ns in ["a", "b"] {
            for _ in 0..4 {
                proven
                    .push(slots.acquire(&in_ns(ns), Lane::Proven).await.expect("proven slots are all free"));
            }
        }
        drop((slow, slow2, proven));
    }

    #[tokio::test]
    async fn no_namespace_holds_every_slot_of_a_lane() {
        let slots = Slots::new(8);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(slots.acquire(&in_ns("greedy"), Lane::Proven).await.expect("within its share"));
        }
        let seventh =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire(&in_ns("greedy"), Lane::Proven))
                .await;
        assert!(seventh.is_err(), "three quarters of the proven lane is a namespace's share");
        let other =
            slots.acquire(&in_ns("other"), Lane::Proven).await.expect("another namespace gets a slot");
        let probation = slots.acquire(&in_ns("greedy"), Lane::Probation).await.expect("one of two");
        let second =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire(&in_ns("greedy"), Lane::Probation))
                .await;
        assert!(second.is_err(), "half of probation is a namespace's share");
        drop((held, other, probation));
    }

    #[test]
    fn failing_and_slow_instances_wait_in_probation() {
        let timeout = Duration::from_secs(10);
        assert_eq!(Lane::of(Some(Ok(Duration::from_millis(40))), timeout), Lane::Proven);
        assert_eq!(Lane::of(Some(Ok(Duration::from_secs(5))), timeout), Lane::Probation, "half the timeout");
        let long = Duration::from_secs(60);
        assert_eq!(
            Lane::of(Some(Ok(PROVEN_LEASH + Duration::from_millis(1))), long),
            Lane::Probation,
            "it outran the leash: it would again, and be asked twice"
        );
        assert_eq!(Lane::of(Some(Err(())), timeout), Lane::Probation, "its last check failed");
        assert_eq!(Lane::of(None, timeout), Lane::Proven, "nothing remembered: proven, on the leash");
    }

    #[tokio::test]
    async fn shutdown_cancels_checks_and_waits_for_slots() {
        let slots = Arc::new(Slots::new(1));
        let slot = slots.acquire(&inst(1), Lane::Proven).await.expect("slot");
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire(&inst(1), Lane::Proven).await.is_none() }
        });
        slots.cancel_all();
        assert!(slot.cancel.is_cancelled());
        assert!(waiter.await.expect("joined"), "a wait for a slot ends at shutdown");
    }
}
