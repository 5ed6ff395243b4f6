//! Every way a request to Argo CD can fail, each of one fixed [`ErrorKind`]. The client knows
//! nothing of statuses: the layer above turns a kind into a status reason.

use reqwest::StatusCode;

use super::types::{ErrorBody, ErrorField};

#[derive(Debug, thiserror::Error)]
pub enum ArgoCdError {
    #[error("Argo CD rejected the credentials on {endpoint} (HTTP 401): {message}")]
    Unauthenticated { endpoint: &'static str, message: String },
    #[error("login to Argo CD failed (HTTP {status}): {message}{}", lockout_hint(*.status))]
    LoginFailed { status: u16, message: String },
    #[error("Argo CD denied access on {endpoint} (HTTP 403): {message}")]
    Forbidden { endpoint: &'static str, message: String },
    #[error("cannot connect to Argo CD on {endpoint}: {detail}")]
    Connect { endpoint: &'static str, detail: String },
    #[error("Argo CD did not answer {endpoint} within {timeout_secs}s")]
    Timeout { endpoint: &'static str, timeout_secs: u64 },
    #[error("TLS failure talking to Argo CD on {endpoint}: {detail}")]
    Tls { endpoint: &'static str, detail: String },
    #[error("TLS set-up failed: {0}")]
    TlsSetup(String),
    #[error("Argo CD answered {endpoint} with HTTP {status}: {message}")]
    ServerError { endpoint: &'static str, status: u16, message: String },
    #[error(
        "{endpoint} answered HTTP {status} with content type {content_type:?}, not JSON: is spec.url the base URL of the Argo CD server (including its --rootpath)?"
    )]
    NotJson { endpoint: &'static str, status: u16, content_type: String },
    #[error("{endpoint} answered HTTP {status}: {message}")]
    UnexpectedStatus { endpoint: &'static str, status: u16, message: String },
    #[error("{endpoint} answered with a body that is not the expected JSON: {detail}")]
    Decode { endpoint: &'static str, detail: String },
    #[error(
        "{endpoint} answered with more than {limit} bytes; raise --max-response-bytes if this Argo CD is that large"
    )]
    TooLarge { endpoint: &'static str, limit: usize },
    #[error("invalid Argo CD URL: {0}")]
    InvalidUrl(String),
    #[error(
        "{endpoint} answered HTTP {status} redirecting to {target}; argomap follows no redirect: {advice}"
    )]
    Redirect { endpoint: &'static str, status: u16, target: String, advice: String },
}

/// What kind of failure an [`ArgoCdError`] is: a closed set, fit for labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::VariantArray)]
pub enum ErrorKind {
    /// The credentials were refused (401, or a failed login).
    AuthenticationFailed,
    /// The credentials are valid but may not read (403).
    InsufficientPermissions,
    /// No connection, or the server failed (5xx).
    Unreachable,
    Timeout,
    /// TLS handshake or set-up.
    Tls,
    /// An answer that is not the expected JSON, or a URL that cannot be used.
    InvalidResponse,
}

impl ArgoCdError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ArgoCdError::Unauthenticated { .. } | ArgoCdError::LoginFailed { .. } => {
                ErrorKind::AuthenticationFailed
            }
            ArgoCdError::Forbidden { .. } => ErrorKind::InsufficientPermissions,
            ArgoCdError::Connect { .. } | ArgoCdError::ServerError { .. } => ErrorKind::Unreachable,
            ArgoCdError::Timeout { .. } => ErrorKind::Timeout,
            ArgoCdError::Tls { .. } | ArgoCdError::TlsSetup(_) => ErrorKind::Tls,
            ArgoCdError::NotJson { .. }
            | ArgoCdError::UnexpectedStatus { .. }
            | ArgoCdError::Decode { .. }
            | ArgoCdError::TooLarge { .. }
            | ArgoCdError::InvalidUrl(_)
            | ArgoCdError::Redirect { .. } => ErrorKind::InvalidResponse,
        }
    }

    /// The same error with every `secrets` string replaced in its text (see
    /// [`crate::text::redact`]), then capped: capped first, a secret cut in two by the cap would
    /// no longer be found, and its first part would stay.
    pub fn redacted(self, secrets: &[String]) -> Self {
        let r = |s: String| crate::text::cap(&crate::text::redact(&s, secrets));
        match self {
            ArgoCdError::Unauthenticated { endpoint, message } => {
                ArgoCdError::Unauthenticated { endpoint, message: r(message) }
            }
            ArgoCdError::LoginFailed { status, message } => {
                ArgoCdError::LoginFailed { status, message: r(message) }
            }
            ArgoCdError::Forbidden { endpoint, message } => {
                ArgoCdError::Forbidden { endpoint, message: r(message) }
            }
            ArgoCdError::Connect { endpoint, detail } => ArgoCdError::Connect { endpoint, detail: r(detail) },
            ArgoCdError::Tls { endpoint, detail } => ArgoCdError::Tls { endpoint, detail: r(detail) },
            ArgoCdError::TlsSetup(detail) => ArgoCdError::TlsSetup(r(detail)),
            ArgoCdError::ServerError { endpoint, status, message } => {
                ArgoCdError::ServerError { endpoint, status, message: r(message) }
            }
            ArgoCdError::NotJson { endpoint, status, content_type } => {
                ArgoCdError::NotJson { endpoint, status, content_type: r(content_type) }
            }
            ArgoCdError::UnexpectedStatus { endpoint, status, message } => {
                ArgoCdError::UnexpectedStatus { endpoint, status, message: r(message) }
            }
            ArgoCdError::Decode { endpoint, detail } => ArgoCdError::Decode { endpoint, detail: r(detail) },
            ArgoCdError::InvalidUrl(detail) => ArgoCdError::InvalidUrl(r(detail)),
            ArgoCdError::Redirect { endpoint, status, target, advice } => {
                ArgoCdError::Redirect { endpoint, status, target: r(target), advice: r(advice) }
            }
            e @ (ArgoCdError::Timeout { .. } | ArgoCdError::TooLarge { .. }) => e,
        }
    }

    /// Fixed label for logs and metrics.
    pub fn category(&self) -> &'static str {
        self.kind().into()
    }

    /// A login the server refused (HTTP 401): retrying soon may lock the account out.
    pub fn is_login_refused(&self) -> bool {
        matches!(self, ArgoCdError::LoginFailed { status: 401, .. })
    }

    /// Whether a fresh login may cure it (username/password credentials only).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, ArgoCdError::Unauthenticated { .. })
    }
}

