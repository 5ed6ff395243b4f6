//! How large a status may get: its lists are capped by count and by bytes (the counts in
//! `summary` stay exact), and a status the API still refuses is replaced by a minimal one that
//! says why. Pure.

use jiff::Timestamp;

use super::conditions::{self, Conditions, READY, Status};
use crate::crd::ArgoCdInstanceStatus;

/// Entries kept per status list; the summary counts stay exact.
pub const LIST_CAP: usize = 500;
/// Bytes (as JSON) kept per status list. etcd refuses objects over 1.5 MiB by default, and
/// destination URLs come from Argo CD with no length limit: three lists at this budget, with
/// capped messages, keep a status well under it whatever Argo CD holds.
pub const LIST_BYTES: usize = 128 * 1024;
/// What is written when the Kubernetes API refused `desired` as too large (`why` is its
/// answer): the lists are left out, the counts stay, and Ready says why.
pub fn minimal(desired: &ArgoCdInstanceStatus, why: &str, now: Timestamp) -> ArgoCdInstanceStatus {
    let mut s = desired.clone();
    s.linked_clusters.clear();
    s.unlinked_clusters.clear();
    s.orphaned_mappings.clear();
    s.truncated = true;
    let message = format!(
        "the Kubernetes API refused the status as too large ({why}); the lists are left out, the counts in summary are exact"
    );
    let ready = Conditions::new(&desired.conditions, desired.observed_generation, now).make(
        READY,
        Status::False,
        STATUS_TOO_LARGE,
        message,
    );
    conditions::set(&mut s.conditions, ready);
    s
}

pub use super::conditions::reason::STATUS_TOO_LARGE;

/// The first entries of `items` that fit both [`LIST_CAP`] and [`LIST_BYTES`], and whether
/// any was left out. An entry too large on its own is left out too.
pub(super) fn capped<T: Clone + serde::Serialize>(items: &[T]) -> (Vec<T>, bool) {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for item in items {
        let size = json_size(item);
        if kept.len() == LIST_CAP || bytes + size > LIST_BYTES {
            return (kept, true);
        }
        bytes += size;
        kept.push(item.clone());
    }
    (kept, false)
}

/// The length of `value` as JSON, without building the string.
fn json_size(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter fails only if `Serialize` does, which these types never do.
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0 + 1,
        Err(_) => usize::MAX / 4,
    }
}
