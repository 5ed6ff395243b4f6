//! The Argo CD REST client: two list calls per check (clusters, projected applications), the
//! version once per connection, a session login only when credentials are a username and
//! password, and every answer checked to be JSON of bounded size before it is decoded.

pub mod error;
pub mod jwt;
pub mod tls;
pub mod types;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

pub use error::{ArgoCdError, ErrorKind};
pub use tls::TlsSettings;
use types::{
    Application, ApplicationList, CanIResponse, Cluster, ClusterList, ErrorBody, SessionResponse,
    VersionMessage,
};

/// Default cap on one response body (decompressed).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;
/// Cap on the body of an error answer: only its message is read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Log in again when the session JWT has less than this left.
const SESSION_RENEW_BEFORE: Duration = Duration::from_secs(300);

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
}

/// What one check read from Argo CD.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: Option<String>,
    pub clusters: Vec<Cluster>,
    pub applications: Vec<Application>,
    /// Answer of `can-i clusters get`, asked only when the cluster list is empty while
    /// applications name destinations.
    pub can_get_clusters: Option<bool>,
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

struct Session {
    token: SecretString,
    issued_at: Timestamp,
    expires_at: Option<Timestamp>,
}

/// Whether a session JWT should be replaced: 5 minutes before it expires, or after 80% of its
/// lifetime for short-lived sessions, whichever comes later.
pub fn session_needs_renewal(issued_at: Timestamp, expires_at: Option<Timestamp>, now: Timestamp) -> bool {
    let Some(exp) = expires_at else { return false };
    let lifetime = exp.as_second() - issued_at.as_second();
    let renew_at = (exp.as_second() - SESSION_RENEW_BEFORE.as_secs() as i64)
        .max(issued_at.as_second() + lifetime * 4 / 5);
    now.as_second() >= renew_at
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    timeout: Duration,
    max_response_bytes: usize,
    session: Mutex<Option<Session>>,
    version: Mutex<Option<String>>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ArgoCdError> {
        let parsed =
            url::Url::parse(config.url.trim()).map_err(|e| ArgoCdError::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ArgoCdError::InvalidUrl("the URL must be http:// or https:// with a host".into()));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ArgoCdError::InvalidUrl("the URL must not carry user info".into()));
        }
        let tls = tls::client_config(&config.tls).map_err(ArgoCdError::TlsSetup)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("argomap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ArgoCdError::TlsSetup(e.to_string()))?;
        Ok(Client {
            http,
            base: config.url.trim().trim_end_matches('/').to_string(),
            credentials: config.credentials,
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            session: Mutex::new(None),
            version: Mutex::new(None),
        })
    }

    /// One check: version (once per connection), clusters, projected applications, and the
    /// permission question when the cluster list looks hidden.
    pub async fn snapshot(&self, observer: &dyn RequestObserver) -> Result<Snapshot, ArgoCdError> {
        let result = self.snapshot_inner(observer).await;
        if result.is_err() {
            // Ask again next time: the server may have been replaced or upgraded meanwhile.
            *self.version.lock().await = None;
        }
        result
    }

    async fn snapshot_inner(&self, observer: &dyn RequestObserver) -> Result<Snapshot, ArgoCdError> {
        let version = self.version(observer).await?;
        let clusters: ClusterList = self.get_authed("clusters", "/api/v1/clusters", observer).await?;
        let fields = applications_fields(version.as_deref());
        let path = format!("/api/v1/applications?fields={fields}");
        let apps: ApplicationList = self.get_authed("applications", &path, observer).await?;
        let clusters = clusters.items.unwrap_or_default();
        let applications = apps.items.unwrap_or_default();

        let names_destinations = applications.iter().any(|a| {
            a.destination()
                .is_some_and(|d| d.server.as_deref().is_some_and(|s| !s.is_empty()) || d.name.is_some())
        });
        let can_get_clusters = if clusters.is_empty() && names_destinations {
            match self
                .get_authed::<CanIResponse>("can_i", "/api/v1/account/can-i/clusters/get/*", observer)
                .await
            {
                Ok(answer) => answer.value.map(|v| v == "yes"),
                // Older servers or tokens without account access: the question stays open.
                Err(e) => {
                    tracing::debug!(error = %e, "can-i clusters get could not be asked");
                    None
                }
            }
        } else {
            None
        };
        let credentials_expire_at = match &self.credentials {
            Credentials::Token(t) => jwt::expiry(t.expose_secret()),
            Credentials::Login { .. } => None,
        };
        Ok(Snapshot { version, clusters, applications, can_get_clusters, credentials_expire_at })
    }

    async fn version(&self, observer: &dyn RequestObserver) -> Result<Option<String>, ArgoCdError> {
        let mut cached = self.version.lock().await;
        if cached.is_none() {
            // Sent with credentials: Argo CD then answers the full body, and an anonymous answer
            // carries the version too.
            let bearer = self.bearer(observer).await?;
            let v: VersionMessage =
                self.request("version", Method::GET, "/api/version", Some(&bearer), None, observer).await?;
            *cached = v.version.filter(|s| !s.is_empty());
        }
        Ok(cached.clone())
    }

    /// GET with the bearer token; with username/password, one fresh login and retry on 401.
    async fn get_authed<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        observer: &dyn RequestObserver,
    ) -> Result<T, ArgoCdError> {
        let bearer = self.bearer(observer).await?;
        match self.request(endpoint, Method::GET, path, Some(&bearer), None, observer).await {
            Err(e) if e.is_unauthenticated() && matches!(self.credentials, Credentials::Login { .. }) => {
                *self.session.lock().await = None;
                let bearer = self.bearer(observer).await?;
                self.request(endpoint, Method::GET, path, Some(&bearer), None, observer).await
            }
            other => other,
        }
    }

    /// The bearer token: the API token, or the session JWT (logging in when there is none or it
    /// is about to expire).
    async fn bearer(&self, observer: &dyn RequestObserver) -> Result<SecretString, ArgoCdError> {
        let (username, password) = match &self.credentials {
            Credentials::Token(t) => return Ok(t.clone()),
            Credentials::Login { username, password } => (username, password),
        };
        let mut session = self.session.lock().await;
        let fresh = session
            .as_ref()
            .is_some_and(|s| !session_needs_renewal(s.issued_at, s.expires_at, Timestamp::now()));
        if !fresh {
            let body = serde_json::json!({"username": username, "password": password.expose_secret()});
            let answer: Result<SessionResponse, _> =
                self.request("session", Method::POST, "/api/v1/session", None, Some(body), observer).await;
            let answer = answer.map_err(|e| match e {
                ArgoCdError::Unauthenticated { message, .. } => {
                    ArgoCdError::LoginFailed { status: 401, message }
                }
                ArgoCdError::UnexpectedStatus { status, message, .. } if (400..500).contains(&status) => {
                    ArgoCdError::LoginFailed { status, message }
                }
                other => other,
            })?;
            let token = answer.token.filter(|t| !t.is_empty()).ok_or_else(|| ArgoCdError::Decode {
                endpoint: "session",
                detail: "the session answer has no token".into(),
            })?;
            let expires_at = jwt::expiry(&token);
            *session =
                Some(Session { token: SecretString::from(token), issued_at: Timestamp::now(), expires_at });
        }
        match session.as_ref() {
            Some(s) => Ok(s.token.clone()),
            None => Err(ArgoCdError::LoginFailed { status: 0, message: "no session".into() }),
        }
    }

    async fn request<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        bearer: Option<&SecretString>,
        body: Option<serde_json::Value>,
        observer: &dyn RequestObserver,
    ) -> Result<T, ArgoCdError> {
        let started = Instant::now();
        let result = self.request_inner(endpoint, method, path, bearer, body).await;
        let code = match &result {
            Ok(_) => "200".to_string(),
            Err(e) => error_code(e),
        };
        observer.observe(endpoint, &code, started.elapsed());
        result
    }

    async fn request_inner<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        method: Method,
        path: &str,
        bearer: Option<&SecretString>,
        body: Option<serde_json::Value>,
    ) -> Result<T, ArgoCdError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        req = req.header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(token) = bearer {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
                    ArgoCdError::UnexpectedStatus {
                        endpoint,
                        status: 0,
                        message: "the token contains characters that cannot be sent in a header".into(),
                    }
                })?;
            value.set_sensitive(true);
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        if let Some(body) = body {
            req =
                req.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport_error(endpoint, &e))?;
        let status = resp.status();
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !status.is_success() {
            let bytes = self.read_capped(endpoint, resp, MAX_ERROR_BODY, false).await?;
            return Err(status_error(endpoint, status, &bytes));
        }
        // Checked before reading: a wrong base URL answers the UI's HTML with 200.
        if !content_type.starts_with("application/json") {
            return Err(ArgoCdError::NotJson { endpoint, status: status.as_u16(), content_type });
        }
        let bytes = self.read_capped(endpoint, resp, self.max_response_bytes, true).await?;
        serde_json::from_slice(&bytes).map_err(|e| ArgoCdError::Decode { endpoint, detail: e.to_string() })
    }

    /// Reads the body chunk by chunk and stops at `limit`: a hostile or misconfigured server
    /// cannot make argomap buffer more (gzip is decoded before counting).
    async fn read_capped(
        &self,
        endpoint: &'static str,
        mut resp: reqwest::Response,
        limit: usize,
        fail_on_limit: bool,
    ) -> Result<Vec<u8>, ArgoCdError> {
        let mut buf = Vec::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| self.transport_error(endpoint, &e))?;
            let Some(chunk) = chunk else { break };
            if buf.len() + chunk.len() > limit {
                if fail_on_limit {
                    return Err(ArgoCdError::TooLarge { endpoint, limit });
                }
                let room = limit - buf.len();
                buf.extend_from_slice(&chunk[..room]);
                break;
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn transport_error(&self, endpoint: &'static str, e: &reqwest::Error) -> ArgoCdError {
        if e.is_timeout() {
            return ArgoCdError::Timeout { endpoint, timeout_secs: self.timeout.as_secs() };
        }
        if let Some(detail) = tls_cause(e) {
            return ArgoCdError::Tls { endpoint, detail };
        }
        if e.is_decode() || e.is_body() {
            return ArgoCdError::Decode { endpoint, detail: chain(e) };
        }
        ArgoCdError::Connect { endpoint, detail: chain(e) }
    }
}

