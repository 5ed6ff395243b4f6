//! Purpose-built types for the few fields argomap reads from Argo CD. Everything else is
//! ignored while decoding (no generic JSON tree), and every field tolerates Argo CD's nulls.

use serde::Deserialize;

use super::decode::{Decoded, Whole};
use super::identity::Recognised;

/// One entry of `GET /api/v1/clusters` (swagger `v1alpha1Cluster`); the list itself is
/// decoded item by item (`tally::BoundedClusters`).
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Cluster {
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub info: Option<ClusterInfo>,
    /// Deprecated copy of `info.connectionState`, read when `info` lacks it (older servers).
    #[serde(default, rename = "connectionState")]
    pub connection_state: Option<ConnectionState>,
    /// The cluster Secret's labels that say which cluster this is (only those: see `identity`).
    #[serde(default)]
    pub labels: Recognised,
    /// Likewise, its annotations.
    #[serde(default)]
    pub annotations: Recognised,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct ClusterInfo {
    #[serde(default, rename = "connectionState")]
    pub connection_state: Option<ConnectionState>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct ConnectionState {
    #[serde(default)]
    pub status: Option<String>,
    /// Argo CD's words on the connection; an argocd-agent principal writes the agent's here
    /// (`Agent: '<name>' is connected with principal`).
    #[serde(default)]
    pub message: Option<String>,
}

impl Cluster {
    fn connection(&self) -> Option<&ConnectionState> {
        let from_info = self.info.as_ref().and_then(|i| i.connection_state.as_ref());
        from_info.or(self.connection_state.as_ref())
    }

    /// Argo CD's connection state for this cluster, if its controller cache has one.
    pub fn connection_status(&self) -> Option<&str> {
        self.connection().and_then(|c| c.status.as_deref()).filter(|s| !s.is_empty())
    }

    /// Argo CD's message on that connection, if any.
    pub fn connection_message(&self) -> Option<&str> {
        self.connection().and_then(|c| c.message.as_deref()).map(str::trim).filter(|s| !s.is_empty())
    }
}

/// `GET /api/v1/applications` with a `fields` projection (swagger `v1alpha1ApplicationList`),
/// owned: for tests and fixtures. The client folds the list as it arrives instead
/// (`tally::TalliedApplications`). `items` is `null` for an empty projected list on older servers.
#[derive(Deserialize, Debug, Default)]
pub struct ApplicationList {
    #[serde(default)]
    pub items: Option<Vec<Application>>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Application {
    #[serde(default)]
    pub metadata: Option<AppMetadata>,
    #[serde(default)]
    pub spec: Option<AppSpec>,
    /// Read only when health is asked for (`spec.applications.health`).
    #[serde(default)]
    pub status: Option<AppStatus>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct AppStatus {
    #[serde(default)]
    pub health: Option<StatusField>,
    #[serde(default)]
    pub sync: Option<StatusField>,
}

/// `status.health` and `status.sync`: argomap reads their `status` only.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct StatusField {
    #[serde(default)]
    pub status: Option<String>,
}

/// An application's `status.health.status` (gitops-engine's values); anything else, and none,
/// is `Unknown`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, strum::VariantArray, strum::IntoStaticStr,
)]
pub enum Health {
    Healthy,
    Progressing,
    Degraded,
    Suspended,
    Missing,
    Unknown,
}

impl Health {
    pub fn from_wire(s: &str) -> Self {
        match s {
            "Healthy" => Health::Healthy,
            "Progressing" => Health::Progressing,
            "Degraded" => Health::Degraded,
            "Suspended" => Health::Suspended,
            "Missing" => Health::Missing,
            _ => Health::Unknown,
        }
    }
}

/// An application's `status.sync.status`; anything else, and none (`""` before the first
/// reconcile), is `Unknown`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, strum::VariantArray, strum::IntoStaticStr,
)]
pub enum Sync {
    Synced,
    OutOfSync,
    Unknown,
}

