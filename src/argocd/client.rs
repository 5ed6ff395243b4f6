//! The client: every request carries the bearer token (or the session JWT), has a timeout
//! that covers the body, and its answer is checked to be JSON of bounded size before it is
//! decoded. Two list calls per check, the version once per connection, a login only for
//! username/password credentials. This module says what is asked and when; `transport` holds
//! one exchange (the request, its answer checked and decoded, its failure classified).

mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::decode::Decoded;
use super::error::error_code;
use super::projection::{applications_fields, stream_fields};
use super::session::{Session, session_needs_renewal};
use super::stream::{AppStream, IndexedApplications};
use super::tally::{AppTally, BoundedClusters, TalliedApplications};
use super::types::{CanIResponse, Cluster, SessionResponse, VersionMessage};
use super::{ArgoCdError, ClientConfig, Credentials, RequestObserver, Snapshot, jwt, tls, url_policy};

/// Longest Argo CD version kept (`v3.6.1+abcdef0` is 14 characters).
pub const VERSION_CAP: usize = 64;
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    timeout: Duration,
    max_response_bytes: usize,
    /// Whether applications are read with their health and sync.
    health: bool,
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
        // argomap appends Argo CD's paths to the base URL: a query or fragment in it would let
        // whoever writes the URL choose the path that is really asked for.
        if config.url.contains(['?', '#']) {
            return Err(ArgoCdError::InvalidUrl(
                "the URL must not carry a query (?) or a fragment (#)".into(),
            ));
        }
        let written_ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if written_ip.is_some_and(|ip| config.url_policy.denies(ip)) {
            return Err(ArgoCdError::InvalidUrl(url_policy::DENIED.into()));
        }
        let tls = tls::client_config(&config.tls).map_err(ArgoCdError::TlsSetup)?;
        let mut http = reqwest::Client::builder();
        if !config.url_policy.is_empty() {
            http = http.dns_resolver(Arc::new(url_policy::Resolver { policy: config.url_policy.clone() }));
        }
        let http = http
            // A redirect is reported, never followed: following it would send the token (or the
            // login's password) to wherever the server points.
            .redirect(reqwest::redirect::Policy::none())
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
            health: config.health,
            session: Mutex::new(None),
            version: Mutex::new(None),
        })
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One check: version (once per connection), clusters, projected applications, and the
    /// permission question when the cluster list looks hidden.
    pub async fn snapshot(&self, observer: &dyn RequestObserver) -> Result<Snapshot, ArgoCdError> {
        let result = self.snapshot_inner(None, observer).await;
        if result.is_err() {
            // Ask again next time: the server may have been replaced or upgraded meanwhile.
            *self.version.lock().await = None;
        }
        result
    }

    /// A check in watch mode: as [`Client::snapshot`], with the applications a watch keeps
    /// instead of a list of them.
    pub async fn snapshot_with(
        &self,
        applications: AppTally,
        observer: &dyn RequestObserver,
    ) -> Result<Snapshot, ArgoCdError> {
        let result = self.snapshot_inner(Some(applications), observer).await;
        if result.is_err() {
            *self.version.lock().await = None;
        }
        result
    }

    async fn snapshot_inner(
        &self,
        watched: Option<AppTally>,
        observer: &dyn RequestObserver,
    ) -> Result<Snapshot, ArgoCdError> {
        let version = self.version(observer).await?;
        let clusters: BoundedClusters = self.get_authed("clusters", "/api/v1/clusters", observer).await?;
        let applications = match watched {
            Some(tally) => tally,
            None => {
                let fields = applications_fields(version.as_deref(), self.health);
                let path = format!("/api/v1/applications?fields={fields}");
                let apps: TalliedApplications = self.get_authed("applications", &path, observer).await?;
                apps.items.unwrap_or_default()
            }
        };
        let clusters = clusters.items.unwrap_or_default();

        // A list the token may not fully see is answered as if it were complete (Argo CD drops
        // what RBAC hides, and an empty list is `items: null`): ask can-i whenever a list is
        // empty, or an application names a cluster the cluster list lacks (Argo CD's own rule:
        // the server string without its trailing `/`, or the cluster name).
        let ask_clusters = clusters.is_empty() || !destinations_listed(&clusters, &applications);
        let can_get_clusters = if ask_clusters { self.can_i("clusters", observer).await } else { None };
        let can_get_applications =
            if applications.total == 0 { self.can_i("applications", observer).await } else { None };
        let credentials_expire_at = match &self.credentials {
            Credentials::Token(t) => jwt::expiry(t.expose_secret()),
            Credentials::Login { .. } => None,
        };
        Ok(Snapshot {
            version,
            clusters,
            applications,
            can_get_clusters,
            can_get_applications,
            credentials_expire_at,
        })
    }

    /// The application list as a watch keeps it (per application).
    pub async fn list_index(
        &self,
        observer: &dyn RequestObserver,
    ) -> Result<IndexedApplications, ArgoCdError> {
        let version = self.version(observer).await?;
        let path =
            format!("/api/v1/applications?fields={}", applications_fields(version.as_deref(), self.health));
        self.get_authed("applications", &path, observer).await
    }

    /// Opens the application stream (it begins with an `ADDED` event per application: Argo CD
    /// sends no headers before its first event, so resuming from a resourceVersion would leave
    /// a quiet server silent). `lifetime` bounds the whole request; the caller reopens the
    /// stream before it runs out. The answer comes with the first event.
    pub async fn open_stream(
        &self,
        lifetime: Duration,
        observer: &dyn RequestObserver,
    ) -> Result<AppStream, ArgoCdError> {
        let path = format!("/api/v1/stream/applications?fields={}", stream_fields(self.health));
        let endpoint = "stream_applications";
        let started = Instant::now();
        let mut bearer = self.bearer(observer).await?;
        let mut result = self.open_stream_once(&path, &bearer, lifetime).await;
        if matches!(&result, Err(e) if e.is_unauthenticated())
            && matches!(self.credentials, Credentials::Login { .. })
        {
            *self.session.lock().await = None;
            bearer = self.bearer(observer).await?;
            result = self.open_stream_once(&path, &bearer, lifetime).await;
        }
        let code = match &result {
            Ok(_) => "2xx",
            Err(e) => error_code(e),
        };
        observer.observe(endpoint, code, started.elapsed());
        result.map_err(|e| e.redacted(&self.secrets(Some(&bearer))))
    }

    /// Forgets the session (username/password): the next request logs in again. Used when
    /// the stream says the session ended.
    pub async fn renew_session(&self) {
        *self.session.lock().await = None;
    }

    /// `text` without any credential this client sends.
    pub async fn redact(&self, text: &str) -> String {
        let session = self.session.lock().await.as_ref().map(|s| s.token.clone());
        crate::text::redact(text, &self.secrets(session.as_ref()))
    }

    /// `can-i <resource> get *`: `Some(false)` when the token may not get every item of it.
    async fn can_i(&self, resource: &'static str, observer: &dyn RequestObserver) -> Option<bool> {
        let path = format!("/api/v1/account/can-i/{resource}/get/*");
        match self.get_authed::<CanIResponse>("can_i", &path, observer).await {
            Ok(answer) => answer.value.map(|v| v == "yes"),
            // Older servers or tokens without account access: the question stays open.
            Err(e) => {
                tracing::debug!(error = %e, resource, "can-i could not be asked");
                None
            }
        }
    }

    /// Argo CD's version (`/api/version`), asked once per client.
    async fn version(&self, observer: &dyn RequestObserver) -> Result<Option<String>, ArgoCdError> {
        let mut cached = self.version.lock().await;
        if cached.is_none() {
            // Sent with credentials: Argo CD then answers the full body, and an anonymous answer
            // carries the version too.
            let bearer = self.bearer(observer).await?;
            let v: VersionMessage =
                self.request("version", Method::GET, "/api/version", Some(&bearer), None, observer).await?;
            // Argo CD always names its version, to anyone: an answer without one is not Argo
            // CD's API (a wrong URL, another service answering JSON), and nothing it lists
            // could be trusted.
            let Some(version) = v.version.filter(|s| !s.trim().is_empty()) else {
                return Err(ArgoCdError::Decode {
                    endpoint: "version",
                    detail: "the answer has no \"Version\", which Argo CD always sends: this is not Argo CD's API (check spec.url)".into(),
                });
            };
            // A version is a few dozen characters; a server may send anything.
            *cached = Some(crate::text::printable(&version, VERSION_CAP));
        }
        Ok(cached.clone())
    }

    /// GET with the bearer token; with username/password, one fresh login and retry on 401.
    async fn get_authed<T: Decoded>(
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

    /// Every credential this client sends: the token or password, and the session JWT in use.
    fn secrets(&self, bearer: Option<&SecretString>) -> Vec<String> {
        let mut out: Vec<String> = bearer.map(|b| b.expose_secret().to_owned()).into_iter().collect();
        match &self.credentials {
            Credentials::Token(t) => out.push(t.expose_secret().to_owned()),
            Credentials::Login { password, .. } => out.push(password.expose_secret().to_owned()),
        }
        out
    }
}

/// Whether every application's destination is in the cluster list, compared as Argo CD
/// resolves destinations: the server URL without a trailing `/`, or the cluster name.
fn destinations_listed(clusters: &[Cluster], apps: &AppTally) -> bool {
    let trim = |s: &str| s.trim().trim_end_matches('/').to_string();
    let servers: std::collections::HashSet<String> =
        clusters.iter().filter_map(|c| c.server.as_deref()).map(trim).collect();
    let names: std::collections::HashSet<&str> =
        clusters.iter().filter_map(|c| c.name.as_deref()).map(str::trim).collect();
    apps.servers().all(|s| servers.contains(&trim(s))) && apps.names().all(|n| names.contains(n))
}

#[cfg(test)]
mod tests;
