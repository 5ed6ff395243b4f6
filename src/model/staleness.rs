//! Staleness: a status that says `connected` while its last successful check is older than
//! a limit (a number of the instance's intervals) no longer tells the truth. Pure.

use jiff::{SignedDuration, Timestamp};

use super::conditions::{self, Conditions, READY, Status};
use crate::crd::{ArgoCdInstanceStatus, ConnectionState};

pub use super::conditions::reason::STALE;

/// How old `instance`'s data may get before it is stale: `intervals` check intervals, plus
/// the status heartbeat. A status whose only change is `lastCheckedAt` is written once per
/// heartbeat, so on a healthy instance the timestamps a reader sees lag by up to that much;
/// without it every healthy instance would be marked stale between two heartbeats.
pub fn stale_limit(
    instance: &crate::crd::ArgoCdInstance,
    intervals: u32,
    heartbeat: std::time::Duration,
) -> SignedDuration {
    let limit = instance.spec.interval_duration().saturating_mul(intervals).saturating_add(heartbeat);
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
    let ready = Conditions::new(&s.conditions, s.observed_generation, now).make(
        READY,
        Status::Unknown,
        STALE,
        message,
    );
    conditions::set(&mut s.conditions, ready)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_limit_allows_for_the_status_heartbeat() {
        let i = crate::fixtures::instance("n", "a"); // interval 60s
        assert_eq!(stale_limit(&i, 3, Duration::ZERO), SignedDuration::from_mins(3));
        // With a 10-minute heartbeat a healthy status' lastSuccessfulCheckAt is up to 10
        // minutes old: that must not read as stale.
        assert_eq!(stale_limit(&i, 3, Duration::from_secs(600)), SignedDuration::from_mins(13));
        assert_eq!(stale_limit(&i, u32::MAX, Duration::MAX), SignedDuration::MAX);
    }
}
