//! Watch mode's process-wide byte budget. Every watch's index, the changes it keeps while a
//! relist is in flight, and its stream's line buffer once it outgrows a small one are charged
//! to one budget (`--max-watch-bytes`): however many watch instances there are and whatever
//! their servers send, together they hold at most that. A watch that does not fit falls back
//! to polling, which folds a list in constant memory.
//!
//! Charges are estimates of heap, not exact: an index entry costs its text plus
//! [`ENTRY_COST`] (the map's node and three allocations).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default of `--max-watch-bytes`: what keeps the worst case of the chart's defaults under its
/// 512Mi limit (docs/how-it-works.md, "Memory"); a real Argo CD's index costs about 200 bytes
/// an application, so this holds about 60 watch instances of 5 000 applications each.
pub const DEFAULT_MAX_WATCH_BYTES: usize = 64 * 1024 * 1024;
/// Heap an index entry costs beyond its text (measured: 100 000 entries with 16 MiB of text
/// take about 25 MiB).
pub const ENTRY_COST: usize = 96;

/// The budget every watch charges.
#[derive(Debug)]
pub struct WatchBudget {
    limit: usize,
    used: AtomicUsize,
}

impl WatchBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(WatchBudget { limit, used: AtomicUsize::new(0) })
    }

    /// Bytes charged now, over every watch.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The budget was spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "argomap's watches hold at most {} in all (--max-watch-bytes) and this one does not fit",
    size(*.limit)
)]
pub struct OverBudget {
    pub limit: usize,
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes >> 10) }
}

/// What one holder (an index, a relist's changes, a line buffer) has charged; given back when
/// dropped. The default charges nothing anywhere (tests, and the check command's one-off
/// lists).
#[derive(Debug, Default)]
pub struct Charge {
    budget: Option<Arc<WatchBudget>>,
    held: usize,
}

impl Charge {
    pub fn new(budget: &Arc<WatchBudget>) -> Self {
        Charge { budget: Some(budget.clone()), held: 0 }
    }

    /// Holds `bytes` in all instead of what it held. When the budget cannot grant the growth,
    /// nothing changes.
    pub fn resize(&mut self, bytes: usize) -> Result<(), OverBudget> {
        let Some(budget) = &self.budget else {
            self.held = bytes;
            return Ok(());
        };
        if bytes <= self.held {
            budget.used.fetch_sub(self.held - bytes, Ordering::Relaxed);
        } else {
            let grow = bytes - self.held;
            budget
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                    used.checked_add(grow).filter(|total| *total <= budget.limit)
                })
                .map_err(|_| OverBudget { limit: budget.limit })?;
        }
        self.held = bytes;
        Ok(())
    }

    /// Moves `other`'s charge here (a relist's index replacing the old one): the budget is
    /// never asked for both at once.
    pub fn take_over(&mut self, other: &mut Charge) {
        self.resize(0).ok();
        *self = std::mem::take(other);
    }
}

impl Clone for Charge {
    /// A copy charges nothing: only the holder that owns the memory accounts for it.
    fn clone(&self) -> Self {
        Charge::default()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.held, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_granted_within_the_limit_and_given_back() {
        let budget = WatchBudget::new(100);
        let mut a = Charge::new(&budget);
        let mut b = Charge::new(&budget);
        a.resize(60).expect("fits");
        assert_eq!(b.resize(41), Err(OverBudget { limit: 100 }));
        assert_eq!(budget.used(), 60, "a refused growth charges nothing");
        b.resize(40).expect("exactly the rest");
        a.resize(10).expect("shrinking always works");
        b.resize(90).expect("what a gave back");
        drop(b);
        assert_eq!(budget.used(), 10);
        let mut c = Charge::new(&budget);
        c.take_over(&mut a);
        assert_eq!(budget.used(), 10, "moved, not charged twice");
        c.resize(100).expect("all of it");
        drop(a);
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn an_unbudgeted_charge_and_a_copy_charge_nothing() {
        let budget = WatchBudget::new(10);
        let mut free = Charge::default();
        free.resize(usize::MAX).expect("no budget");
        let mut a = Charge::new(&budget);
        a.resize(10).expect("fits");
        let copy = a.clone();
        drop(copy);
        assert_eq!(budget.used(), 10);
    }
}