/// Argo CD refuses every login of an account for 300 s after 5 failures within 300 s, even
/// with the right password, and says only "Invalid username or password".
fn lockout_hint(status: u16) -> &'static str {
    if status == 401 {
        " (Argo CD may be locking the account: after 5 failed logins it refuses every login for 300 s, even with the right password)"
    } else {
        ""
    }
}

/// A 3xx answer. The target is named without its query or user info (either could carry
/// something secret), and when it is the requested URL on another base (plain HTTP to an
/// Argo CD that serves HTTPS answers 307 to https), that base is the advice.
pub(super) fn redirect_error(
    endpoint: &'static str,
    status: u16,
    requested: &url::Url,
    path: &str,
    location: Option<&str>,
) -> ArgoCdError {
    let target = location.and_then(|l| requested.join(l).ok());
    let shown = match &target {
        Some(t) => {
            let mut t = t.clone();
            let _ = t.set_username("");
            let _ = t.set_password(None);
            t.set_query(None);
            t.set_fragment(None);
            t.to_string()
        }
        None => "an unusable Location".to_string(),
    };
    let path_only = path.split('?').next().unwrap_or(path);
    let base = target
        .as_ref()
        .and_then(|t| t.path().strip_suffix(path_only).map(|prefix| (t, prefix.to_string())))
        .map(|(t, prefix)| format!("{}{}", t.origin().ascii_serialization(), prefix.trim_end_matches('/')));
    let advice = match base {
        Some(base) => format!("set spec.url to {base}"),
        None => "set spec.url to the address Argo CD serves its API on".to_string(),
    };
    ArgoCdError::Redirect { endpoint, status, target: shown, advice }
}

pub(super) fn status_error(endpoint: &'static str, status: StatusCode, body: &[u8]) -> ArgoCdError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let message = parsed
        .and_then(|b| b.message.filter(|m| !m.is_empty()).or_else(|| b.error.and_then(ErrorField::message)))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    // Not capped here: the client redacts, then caps (`redacted`); the body is bounded already.
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
/// The `code` label of a failed request: a class, so that a server choosing its status codes
/// cannot grow the label set (401 and 403 apart: they say what to do).
pub(super) fn error_code(e: &ArgoCdError) -> &'static str {
    match e {
        ArgoCdError::Unauthenticated { .. } => "401",
        ArgoCdError::Forbidden { .. } => "403",
        ArgoCdError::LoginFailed { status, .. }
        | ArgoCdError::ServerError { status, .. }
        | ArgoCdError::UnexpectedStatus { status, .. }
        | ArgoCdError::NotJson { status, .. }
        | ArgoCdError::Redirect { status, .. } => status_class(*status),
        ArgoCdError::Timeout { .. } => "timeout",
        ArgoCdError::Tls { .. } | ArgoCdError::TlsSetup(_) => "tls",
        ArgoCdError::Connect { .. } => "connect",
        ArgoCdError::Decode { .. } | ArgoCdError::TooLarge { .. } | ArgoCdError::InvalidUrl(_) => "invalid",
    }
}

