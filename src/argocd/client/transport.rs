//! One exchange with Argo CD: the request with its token, the answer's status, type and
//! size checked before it is decoded as it arrives, and a failure put in its fixed kind
//! (with nothing of the credentials in it).

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::Client;
use crate::argocd::decode::{BodyDecoder, Decoded};
use crate::argocd::error::{chain, error_code, redirect_error, status_error, tls_cause};
use crate::argocd::stream::AppStream;
use crate::argocd::{ArgoCdError, RequestObserver, url_policy};

/// Cap on the body of an error answer: only its message is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

impl Client {
    /// One attempt at opening the stream (see [`Client::open_stream`]).
    pub(super) async fn open_stream_once(
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

    /// One request, observed, its errors free of any credential this client sends.
    pub(super) async fn request<T: Decoded>(
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
