//! What argomap remembers of each instance between reconciles (in memory only: a restart
//! simply checks once more), and the pure rule that decides from it whether Argo CD is polled.
//! Never the trigger of a reconcile: a ClusterMapping change or a status write alone cannot
//! cause a poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

use super::backoff;
use super::follow::Follower;
use crate::argocd;
use crate::crd::{ArgoCdInstance, Reason};
use crate::model::evaluate::{Observed, Outcome};

/// One instance's memory.
#[derive(Clone, Default)]
pub struct InstanceState {
    /// The UID of the object this memory is of: an instance deleted and re-created under the
    /// same name (maybe while the watch was away) starts afresh.
    pub uid: Option<String>,
    /// The client and the fingerprint of the settings it was built from.
    pub client: Option<(u64, Arc<argocd::Client>)>,
    /// The last successful check.
    pub observed: Option<Arc<Observed>>,
    /// The last check's failure, if it failed.
    pub last_failure: Option<(Reason, String)>,
    /// Failures in a row.
    pub failures: u32,
    /// How long the last check that ended took (its lane, see `slots`).
    pub last_check: Option<Duration>,
    pub next_check: Option<Instant>,
    pub checked_generation: Option<i64>,
    pub handled_refresh: Option<String>,
    /// When the last check a refresh asked for was recorded: the next one waits
    /// [`REFRESH_FLOOR`] after it.
    pub refreshed_at: Option<Instant>,
    /// The Secrets' versions at the last check: any change of them checks at once.
    pub checked_secrets: Option<String>,
    /// The last check's login was refused: no login is tried again before `next_check`
    /// unless the credentials change (a spec change or a refresh does not hasten it).
    pub login_refused: bool,
    /// Watch mode: the task following the application stream.
    pub follower: Option<Arc<Follower>>,
    /// Watch mode: the last successful check (its cluster list), which the stream's changes
    /// are evaluated against between checks.
    pub snapshot: Option<Arc<argocd::Snapshot>>,
    /// Watch mode: the [`Followed::version`](super::follow::Followed) last evaluated.
    pub evaluated_stream_version: u64,
}

/// The least time between two checks that refresh annotations ask for: a tenant writing a new
/// `argomap.io/refresh-requested-at` value every second gets a check (and a status write) every
/// 5 s at most; a single refresh is still checked at once.
pub const REFRESH_FLOOR: Duration = Duration::from_secs(5);

/// A failed check: its reason and message, and whether Argo CD refused a login.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
    pub login_refused: bool,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure { reason, message: message.into(), login_refused: false }
    }
}

/// What a reconcile knows of the instance when it decides.
#[derive(Clone, Debug, Default)]
pub struct DecisionInputs {
    pub generation: Option<i64>,
    /// The refresh annotation's value.
    pub refresh: Option<String>,
    pub suspended: bool,
    /// Fingerprint of the credentials, URL and TLS settings; `None` when they could not be read.
    pub fingerprint: Option<u64>,
    /// Versions of the referenced Secrets (see [`super::credentials::version`]).
    pub secrets: String,
}

/// What this reconcile does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Suspended: no check, the state is dropped.
    Suspend,
    /// Argo CD is polled. `connect`: a new client is built first (none yet, or the settings
    /// changed); `credentials_changed`: it replaces one (worth an event).
    Poll { connect: bool, credentials_changed: bool },
    /// Nothing is due: the statuses are recomputed from the last check.
    Recompute,
}

