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
//! Which check is in flight, and its cancellation, is the registry's (`instances`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

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
    /// The process's: no wait for a slot outlives shutdown.
    cancel: CancellationToken,
}

/// A slot in use (by a check or a watch's list); freed when dropped.
pub struct Slot {
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Slots {
    /// `max` proven slots, and a quarter of that (at least one) in probation; no wait
    /// outlives `cancel`.
    pub fn new(max: u16, cancel: CancellationToken) -> Self {
        let max = usize::from(max.max(1));
        let probation = (max / 4).max(1);
        Slots {
            proven: Arc::new(Semaphore::new(max)),
            probation: Arc::new(Semaphore::new(probation)),
            shares: Mutex::new(HashMap::new()),
            share: [(max * 3 / 4).max(1), (probation / 2).max(1)],
            cancel,
        }
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
    /// Checks and a watch's lists of the applications both take them: a list holds a check's
    /// memory, and a leader change must not start every watch's list at once.
    pub async fn acquire(&self, namespace: &str, lane: Lane) -> Option<Slot> {
        let share = self.share(namespace, lane);
        let slots = match lane {
            Lane::Proven => &self.proven,
            Lane::Probation => &self.probation,
        };
        tokio::select! {
            p = async {
                let share = share.acquire_owned().await.ok()?;
                let slot = slots.clone().acquire_owned().await.ok()?;
                Some(Slot { _permits: (share, slot) })
            } => p,
            _ = self.cancel.cancelled() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slots(max: u16) -> Slots {
        Slots::new(max, CancellationToken::new())
    }

    #[tokio::test]
    async fn instances_in_probation_cannot_take_the_proven_slots() {
        let slots = slots(8);
        let slow = slots.acquire("a", Lane::Probation).await.expect("probation has two");
        let slow2 = slots.acquire("b", Lane::Probation).await.expect("slot");
        let third =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire("c", Lane::Probation)).await;
        assert!(third.is_err(), "probation is full");
        let mut proven = Vec::new();
        for ns in ["a", "b"] {
            for _ in 0..4 {
                proven.push(slots.acquire(ns, Lane::Proven).await.expect("proven slots are all free"));
            }
        }
        drop((slow, slow2, proven));
    }

    #[tokio::test]
    async fn no_namespace_holds_every_slot_of_a_lane() {
        let slots = slots(8);
        let mut held = Vec::new();
        for _ in 0..6 {
            held.push(slots.acquire("greedy", Lane::Proven).await.expect("within its share"));
        }
        let seventh =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire("greedy", Lane::Proven)).await;
        assert!(seventh.is_err(), "three quarters of the proven lane is a namespace's share");
        let other = slots.acquire("other", Lane::Proven).await.expect("another namespace gets a slot");
        let probation = slots.acquire("greedy", Lane::Probation).await.expect("one of two");
        let second =
            tokio::time::timeout(Duration::from_millis(50), slots.acquire("greedy", Lane::Probation)).await;
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
    async fn shutdown_ends_every_wait_for_a_slot() {
        let cancel = CancellationToken::new();
        let slots = Arc::new(Slots::new(1, cancel.clone()));
        let held = slots.acquire("ns", Lane::Proven).await.expect("slot");
        let waiter = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire("ns", Lane::Proven).await.is_none() }
        });
        cancel.cancel();
        assert!(waiter.await.expect("joined"), "a wait for a slot ends at shutdown");
        drop(held);
    }
}
