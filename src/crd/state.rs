//! The fixed words of the status: connection state, reason and mapping state. Each is also an
//! event reason or a metric label, so the sets are closed and their strings come from one place
//! (strum, kept equal to serde's names by a test).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Qovery's ArgoCdConnectionStatusEnum.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    JsonSchema,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ConnectionState {
    Connected,
    Error,
}

/// Why a check ended as it did. Fixed set: used as status reason, event reason and metric label.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    JsonSchema,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
pub enum Reason {
    Connected,
    AuthenticationFailed,
    InsufficientPermissions,
    Unreachable,
    Timeout,
    #[serde(rename = "TLSError")]
    #[strum(serialize = "TLSError")]
    TlsError,
    InvalidResponse,
    CredentialsNotFound,
    /// The Secret exists but is not labelled `argomap.io/credentials: "true"`; it was not read.
    CredentialsNotOptedIn,
    /// The Secret's `argomap.io/allowed-urls` annotation does not list `spec.url`: its
    /// credentials were sent nowhere.
    CredentialsNotAllowed,
    /// The Kubernetes API failed a request argomap needed for the check (reading the Secret).
    #[serde(rename = "KubernetesAPIError")]
    #[strum(serialize = "KubernetesAPIError")]
    KubernetesApiError,
    Suspended,
    /// Before the first check finished.
    Pending,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

// Where one ClusterMapping stands (no doc comment: it would become a schema description).
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    JsonSchema,
    strum::IntoStaticStr,
    strum::Display,
    strum::VariantArray,
)]
pub enum MappingState {
    Linked,
    Orphaned,
    Conflict,
    InstanceNotFound,
    Pending,
    Unverified,
    /// The URL or the cluster was left to the ClusterProfile, which cannot give it.
    Unresolved,
}

impl MappingState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::*;

    #[test]
    fn strings_are_the_serde_names() {
        for r in Reason::VARIANTS {
            assert_eq!(serde_json::to_value(r).expect("reason"), serde_json::json!(r.as_str()));
        }
        assert_eq!(Reason::TlsError.as_str(), "TLSError");
        for s in MappingState::VARIANTS {
            assert_eq!(serde_json::to_value(s).expect("state"), serde_json::json!(s.as_str()));
        }
        for c in [ConnectionState::Connected, ConnectionState::Error] {
            assert_eq!(serde_json::to_value(c).expect("state"), serde_json::json!(c.to_string()));
        }
    }
}
