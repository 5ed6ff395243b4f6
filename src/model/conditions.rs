//! The conditions argomap writes, in one vocabulary: their types, statuses and the reasons that
//! are not a check's [`Reason`](crate::crd::Reason), and how one is made (its
//! `lastTransitionTime` moves only when its status changes) and set in a list. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::text::cap;

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// Whether `c` has this status.
    pub fn of(self, c: &Condition) -> bool {
        c.status == self.as_str()
    }
}

impl From<bool> for Status {
    fn from(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

// Condition types.
pub const READY: &str = "Ready";
pub const CONNECTED: &str = "Connected";
pub const CLUSTERS_VISIBLE: &str = "ClustersVisible";
pub const APPLICATIONS_VISIBLE: &str = "ApplicationsVisible";
pub const CREDENTIALS_EXPIRING: &str = "CredentialsExpiringSoon";
pub const INSECURE_TLS: &str = "InsecureTLS";
/// kstatus' abnormal-true conditions (`kubectl wait`, Flux `wait: true`): `Reconciling` while a
/// failed check is retried (kstatus `InProgress`), `Stalled` when retrying with the same
/// settings cannot succeed (kstatus `Failed`). Absent otherwise.
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
/// Watch mode's: where the application stream stands (absent in poll mode).
pub const APPLICATION_STREAM: &str = "ApplicationStream";
/// Whether the read API counts the instance for its organization (present only when
/// `spec.organizationId` is set).
pub const ORGANIZATION_BOUND: &str = "OrganizationBound";

/// Reasons that are not a check's outcome.
pub mod reason {
    /// Ready (status `Unknown`) on a status whose last successful check is too old. Not a
    /// connection reason: the connection fields keep what the last check saw.
    pub const STALE: &str = "Stale";
    /// Ready when the full status could not be written.
    pub const STATUS_TOO_LARGE: &str = "StatusTooLarge";
    /// A linked ClusterMapping's Ready when its ClusterProfile is gone, or says its control
    /// plane is not healthy.
    pub const CLUSTER_PROFILE_NOT_FOUND: &str = "ClusterProfileNotFound";
    pub const CLUSTER_PROFILE_UNHEALTHY: &str = "ClusterProfileUnhealthy";
    pub const CLUSTERS_LISTED: &str = "ClustersListed";
    pub const NO_CLUSTERS_REGISTERED: &str = "NoClustersRegistered";
    pub const MISSING_CLUSTERS_GET: &str = "MissingClustersGetPermission";
    pub const APPLICATIONS_LISTED: &str = "ApplicationsListed";
    pub const MISSING_APPLICATIONS_GET: &str = "MissingApplicationsGetPermission";
    pub const TOKEN_EXPIRES_SOON: &str = "TokenExpiresSoon";
    pub const TOKEN_VALID: &str = "TokenValid";
    pub const INSECURE_SKIP_VERIFY: &str = "InsecureSkipVerify";
    pub const NOT_ENFORCED: &str = "NotEnforced";
    pub const NAMESPACE_LABELLED: &str = "NamespaceLabelled";
    pub const NAMESPACE_NOT_IN_ORGANIZATION: &str = "NamespaceNotInOrganization";
    pub const NAMESPACE_IN_OTHER_ORGANIZATION: &str = "NamespaceInOtherOrganization";
}

/// Makes the conditions of one status: each keeps the `lastTransitionTime` of the previous
/// condition of its type while its status is the same, and carries `observedGeneration`.
#[derive(Clone, Copy)]
pub struct Conditions<'a> {
    prev: &'a [Condition],
    generation: Option<i64>,
    now: Timestamp,
}

impl<'a> Conditions<'a> {
    /// Conditions following `prev`, for `generation`, at `now`.
    pub fn new(prev: &'a [Condition], generation: Option<i64>, now: Timestamp) -> Self {
        Conditions { prev, generation, now }
    }

    /// The condition `type_` with `status`, `reason` and `message` (capped).
    pub fn make(&self, type_: &str, status: Status, reason: &str, message: impl AsRef<str>) -> Condition {
        let last_transition_time = self
            .prev
            .iter()
            .find(|c| c.type_ == type_ && status.of(c))
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(self.now));
        Condition {
            type_: type_.to_string(),
            status: status.as_str().to_string(),
            reason: reason.to_string(),
            message: cap(message.as_ref()),
            observed_generation: self.generation,
            last_transition_time,
        }
    }
}

/// Puts `c` in place of the condition of its type, or adds it (Ready first). Returns whether
/// the list changed.
pub fn set(conditions: &mut Vec<Condition>, c: Condition) -> bool {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) if *x == c => false,
        Some(x) => {
            *x = c;
            true
        }
        None if c.type_ == READY => {
            conditions.insert(0, c);
            true
        }
        None => {
            conditions.push(c);
            true
        }
    }
}

/// The condition of `type_`, if any.
pub fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let first =
            Conditions::new(&[], Some(1), t("2026-12-01T10:00:00Z")).make(READY, Status::True, "A", "m");
        let prev = [first.clone()];
        let later = Conditions::new(&prev, Some(2), t("2026-12-01T11:00:00Z"));
        let same = later.make(READY, Status::True, "B", "other message");
        assert_eq!(same.last_transition_time, first.last_transition_time);
        assert_eq!(same.observed_generation, Some(2));
        let flipped = later.make(READY, Status::False, "B", "m");
        assert_eq!(flipped.last_transition_time, Time(t("2026-12-01T11:00:00Z")));
    }

    #[test]
    fn set_replaces_in_place_or_adds_with_ready_first() {
        let c = Conditions::new(&[], None, t("2026-12-01T10:00:00Z"));
        let mut list = vec![c.make(CONNECTED, Status::True, "Connected", "")];
        assert!(set(&mut list, c.make(READY, Status::True, "Connected", "")));
        assert_eq!(list[0].type_, READY, "Ready goes first");
        assert!(set(&mut list, c.make(APPLICATION_STREAM, Status::Unknown, "Connecting", "")));
        assert_eq!(list.len(), 3);
        assert!(!set(&mut list, c.make(READY, Status::True, "Connected", "")), "the same: no change");
        assert!(set(&mut list, c.make(READY, Status::Unknown, reason::STALE, "old")));
        assert_eq!((list.len(), find(&list, READY).map(|r| r.reason.as_str())), (3, Some(reason::STALE)));
    }

    #[test]
    fn messages_are_capped() {
        let long = "x".repeat(10_000);
        let c = Conditions::new(&[], None, t("2026-12-01T10:00:00Z")).make(READY, Status::False, "R", &long);
        assert!(c.message.len() < long.len());
    }
}
