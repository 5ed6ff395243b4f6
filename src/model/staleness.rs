//! Staleness: a status that says `connected` while its last successful check is older than
//! a limit (a number of the instance's intervals) no longer tells the truth. Pure.

use jiff::{SignedDuration, Timestamp};

use super::status::{READY, condition};
use crate::crd::{ArgoCdInstanceStatus, ConnectionState};

/// Ready's reason (status `Unknown`) on a stale status. Not a connection reason: the
/// connection fields keep what the last check saw.
pub const STALE: &str = "Stale";

/// `intervals` check intervals of `instance`: how old its data may get before it is stale.
pub fn stale_limit(instance: &crate::crd::ArgoCdInstance, intervals: u32) -> SignedDuration {
    let limit = instance.spec.interval_duration().saturating_mul(intervals);
    SignedDuration::try_from(limit).unwrap_or(SignedDuration::MAX)
}

/// Whether a status that says `connected` rests on a check older than `limit`: what it shows
/// may no longer be true (argomap could not check for that long).
pub fn is_stale(s: &ArgoCdInstanceStatus, limit: SignedDuration, now: Timestamp) -> bool {
    let Some(c) = &s.connection else { return false };
    let last = c.last_successful_check_at.as_ref().map(|t| t.0);
    c.status == ConnectionState::Connected && last.is_some_and(|t| now.duration_since(t) > limit)
}

/// Marks a stale status (see [`is_stale`]): Ready becomes Unknown with reason `Stale`.
/// Returns whether anything changed.
pub fn mark_stale(s: &mut ArgoCdInstanceStatus, limit: SignedDuration, now: Timestamp) -> bool {
    if !is_stale(s, limit, now) {
        return false;
    }
    let last = s.connection.as_ref().and_then(|c| c.last_successful_check_at.as_ref()).map(|t| t.0);
    let message = match last {
        Some(t) => format!(
            "the last successful check was at {t}, more than {} ago: what this status shows may no longer be true",
            jiff::SignedDuration::from_secs(limit.as_secs())
        ),
        None => String::new(),
    };
    let ready = condition(&s.conditions, s.observed_generation, now, READY, "Unknown", STALE, message);
    match s.conditions.iter_mut().find(|c| c.type_ == READY) {
        Some(c) if *c == ready => return false,
        Some(c) => *c = ready,
        None => s.conditions.insert(0, ready),
    }
    true
}
