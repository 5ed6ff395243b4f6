//! The client: every request carries the bearer token (or the session JWT), has a timeout
//! that covers the body, and its answer is checked to be JSON of bounded size before it is
//! decoded. Two list calls per check, the version once per connection, a login only for
//! username/password credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::decode::{BodyDecoder, Decoded};
use super::error::{chain, error_code, redirect_error, status_error, tls_cause};
use super::projection::applications_fields;
use super::session::{Session, session_needs_renewal};
use super::stream::{AppStream, IndexedApplications, STREAM_FIELDS};
use super::tally::{AppTally, BoundedClusters, TalliedApplications};
use super::types::{CanIResponse, Cluster, SessionResponse, VersionMessage};
use super::{ArgoCdError, ClientConfig, Credentials, RequestObserver, Snapshot, jwt, tls, url_policy};

/// Cap on the body of an error answer: only its message is read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Longest Argo CD version kept (`v3.6.1+abcdef0` is 14 characters).
pub const VERSION_CAP: usize = 64;
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
                let fields = applications_fields(version.as_deref());
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
        let path = format!("/api/v1/applications?fields={}", applications_fields(version.as_deref()));
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
        let path = format!("/api/v1/stream/applications?fields={STREAM_FIELDS}");
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

    async fn open_stream_once(
        &self,
        path: &str,
        bearer: &SecretString,
        lifetime: Duration,
    ) -> Result<AppStream, ArgoCdError> {
        let endpoint = "stream_applications";
        let req = self
            .http
            .get(format!("{}{}", self.base, path))
            .timeout(lifetime)
            // Server-sent events: Argo CD then sends a keepalive every 15 s (and never gzips).
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
            .header(reqwest::header::AUTHORIZATION, auth_header(endpoint, bearer)?);
        let resp = req.send().await.map_err(|e| self.transport_error(endpoint, &e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            return Err(redirect_error(endpoint, status.as_u16(), resp.url(), path, location));
        }
        if !status.is_success() {
            let bytes = self.read_error_body(endpoint, resp, MAX_ERROR_BODY).await?;
            // An event stream frames its error as one event too.
            let body = bytes.strip_prefix(b"data:").unwrap_or(&bytes);
            return Err(status_error(endpoint, status, body));
        }
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !(content_type.starts_with("text/event-stream") || content_type.starts_with("application/json")) {
            return Err(ArgoCdError::NotJson { endpoint, status: status.as_u16(), content_type });
        }
        Ok(AppStream::new(resp))
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

    async fn request<T: Decoded>(
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
            Ok(_) => "2xx",
            Err(e) => error_code(e),
        };
        observer.observe(endpoint, code, started.elapsed());
        // A server's text may repeat what it was sent: no credential leaves in an error.
        result.map_err(|e| e.redacted(&self.secrets(bearer)))
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

    async fn request_inner<T: Decoded>(
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
            req = req.header(reqwest::header::AUTHORIZATION, auth_header(endpoint, token)?);
        }
        if let Some(body) = body {
            req =
                req.header(CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| self.transport_error(endpoint, &e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok());
            return Err(redirect_error(endpoint, status.as_u16(), resp.url(), path, location));
        }
        let content_type =
            resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !status.is_success() {
            let bytes = self.read_error_body(endpoint, resp, MAX_ERROR_BODY).await?;
            return Err(status_error(endpoint, status, &bytes));
        }
        // Checked before reading: a wrong base URL answers the UI's HTML with 200.
        if !content_type.starts_with("application/json") {
            return Err(ArgoCdError::NotJson { endpoint, status: status.as_u16(), content_type });
        }
        self.decode_streamed(endpoint, resp).await
    }

    /// Decodes the body while it arrives (see [`decode`](super::decode)): memory follows
    /// what the types keep (the application list is folded as it is read), not the size of
    /// the body. Past `max_response_bytes` (counted after gzip decoding) the check fails, and
    /// a body that cannot be what it should stops being read at once.
    async fn decode_streamed<T: Decoded>(
        &self,
        endpoint: &'static str,
        mut resp: reqwest::Response,
    ) -> Result<T, ArgoCdError> {
        let mut decoder = T::Decoder::default();
        let mut read = 0usize;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    read += chunk.len();
                    if read > self.max_response_bytes {
                        return Err(ArgoCdError::TooLarge { endpoint, limit: self.max_response_bytes });
                    }
                    decoder.feed(&chunk).map_err(|detail| ArgoCdError::Decode { endpoint, detail })?;
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport_error(endpoint, &e)),
            }
        }
        decoder.finish().map_err(|detail| ArgoCdError::Decode { endpoint, detail })
    }

    /// The first `limit` bytes of an error answer's body (only its message is read): a hostile
    /// or misconfigured server cannot make argomap buffer more (gzip is decoded before counting).
    async fn read_error_body(
        &self,
        endpoint: &'static str,
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, ArgoCdError> {
        let mut buf = Vec::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| self.transport_error(endpoint, &e))?;
            let Some(chunk) = chunk else { break };
            if buf.len() + chunk.len() > limit {
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
        if source_is::<url_policy::Denied>(e) {
            return ArgoCdError::InvalidUrl(url_policy::DENIED.into());
        }
        if let Some(detail) = tls_cause(e) {
            return ArgoCdError::Tls { endpoint, detail };
        }
        if e.is_decode() || e.is_body() {
            return ArgoCdError::Decode { endpoint, detail: chain(e) };
        }
        // A plain-HTTP server answers a TLS ClientHello with an HTTP 400 and closes, which
        // the handshake sees as a reset (or an early end): name that likely cause.
        if self.base.starts_with("https://") && e.is_connect() && reset_or_eof(e) {
            let plain = self.base.replacen("https://", "http://", 1);
            return ArgoCdError::Tls {
                endpoint,
                detail: format!(
                    "the connection was closed during the TLS handshake ({}): the server most likely speaks plain HTTP on this port (Argo CD with --insecure); if so, set spec.url to {plain}",
                    chain(e)
                ),
            };
        }
        ArgoCdError::Connect { endpoint, detail: connect_words(e) }
    }
}

