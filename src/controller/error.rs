//! Why a reconcile failed (it is retried): the Kubernetes API, reading credentials, or
//! encoding a status. Failures of Argo CD are no reconcile errors: they are the check's result.

use super::credentials::CredentialsError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Credentials(CredentialsError),
    #[error("cannot serialise status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Fixed label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeError",
            Error::Credentials(e) => e.category(),
            Error::Serialize(_) => "SerializeError",
        }
    }
}
