//! The Argo CD REST client: two list calls per check (clusters, projected applications), the
//! version once per connection, a session login only when credentials are a username and
//! password, and every answer checked to be JSON of bounded size before it is decoded.
//!
//! - `client`: the requests, their caps and timeouts;
//! - `session`: when a username/password session is renewed;
//! - `projection`: the `fields` projection per server version;
//! - `decode`: answers decoded as they arrive (a list item by item), within caps;
//! - `tally`: the application list folded per destination, the cluster list bounded;
//! - `stream`: the application stream (watch mode) and the per-application index it keeps;
//! - `budget`: the byte budget every watch's index and stream charge;
//! - `error`: every failure, of a fixed kind; `types`: the lenient wire types;
//! - `identity`: the labels and annotations that say which cluster an Argo CD cluster is;
//! - `tls`: roots, `serverName`, `insecureSkipVerify`; `jwt`: a token's expiry;
//! - `url_policy`: the networks argomap never connects to (`--deny-url-cidrs`).
//!
//! It knows nothing of CRDs or statuses: the layer above reads its results and error kinds.

pub mod budget;
mod client;
pub mod decode;
pub mod error;
pub mod identity;
pub mod jwt;
pub mod projection;
pub mod session;
pub mod stream;
pub mod tally;
pub mod tls;
pub mod types;
pub mod url_policy;

use std::time::Duration;

use jiff::Timestamp;
use secrecy::SecretString;

pub use client::Client;
pub use error::{ArgoCdError, ErrorKind};
use tally::AppTally;
pub use tls::TlsSettings;
use types::Cluster;
pub use url_policy::UrlPolicy;

/// Default cap on one response body (decompressed).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Credentials read from the instance's Secret.
#[derive(Clone)]
pub enum Credentials {
    Token(SecretString),
    Login { username: String, password: SecretString },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token([redacted])"),
            Credentials::Login { username, .. } => write!(f, "Login({username}, [redacted])"),
        }
    }
}

/// Everything needed to build a client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub url: String,
    pub credentials: Credentials,
    pub timeout: Duration,
    pub tls: TlsSettings,
    pub max_response_bytes: usize,
    /// Networks the client never connects to (`--deny-url-cidrs`; the default denies none).
    pub url_policy: UrlPolicy,
    /// Read each application's health and sync too (`spec.applications.health`).
    pub health: bool,
}

impl ClientConfig {
    /// A client of the Argo CD server at `url` with `credentials`, each request within `timeout`;
    /// answers capped at [`DEFAULT_MAX_RESPONSE_BYTES`], the system roots trusted, and no network
    /// denied. The `with_*` setters change the rest.
    pub fn new(url: impl Into<String>, credentials: Credentials, timeout: Duration) -> Self {
        ClientConfig {
            url: url.into(),
            credentials,
            timeout,
            tls: TlsSettings::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            url_policy: UrlPolicy::default(),
            health: false,
        }
    }

    pub fn with_tls(self, tls: TlsSettings) -> Self {
        ClientConfig { tls, ..self }
    }

    pub fn with_max_response_bytes(self, max_response_bytes: usize) -> Self {
        ClientConfig { max_response_bytes, ..self }
    }

    pub fn with_url_policy(self, url_policy: UrlPolicy) -> Self {
        ClientConfig { url_policy, ..self }
    }

    pub fn with_health(self, health: bool) -> Self {
        ClientConfig { health, ..self }
    }
}

/// What one check read from Argo CD.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: Option<String>,
    pub clusters: Vec<Cluster>,
    /// The application list, folded per destination while it was read.
    pub applications: AppTally,
    /// Answer of `can-i clusters get *`, asked only when the cluster list is empty or lacks
    /// a destination some application names.
    pub can_get_clusters: Option<bool>,
    /// Answer of `can-i applications get *`, asked only when the application list is empty.
    pub can_get_applications: Option<bool>,
    /// `exp` of the API token, when it has one (not for username/password sessions, which
    /// argomap renews itself).
    pub credentials_expire_at: Option<Timestamp>,
}

/// Observes every request (for metrics) without the client knowing about Prometheus.
pub trait RequestObserver: Send + Sync {
    fn observe(&self, endpoint: &'static str, code: &str, elapsed: Duration);
}

impl RequestObserver for () {
    fn observe(&self, _: &'static str, _: &str, _: Duration) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials::Token(SecretString::from("eyJ.secret.sig"));
        assert!(!format!("{c:?}").contains("secret"));
        let c = Credentials::Login { username: "ops".into(), password: SecretString::from("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