/// The `fields` projection: only what attribution needs. Argo CD before v3.5 ignores the
/// `spec.*` sub-keys (it would return no destination), so older or unknown versions get the
/// portable `items.spec`. Never a key together with its parent (v3.5.x fails at random then).
pub fn applications_fields(version: Option<&str>) -> &'static str {
    const NARROW: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination";
    const PORTABLE: &str = "items.metadata.name,items.metadata.namespace,items.spec";
    match version.and_then(parse_version) {
        Some((major, minor)) if (major, minor) >= (3, 5) => NARROW,
        _ => PORTABLE,
    }
}

/// `v3.5.1+109ca7c` → (3, 5). Lenient: leading `v`, build metadata and pre-release cut off.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let core = v.trim().trim_start_matches('v');
    let core = core.split(['+', '-']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn status_error(endpoint: &'static str, status: StatusCode, body: &[u8]) -> ArgoCdError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let message = parsed
        .and_then(|b| b.message.filter(|m| !m.is_empty()).or(b.error))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    let message = crate::text::cap(&message);
    let code = status.as_u16();
    match status {
        StatusCode::UNAUTHORIZED => ArgoCdError::Unauthenticated { endpoint, message },
        StatusCode::FORBIDDEN => ArgoCdError::Forbidden { endpoint, message },
        s if s.is_server_error() => ArgoCdError::ServerError { endpoint, status: code, message },
        StatusCode::NOT_FOUND => ArgoCdError::UnexpectedStatus {
            endpoint,
            status: code,
            message: format!(
                "{message}: is spec.url the base URL of the Argo CD server (including its --rootpath)?"
            ),
        },
        _ => ArgoCdError::UnexpectedStatus { endpoint, status: code, message },
    }
}

/// The HTTP status for metrics, or a fixed word when there was none.
fn error_code(e: &ArgoCdError) -> String {
    match e {
        ArgoCdError::Unauthenticated { .. } => "401".into(),
        ArgoCdError::Forbidden { .. } => "403".into(),
        ArgoCdError::LoginFailed { status, .. }
        | ArgoCdError::ServerError { status, .. }
        | ArgoCdError::UnexpectedStatus { status, .. }
        | ArgoCdError::NotJson { status, .. } => status.to_string(),
        ArgoCdError::Timeout { .. } => "timeout".into(),
        ArgoCdError::Tls { .. } | ArgoCdError::TlsSetup(_) => "tls".into(),
        ArgoCdError::Connect { .. } => "connect".into(),
        ArgoCdError::Decode { .. } | ArgoCdError::TooLarge { .. } | ArgoCdError::InvalidUrl(_) => {
            "invalid".into()
        }
    }
}

/// Finds a rustls error in the source chain. hyper wraps it in nested `io::Error`s, whose
/// `source()` skips the wrapped error, so those are opened with `get_ref()`.
fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The error and its causes on one line; reqwest's own text names the URL, never a header.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut current = e.source();
    while let Some(err) = current {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        current = err.source();
    }
    crate::text::cap(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_renew_near_expiry() {
        let t = |s: i64| Timestamp::from_second(s).expect("ts");
        // A 24 h session: renewed 5 minutes before it ends.
        let day = Some(t(86_400));
        assert!(!session_needs_renewal(t(0), day, t(86_400 - 301)));
        assert!(session_needs_renewal(t(0), day, t(86_400 - 300)));
        // A 60 s session: renewed after 48 s, not at once.
        let minute = Some(t(60));
        assert!(!session_needs_renewal(t(0), minute, t(0)));
        assert!(!session_needs_renewal(t(0), minute, t(47)));
        assert!(session_needs_renewal(t(0), minute, t(48)));
        // Expired, or no expiry at all.
        assert!(session_needs_renewal(t(100), Some(t(50)), t(100)));
        assert!(!session_needs_renewal(t(0), None, t(1_000_000)));
    }

    #[test]
    fn version_parsing_is_lenient() {
        assert_eq!(parse_version("v3.5.1+109ca7c"), Some((3, 5)));
        assert_eq!(parse_version("v3.6.0-rc1"), Some((3, 6)));
        assert_eq!(parse_version("2.14.16"), Some((2, 14)));
        assert_eq!(parse_version("v3.6.0+unknown.dirty"), Some((3, 6)));
        assert_eq!(parse_version("garbage"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn projection_follows_the_version() {
        assert!(applications_fields(Some("v3.5.1+109ca7c")).contains("items.spec.destination"));
        assert!(applications_fields(Some("v4.0.0")).contains("items.spec.destination"));
        let old = applications_fields(Some("v3.4.9"));
        assert!(old.ends_with("items.spec") && !old.contains("items.spec.destination"));
        assert_eq!(applications_fields(None), old);
    }

    #[test]
    fn error_bodies_become_reasons() {
        let body = br#"{"error":"invalid session: token has invalid claims: token is expired","code":16,"message":"invalid session: token has invalid claims: token is expired"}"#;
        let e = status_error("clusters", StatusCode::UNAUTHORIZED, body);
        assert_eq!(e.category(), "AuthenticationFailed");
        assert!(e.to_string().contains("token is expired"));
        let e = status_error("clusters", StatusCode::FORBIDDEN, br#"{"message":"permission denied"}"#);
        assert_eq!(e.category(), "InsufficientPermissions");
        let e = status_error("clusters", StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(e.category(), "Unreachable");
        assert!(e.to_string().contains("Bad Gateway"));
        let e = status_error("clusters", StatusCode::NOT_FOUND, b"Not Found");
        assert_eq!(e.category(), "InvalidResponse");
        assert!(e.to_string().contains("rootpath"));
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials::Token(SecretString::from("eyJ.secret.sig"));
        assert!(!format!("{c:?}").contains("secret"));
        let c = Credentials::Login { username: "ops".into(), password: SecretString::from("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn urls_with_user_info_are_refused() {
        let cfg = |url: &str| ClientConfig {
            url: url.into(),
            credentials: Credentials::Token(SecretString::from("a.b.c")),
            timeout: Duration::from_secs(1),
            tls: TlsSettings::default(),
            max_response_bytes: 1024,
        };
        assert!(matches!(
            Client::new(cfg("https://u:p@argocd.example.com")),
            Err(ArgoCdError::InvalidUrl(_))
        ));
        assert!(matches!(Client::new(cfg("ftp://argocd.example.com")), Err(ArgoCdError::InvalidUrl(_))));
        assert!(Client::new(cfg("https://argocd.example.com/argocd/")).is_ok());
    }
}