impl Sync {
    pub fn from_wire(s: &str) -> Self {
        match s {
            "Synced" => Sync::Synced,
            "OutOfSync" => Sync::OutOfSync,
            _ => Sync::Unknown,
        }
    }
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct AppMetadata {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct AppSpec {
    #[serde(default)]
    pub destination: Option<Destination>,
}

/// `spec.destination`: exactly one of `server` and `name` should be set.
#[derive(Deserialize, Debug, Default, Clone, PartialEq)]
pub struct Destination {
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl Application {
    pub fn destination(&self) -> Option<&Destination> {
        self.spec.as_ref().and_then(|s| s.destination.as_ref())
    }

    /// `namespace/name`, for log lines about a single application.
    pub fn key(&self) -> String {
        let m = self.metadata.as_ref();
        let ns = m.and_then(|m| m.namespace.as_deref()).unwrap_or("");
        let name = m.and_then(|m| m.name.as_deref()).unwrap_or("");
        format!("{ns}/{name}")
    }
}

/// `GET /api/version` (capitalised keys; anonymous callers get `Version` only).
#[derive(Deserialize, Debug, Default)]
pub struct VersionMessage {
    #[serde(default, rename = "Version")]
    pub version: Option<String>,
}

/// `POST /api/v1/session`.
#[derive(Deserialize, Debug)]
pub struct SessionResponse {
    #[serde(default)]
    pub token: Option<String>,
}

/// `GET /api/v1/account/can-i/...`: `{"value":"yes"}` or `{"value":"no"}`.
#[derive(Deserialize, Debug, Default)]
pub struct CanIResponse {
    #[serde(default)]
    pub value: Option<String>,
}

/// Argo CD's error body: grpc-gateway `runtimeError` (`message`, and `error` as a string), or
/// on a stream `runtimeStreamError` (`error` an object with its own `message`).
#[derive(Deserialize, Debug, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error: Option<ErrorField>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum ErrorField {
    Text(String),
    Stream {
        #[serde(default)]
        message: Option<String>,
    },
    Other(serde::de::IgnoredAny),
}

impl ErrorField {
    pub fn message(self) -> Option<String> {
        match self {
            ErrorField::Text(s) => Some(s),
            ErrorField::Stream { message } => message.filter(|m| !m.is_empty()),
            ErrorField::Other(_) => None,
        }
    }
}

// The small answers, read whole (within a cap).
impl Decoded for VersionMessage {
    type Decoder = Whole<Self>;
}
impl Decoded for SessionResponse {
    type Decoder = Whole<Self>;
}
impl Decoded for CanIResponse {
    type Decoder = Whole<Self>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nulls_and_missing_fields_decode() {
        let c: Cluster = serde_json::from_str(
            r#"{"server":"https://a","name":"","config":{"tlsClientConfig":{"insecure":false}},
                "connectionState":{"status":"","message":"","attemptedAt":null},
                "info":{"connectionState":{"status":"","message":"","attemptedAt":null},"cacheInfo":{},"applicationsCount":0}}"#,
        )
        .expect("decode");
        assert_eq!(c.connection_status(), None);
        let c: Cluster = serde_json::from_str(r#"{"server":null,"name":null,"info":null}"#).expect("decode");
        assert_eq!(c.server, None);
    }

    #[test]
    fn deprecated_connection_state_is_a_fallback() {
        let c: Cluster =
            serde_json::from_str(r#"{"server":"https://a","connectionState":{"status":"Failed"}}"#)
                .expect("decode");
        assert_eq!(c.connection_status(), Some("Failed"));
        let c: Cluster = serde_json::from_str(
            r#"{"server":"https://a","connectionState":{"status":"Failed"},"info":{"connectionState":{"status":"Successful"}}}"#,
        )
        .expect("decode");
        assert_eq!(c.connection_status(), Some("Successful"));
    }

    #[test]
    fn application_list_items_null() {
        let l: ApplicationList =
            serde_json::from_str(r#"{"metadata":{"resourceVersion":"1"},"items":null}"#).expect("decode");
        assert!(l.items.is_none());
    }
}
