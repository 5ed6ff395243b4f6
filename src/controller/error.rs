//! Why a reconcile failed (it is retried, backing off per object): the Kubernetes API, a lost
//! Lease, or encoding a status. Failures of Argo CD, and of reading its credentials, are no
//! reconcile errors: they are the check's result, shown in status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Leading, but the Lease is not confirmed: writing could overlap a new leader.
    #[error("the Lease is not confirmed as this replica's: nothing is written")]
    NotLeader,
    #[error("cannot serialise status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Fixed label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::NotLeader => "NotLeader",
            Error::Serialize(_) => "SerializeError",
        }
    }
}

/// Failed reconciles in a row, per object, so that a failing Kubernetes API is asked less
/// and less often (5 s doubling up to a cap) instead of every 5 s forever.
#[derive(Default)]
pub struct Retries(Mutex<HashMap<String, u32>>);

impl Retries {
    /// Counts one more failure of `key`; returns the wait before the next try, at most `cap`
    /// (an instance's interval: once the API is back, its reconcile resumes within one).
    pub fn failed(&self, key: String, cap: Duration) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(key).or_default();
        *n = n.saturating_add(1);
        super::state::backoff(*n, cap)
    }

    /// Forgets the failures of `key` (it succeeded, or is gone).
    pub fn succeeded(&self, key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_per_object_and_reset_on_success() {
        let r = Retries::default();
        let cap = Duration::from_secs(300);
        let waits: Vec<u64> = (0..8).map(|_| r.failed("a".into(), cap).as_secs()).collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(r.failed("b".into(), cap).as_secs(), 5, "another object has its own count");
        assert_eq!(r.failed("b".into(), Duration::from_secs(10)).as_secs(), 10, "capped");
        r.succeeded("a");
        assert_eq!(r.failed("a".into(), cap).as_secs(), 5);
    }
}