/// Decides whether Argo CD is polled: when the timer is due, the spec changed, a new refresh
/// was asked for, or the credentials changed (checked at once with the new ones).
pub fn decide(state: &InstanceState, t: &DecisionInputs, now: Instant) -> Plan {
    if t.suspended {
        return Plan::Suspend;
    }
    let client_matches = match (t.fingerprint, &state.client) {
        (Some(fp), Some((current, _))) => fp == *current,
        _ => false,
    };
    let connect = t.fingerprint.is_some() && !client_matches;
    // A referenced Secret was created, changed, deleted or (un)labelled since the last check.
    let secrets_changed = state.checked_secrets.as_ref().is_some_and(|v| *v != t.secrets);
    // The Secret became unreadable: say so at once, even to a refused login's wait.
    let credentials_lost = t.fingerprint.is_none() && state.client.is_some();
    let timer_due = state.next_check.is_none_or(|at| at <= now);
    if state.login_refused && !connect && !credentials_lost && !timer_due {
        return Plan::Recompute;
    }
    let due = timer_due
        || state.checked_generation != t.generation
        || (refresh_pending(state, t) && state.refreshed_at.is_none_or(|at| now >= at + REFRESH_FLOOR))
        || connect
        || credentials_lost
        || secrets_changed;
    if due {
        Plan::Poll { connect, credentials_changed: connect && state.client.is_some() }
    } else {
        Plan::Recompute
    }
}

/// A refresh annotation value not handled yet.
pub fn refresh_pending(state: &InstanceState, t: &DecisionInputs) -> bool {
    t.refresh.is_some() && t.refresh != state.handled_refresh
}

impl InstanceState {
    /// When a refresh not handled yet may be checked (`None`: none is waiting).
    pub fn refresh_at(&self, t: &DecisionInputs) -> Option<Instant> {
        refresh_pending(self, t).then(|| self.refreshed_at.map(|at| at + REFRESH_FLOOR)).flatten()
    }

    /// Records a check's result and schedules the next one; returns the outcome to evaluate.
    pub fn record(
        &mut self,
        result: Result<Observed, Failure>,
        t: &DecisionInputs,
        interval: Duration,
        now: Instant,
    ) -> Outcome {
        self.checked_generation = t.generation;
        if refresh_pending(self, t) {
            self.refreshed_at = Some(now);
        }
        self.handled_refresh = t.refresh.clone();
        self.checked_secrets = Some(t.secrets.clone());
        match result {
            Ok(observed) => {
                let observed = Arc::new(observed);
                self.observed = Some(observed.clone());
                self.last_failure = None;
                self.failures = 0;
                self.login_refused = false;
                self.next_check = Some(now + backoff::spread(interval));
                Outcome::Observed { observed, fresh: true }
            }
            Err(Failure { reason, mut message, login_refused }) => {
                self.failures += 1;
                self.login_refused = login_refused;
                let wait = if login_refused {
                    message.push_str(
                        "; argomap logs in again when the credentials Secret changes, or in 5 minutes",
                    );
                    backoff::check_retry(self.failures, interval).max(backoff::LOGIN_RETRY)
                } else {
                    backoff::check_retry(self.failures, interval)
                };
                self.next_check = Some(now + wait);
                self.last_failure = Some((reason, message.clone()));
                Outcome::Failed { reason, message, fresh: true }
            }
        }
    }

    /// The last check's outcome, re-evaluated without a poll.
    pub fn last_outcome(&self) -> Outcome {
        match (&self.last_failure, &self.observed) {
            (Some((reason, message)), _) => {
                Outcome::Failed { reason: *reason, message: message.clone(), fresh: false }
            }
            (None, Some(observed)) => Outcome::Observed { observed: observed.clone(), fresh: false },
            (None, None) => Outcome::Failed { reason: Reason::Pending, message: String::new(), fresh: false },
        }
    }
}

/// Every instance's state, behind one lock that is never held across an await.
#[derive(Clone, Default)]
pub struct States(Arc<Mutex<HashMap<ObjectRef<ArgoCdInstance>, InstanceState>>>);

impl States {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ArgoCdInstance>, InstanceState>> {
        // A panic while holding the lock cannot leave the map inconsistent: take it as it is.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of the state of the instance with this UID (cheap: clients and observations
    /// are shared); a fresh one when there is none, or it was another object's of that name.
    pub fn get(&self, key: &ObjectRef<ArgoCdInstance>, uid: Option<&str>) -> InstanceState {
        match self.lock().get(key) {
            Some(s) if s.uid.as_deref() == uid => s.clone(),
            _ => InstanceState { uid: uid.map(str::to_owned), ..Default::default() },
        }
    }

