//! Why a reconcile failed (it is retried, backing off per object): the Kubernetes API, a lost
//! Lease, or encoding a status. Failures of Argo CD, and of reading its credentials, are no
//! reconcile errors: they are the check's result, shown in status.

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