/// `2xx`, `3xx`, `4xx`, `5xx`, with 401 and 403 apart; `other` for anything else.
pub(super) fn status_class(status: u16) -> &'static str {
    match status {
        401 => "401",
        403 => "403",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Finds a rustls error in the source chain. hyper wraps it in nested `io::Error`s, whose
/// `source()` skips the wrapped error, so those are opened with `get_ref()`.
pub(super) fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls_words(tls));
        }
        current = match err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A TLS failure in words that hold nothing the server chose: a certificate's names would tell
/// whoever may set `spec.url` what an internal server is called, so they are left out (the name
/// argomap expected is the instance's own). A certificate error rustls cannot name is said as
/// such, without its text.
fn tls_words(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::NotValidForNameContext { expected, .. }) => format!(
            "invalid peer certificate: certificate not valid for name {:?} (the names it is valid for are not shown)",
            expected.to_str()
        ),
        Error::InvalidCertificate(CertificateError::Other(_)) => {
            "invalid peer certificate: rejected by the certificate verifier".to_string()
        }
        Error::General(_) | Error::Other(_) => "the TLS handshake failed".to_string(),
        other => other.to_string(),
    }
}

/// The error and its causes on one line; reqwest's own text names the URL, never a header.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
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
    fn tls_errors_never_name_what_the_certificate_is_valid_for() {
        use rustls::pki_types::ServerName;
        let wrong = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("argocd.example.com").expect("name").to_owned(),
            presented: vec!["DnsName(\"vault.internal.corp\")".into(), "IpAddress(10.1.2.3)".into()],
        });
        let words = tls_words(&wrong);
        assert!(words.contains("certificate not valid for name \"argocd.example.com\""), "{words}");
        assert!(!words.contains("vault") && !words.contains("10.1.2.3"), "{words}");
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(tls_words(&unknown), "invalid peer certificate: UnknownIssuer");
        assert_eq!(
            tls_words(&rustls::Error::General("server said: vault.internal".into())),
            "the TLS handshake failed"
        );
    }

    #[test]
    fn request_codes_are_classes() {
        let classes: Vec<&str> =
            [200, 204, 302, 401, 403, 404, 429, 500, 503, 999, 42].map(status_class).to_vec();
        assert_eq!(
            classes,
            ["2xx", "2xx", "3xx", "401", "403", "4xx", "4xx", "5xx", "5xx", "other", "other"]
        );
    }

    #[test]
    fn a_secret_straddling_the_cap_is_redacted_whole() {
        let token = "eyJhbGciOiJIUzI1NiJ9.secret-part-of-the-token.signature";
        // An echo whose token begins just before the 1 KiB cap.
        let message = format!("{}{token}", "x".repeat(crate::text::MESSAGE_CAP - 20));
        let body = serde_json::json!({"message": message}).to_string();
        let e = status_error("clusters", StatusCode::UNAUTHORIZED, body.as_bytes())
            .redacted(&[token.to_string()]);
        let text = e.to_string();
        assert!(!text.contains(&token[..12]), "a piece of the token survived: {text}");
        assert!(text.len() <= crate::text::MESSAGE_CAP + 64, "still capped: {} bytes", text.len());
    }

    #[test]
    fn every_variant_has_a_fixed_kind() {
        let cases = [
            (
                ArgoCdError::Unauthenticated { endpoint: "clusters", message: String::new() },
                "AuthenticationFailed",
            ),
            (ArgoCdError::LoginFailed { status: 401, message: String::new() }, "AuthenticationFailed"),
            (
                ArgoCdError::Forbidden { endpoint: "clusters", message: String::new() },
                "InsufficientPermissions",
            ),
            (ArgoCdError::Connect { endpoint: "clusters", detail: String::new() }, "Unreachable"),
            (
                ArgoCdError::ServerError { endpoint: "clusters", status: 503, message: String::new() },
                "Unreachable",
            ),
            (ArgoCdError::Timeout { endpoint: "clusters", timeout_secs: 1 }, "Timeout"),
            (ArgoCdError::Tls { endpoint: "clusters", detail: String::new() }, "Tls"),
            (ArgoCdError::TlsSetup(String::new()), "Tls"),
            (
                ArgoCdError::NotJson { endpoint: "clusters", status: 200, content_type: "text/html".into() },
                "InvalidResponse",
            ),
            (ArgoCdError::Decode { endpoint: "clusters", detail: String::new() }, "InvalidResponse"),
            (ArgoCdError::TooLarge { endpoint: "clusters", limit: 1 }, "InvalidResponse"),
            (
                ArgoCdError::UnexpectedStatus { endpoint: "x", status: 404, message: String::new() },
                "InvalidResponse",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.category(), want, "{err}");
        }
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
}