    /// Keeps the instances `keep` says yes to; returns the others, forgotten.
    pub fn retain(
        &self,
        keep: impl Fn(&ObjectRef<ArgoCdInstance>) -> bool,
    ) -> Vec<ObjectRef<ArgoCdInstance>> {
        let mut states = self.lock();
        let gone: Vec<_> = states.keys().filter(|k| !keep(k)).cloned().collect();
        for key in &gone {
            states.remove(key);
        }
        gone
    }

    /// Stores the state; `None` forgets the instance.
    pub fn put(&self, key: &ObjectRef<ArgoCdInstance>, state: Option<InstanceState>) {
        let mut states = self.lock();
        match state {
            Some(s) => states.insert(key.clone(), s),
            None => states.remove(key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(now: Instant) -> InstanceState {
        let mut s = InstanceState::default();
        let t = DecisionInputs { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        s.record(Err(Failure::new(Reason::Timeout, "slow")), &t, Duration::from_secs(60), now);
        s
    }

    #[test]
    fn nothing_due_recomputes() {
        let now = Instant::now();
        let mut s = checked(now);
        let t = DecisionInputs { generation: Some(1), fingerprint: None, ..Default::default() };
        assert_eq!(decide(&s, &t, now), Plan::Recompute);
        s.next_check = Some(now);
        assert_eq!(decide(&s, &t, now), Plan::Poll { connect: false, credentials_changed: false });
    }

    #[test]
    fn spec_refresh_and_credentials_make_a_check_due() {
        let now = Instant::now();
        let s = checked(now);
        let spec = DecisionInputs { generation: Some(2), ..Default::default() };
        assert!(matches!(decide(&s, &spec, now), Plan::Poll { .. }));
        let refresh =
            DecisionInputs { generation: Some(1), refresh: Some("now".into()), ..Default::default() };
        assert!(matches!(decide(&s, &refresh, now), Plan::Poll { .. }));
        let first = DecisionInputs { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        assert_eq!(decide(&s, &first, now), Plan::Poll { connect: true, credentials_changed: false });
        let suspended = DecisionInputs { suspended: true, ..first };
        assert_eq!(decide(&s, &suspended, now), Plan::Suspend);
    }

    #[test]
    fn refreshes_in_a_row_wait_for_the_floor() {
        let now = Instant::now();
        let mut s = checked(now);
        let first = DecisionInputs { generation: Some(1), refresh: Some("r-1".into()), ..Default::default() };
        assert!(matches!(decide(&s, &first, now), Plan::Poll { .. }), "a single refresh: at once");
        s.record(Err(Failure::new(Reason::Timeout, "slow")), &first, Duration::from_secs(60), now);
        let second = DecisionInputs { refresh: Some("r-2".into()), ..first };
        let soon = now + Duration::from_secs(1);
        assert_eq!(decide(&s, &second, soon), Plan::Recompute, "a second after the last refresh");
        assert_eq!(s.refresh_at(&second), Some(now + REFRESH_FLOOR), "and is checked then");
        assert!(matches!(decide(&s, &second, now + REFRESH_FLOOR), Plan::Poll { .. }));
        // A spec change is not held back.
        let spec = DecisionInputs { generation: Some(2), ..second.clone() };
        assert!(matches!(decide(&s, &spec, soon), Plan::Poll { .. }));
        // A refresh already handled waits for nothing.
        let handled = DecisionInputs { refresh: Some("r-1".into()), ..second };
        assert_eq!(s.refresh_at(&handled), None);
    }

    #[test]
    fn a_refused_login_waits_for_new_credentials_or_five_minutes() {
        let now = Instant::now();
        let mut s = InstanceState::default();
        let t = DecisionInputs { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        let refused =
            Failure { login_refused: true, ..Failure::new(Reason::AuthenticationFailed, "refused") };
        s.client = None;
        let outcome = s.record(Err(refused), &t, Duration::from_secs(60), now);
        assert_eq!(s.next_check, Some(now + backoff::LOGIN_RETRY));
        match outcome {
            Outcome::Failed { message, .. } => assert!(message.contains("in 5 minutes"), "{message}"),
            other => panic!("unexpected {other:?}"),
        }
        // Pretend the client for fingerprint 7 is kept, as the controller does.
        s.client = Some((7, std::sync::Arc::new(test_client())));
        let later = now + Duration::from_secs(60);
        assert_eq!(decide(&s, &t, later), Plan::Recompute, "the timer is not due");
        let spec = DecisionInputs { generation: Some(2), ..t.clone() };
        assert_eq!(decide(&s, &spec, later), Plan::Recompute, "a spec change does not hasten a login");
        let refresh = DecisionInputs { refresh: Some("now".into()), ..t.clone() };
        assert_eq!(decide(&s, &refresh, later), Plan::Recompute, "nor does a refresh");
        let rotated = DecisionInputs { fingerprint: Some(8), ..t.clone() };
        assert_eq!(decide(&s, &rotated, later), Plan::Poll { connect: true, credentials_changed: true });
        assert!(matches!(decide(&s, &t, now + backoff::LOGIN_RETRY), Plan::Poll { .. }), "after 5 minutes");
    }

    #[test]
    fn a_secret_that_goes_and_comes_back_is_checked_at_once_both_times() {
        let now = Instant::now();
        let mut s = InstanceState::default();
        let t = DecisionInputs { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        s.record(Ok(observed()), &t, Duration::from_secs(300), now);
        s.client = Some((7, std::sync::Arc::new(test_client())));
        let soon = now + Duration::from_secs(1);
        assert_eq!(decide(&s, &t, soon), Plan::Recompute, "nothing due");
        let deleted = DecisionInputs { fingerprint: None, ..t.clone() };
        assert_eq!(decide(&s, &deleted, soon), Plan::Poll { connect: false, credentials_changed: false });
        // The reconcile drops the client when the credentials cannot be read.
        s.client = None;
        s.record(
            Err(Failure::new(Reason::CredentialsNotFound, "gone")),
            &deleted,
            Duration::from_secs(300),
            soon,
        );
        assert_eq!(decide(&s, &deleted, soon), Plan::Recompute, "still gone: backing off");
        // Re-created with the very same token: connect and check at once.
        assert_eq!(decide(&s, &t, soon), Plan::Poll { connect: true, credentials_changed: false });
        // Changed but still unusable (a wrong key): its new version checks at once too.
        let wrong_key = DecisionInputs { secrets: "argocd-readonly:u2/2".into(), ..deleted.clone() };
        assert_eq!(decide(&s, &wrong_key, soon), Plan::Poll { connect: false, credentials_changed: false });
    }

    fn observed() -> Observed {
        Observed {
            destinations: Default::default(),
            version: None,
            credentials_expire_at: None,
            can_get_clusters: None,
            can_get_applications: None,
        }
    }

    fn test_client() -> argocd::Client {
        argocd::Client::new(
            argocd::ClientConfig::new(
                "https://argocd.example.com",
                argocd::Credentials::Token(secrecy::SecretString::from("a.b.c")),
                Duration::from_secs(1),
            )
            .with_max_response_bytes(1024),
        )
        .expect("client")
    }

    #[test]
    fn a_failure_is_remembered_and_backs_off() {
        let now = Instant::now();
        let s = checked(now);
        assert_eq!(s.failures, 1);
        assert_eq!(s.next_check, Some(now + Duration::from_secs(5)));
        assert!(matches!(s.last_outcome(), Outcome::Failed { reason: Reason::Timeout, fresh: false, .. }));
        assert!(matches!(
            InstanceState::default().last_outcome(),
            Outcome::Failed { reason: Reason::Pending, .. }
        ));
    }

    #[test]
    fn a_recreated_instance_starts_afresh_and_a_relist_prunes() {
        let states = States::default();
        let key = ObjectRef::new("prod").within("ns");
        let mut s = states.get(&key, Some("uid-1"));
        s.failures = 3;
        states.put(&key, Some(s));
        assert_eq!(states.get(&key, Some("uid-1")).failures, 3);
        assert_eq!(states.get(&key, Some("uid-2")).failures, 0, "same name, another object");
        let other = ObjectRef::new("gone").within("ns");
        states.put(&other, Some(InstanceState::default()));
        assert_eq!(states.retain(|k| k.name == "prod"), vec![other]);
        assert_eq!(states.get(&key, Some("uid-1")).failures, 3);
    }
}
