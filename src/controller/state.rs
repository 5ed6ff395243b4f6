//! What argomap remembers of each instance between reconciles (in memory only: a restart
//! simply checks once more), and the pure rule that decides from it whether Argo CD is polled.
//! Never the trigger of a reconcile: a ClusterMapping change or a status write alone cannot
//! cause a poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::reflector::ObjectRef;

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
    pub next_check: Option<Instant>,
    pub checked_generation: Option<i64>,
    pub handled_refresh: Option<String>,
}

/// What a reconcile knows of the instance when it decides.
#[derive(Clone, Debug, Default)]
pub struct Trigger {
    pub generation: Option<i64>,
    /// The refresh annotation's value.
    pub refresh: Option<String>,
    pub suspended: bool,
    /// Fingerprint of the credentials, URL and TLS settings; `None` when they could not be read.
    pub fingerprint: Option<u64>,
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
pub fn decide(state: &InstanceState, t: &Trigger, now: Instant) -> Plan {
    if t.suspended {
        return Plan::Suspend;
    }
    let client_matches = match (t.fingerprint, &state.client) {
        (Some(fp), Some((current, _))) => fp == *current,
        _ => false,
    };
    let connect = t.fingerprint.is_some() && !client_matches;
    let due = state.next_check.is_none_or(|at| at <= now)
        || state.checked_generation != t.generation
        || (t.refresh.is_some() && t.refresh != state.handled_refresh)
        || connect;
    if due {
        Plan::Poll { connect, credentials_changed: connect && state.client.is_some() }
    } else {
        Plan::Recompute
    }
}

impl InstanceState {
    /// Records a check's result and schedules the next one; returns the outcome to evaluate.
    pub fn record(
        &mut self,
        result: Result<Observed, (Reason, String)>,
        t: &Trigger,
        interval: Duration,
        now: Instant,
    ) -> Outcome {
        self.checked_generation = t.generation;
        self.handled_refresh = t.refresh.clone();
        match result {
            Ok(observed) => {
                let observed = Arc::new(observed);
                self.observed = Some(observed.clone());
                self.last_failure = None;
                self.failures = 0;
                self.next_check = Some(now + jittered(interval));
                Outcome::Observed { observed, fresh: true }
            }
            Err((reason, message)) => {
                self.last_failure = Some((reason, message.clone()));
                self.failures += 1;
                self.next_check = Some(now + backoff(self.failures, interval));
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

/// The next check after a success: `interval` with ±10% jitter, so instances spread out.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

/// The next check after `failures` failures in a row: 5 s doubling, capped at `interval`.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    Duration::from_secs(5).saturating_mul(1 << exp).min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_the_interval() {
        let i = Duration::from_secs(60);
        let got: Vec<u64> = (1..=6).map(|n| backoff(n, i).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 60, 60]);
        assert_eq!(backoff(1000, i), i);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..1000 {
            let j = jittered(Duration::from_secs(100)).as_secs_f64();
            assert!((90.0..=110.0).contains(&j), "{j}");
        }
    }

    fn checked(now: Instant) -> InstanceState {
        let mut s = InstanceState::default();
        let t = Trigger { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        s.record(Err((Reason::Timeout, "slow".into())), &t, Duration::from_secs(60), now);
        s
    }

    #[test]
    fn nothing_due_recomputes() {
        let now = Instant::now();
        let mut s = checked(now);
        let t = Trigger { generation: Some(1), fingerprint: None, ..Default::default() };
        assert_eq!(decide(&s, &t, now), Plan::Recompute);
        s.next_check = Some(now);
        assert_eq!(decide(&s, &t, now), Plan::Poll { connect: false, credentials_changed: false });
    }

    #[test]
    fn spec_refresh_and_credentials_make_a_check_due() {
        let now = Instant::now();
        let s = checked(now);
        let spec = Trigger { generation: Some(2), ..Default::default() };
        assert!(matches!(decide(&s, &spec, now), Plan::Poll { .. }));
        let refresh = Trigger { generation: Some(1), refresh: Some("now".into()), ..Default::default() };
        assert!(matches!(decide(&s, &refresh, now), Plan::Poll { .. }));
        let first = Trigger { generation: Some(1), fingerprint: Some(7), ..Default::default() };
        assert_eq!(decide(&s, &first, now), Plan::Poll { connect: true, credentials_changed: false });
        let suspended = Trigger { suspended: true, ..first };
        assert_eq!(decide(&s, &suspended, now), Plan::Suspend);
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