/// A connection that could not be made, in two classes: the name does not resolve, or nothing
/// answered. Refused, reset, unreachable and timed out are one class in status (they would
/// tell whoever sets `spec.url` which internal ports are open); argomap's debug log keeps
/// which it was.
fn connect_words(e: &reqwest::Error) -> String {
    let full = chain(e);
    tracing::debug!(error = %full, "cannot connect to Argo CD");
    if full.contains("dns error") {
        "the host name does not resolve".to_string()
    } else {
        "no connection could be made (refused, reset, unreachable or timed out; argomap's debug log says which)"
            .to_string()
    }
}

/// `Authorization: Bearer …`, marked sensitive (never logged by the HTTP stack).
fn auth_header(endpoint: &'static str, token: &SecretString) -> Result<HeaderValue, ArgoCdError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).map_err(|_| {
        ArgoCdError::UnexpectedStatus {
            endpoint,
            status: 0,
            message: "the token contains characters that cannot be sent in a header".into(),
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether an error of type `T` is in the chain (I/O errors' inner errors included).
fn source_is<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.is::<T>() {
            return true;
        }
        current = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// Whether an I/O error in the chain is a reset or an unexpected end of stream.
fn reset_or_eof(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof) {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                current = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        current = err.source();
    }
    false
}

/// Whether every application's destination is in the cluster list, compared as Argo CD
/// resolves destinations: the server URL without a trailing `/`, or the cluster name.
fn destinations_listed(clusters: &[Cluster], apps: &AppTally) -> bool {
    let trim = |s: &str| s.trim().trim_end_matches('/').to_string();
    let servers: std::collections::HashSet<String> =
        clusters.iter().filter_map(|c| c.server.as_deref()).map(trim).collect();
    let names: std::collections::HashSet<&str> =
        clusters.iter().filter_map(|c| c.name.as_deref()).map(str::trim).collect();
    apps.by_server.keys().all(|s| servers.contains(&trim(s)))
        && apps.by_name.keys().all(|n| names.contains(n.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::TlsSettings;

    #[test]
    fn destinations_missing_from_the_cluster_list_are_noticed() {
        let clusters: Vec<Cluster> =
            serde_json::from_str(r#"[{"server":"https://a.example.com","name":"a"}]"#).expect("clusters");
        let apps = |json: &str| -> AppTally {
            let apps: Vec<crate::argocd::types::Application> = serde_json::from_str(json).expect("apps");
            AppTally::from_apps(&apps)
        };
        assert!(destinations_listed(
            &clusters,
            &apps(
                r#"[{"spec":{"destination":{"server":"https://a.example.com/"}}},{"spec":{"destination":{"name":"a"}}}]"#
            )
        ));
        assert!(destinations_listed(&clusters, &AppTally::default()));
        assert!(!destinations_listed(
            &clusters,
            &apps(r#"[{"spec":{"destination":{"server":"https://b.example.com"}}}]"#)
        ));
        assert!(!destinations_listed(&clusters, &apps(r#"[{"spec":{"destination":{"name":"b"}}}]"#)));
    }

    #[test]
    fn urls_with_user_info_are_refused() {
        let cfg = |url: &str| ClientConfig {
            url: url.into(),
            credentials: Credentials::Token(SecretString::from("a.b.c")),
            timeout: Duration::from_secs(1),
            tls: TlsSettings::default(),
            max_response_bytes: 1024,
            url_policy: Default::default(),
        };
        assert!(matches!(
            Client::new(cfg("https://u:p@argocd.example.com")),
            Err(ArgoCdError::InvalidUrl(_))
        ));
        assert!(matches!(Client::new(cfg("ftp://argocd.example.com")), Err(ArgoCdError::InvalidUrl(_))));
        for url in [
            "http://host:8080/internal/admin/secret-path?",
            "https://argocd.example.com/x?a=b",
            "https://argocd.example.com/#frag",
        ] {
            assert!(
                matches!(Client::new(cfg(url)), Err(ArgoCdError::InvalidUrl(m)) if m.contains("query")),
                "{url}"
            );
        }
        assert!(Client::new(cfg("https://argocd.example.com/argocd/")).is_ok());
    }
}
