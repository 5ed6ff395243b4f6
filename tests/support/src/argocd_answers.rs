//! What Argo CD answers, asserted the same way on the fake (`tests/argocd_client.rs`) and on the
//! real argocd-server (`tests/argocd_real`): the raw answers argomap depends on, and the status
//! messages argomap makes of them.

use std::time::Duration;

use serde_json::Value;

/// The message of an expired API token's check.
pub const EXPIRED: &str = "Argo CD rejected the credentials on clusters (HTTP 401): invalid session: token has invalid claims: token is expired";

/// The message of a check with a token that is no JWT at all.
pub const NO_SESSION: &str =
    "Argo CD rejected the credentials on clusters (HTTP 401): no session information";

/// The message of a check with a revoked token of `account` with id `jti`.
pub fn revoked(account: &str, jti: &str) -> String {
    format!(
        "Argo CD rejected the credentials on clusters (HTTP 401): invalid session: account {account} does not have token with id {jti}"
    )
}

/// The message of a check at a base URL that is not Argo CD's (a path nothing serves).
pub const WRONG_BASE_URL: &str = "version answered HTTP 404: Not Found: is spec.url the base URL of the Argo CD server (including its --rootpath)?";

/// Without `Accept-Encoding: gzip`: argocd-server v3.6.1 gzips even its plain-text 404 and
/// drops the `Content-Encoding` header (Go's `http.Error` removes it), so a client that accepts
/// gzip gets gzip bytes labelled text/plain. argomap reads no text from such an answer.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).no_gzip().build().expect("HTTP client")
}

async fn get(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, content_type, resp.text().await.unwrap_or_default())
}

/// A wrong base URL answers Go's plain 404, not JSON, to a request that does not ask for HTML.
pub async fn assert_wrong_base_url_is_plain_404(base: &str, token: &str) {
    let (status, content_type, body) = get(&format!("{base}/wrong/api/v1/clusters"), Some(token)).await;
    assert_eq!(
        (status, content_type.as_str(), body.as_str()),
        (404, "text/plain; charset=utf-8", "404 page not found\n")
    );
}

/// A clean tagged build reports its version without a commit suffix, to anyone.
pub async fn assert_version(base: &str, want: &str) {
    let (status, _, body) = get(&format!("{base}/api/version"), None).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status, v["Version"].as_str()), (200, Some(want)), "{body}");
}

/// The cluster list: `in-cluster` last, trailing `/` of servers trimmed; the projected
/// application list sorted by name. Returns (cluster servers, application names).
pub async fn assert_list_order(base: &str, token: &str) -> (Vec<String>, Vec<String>) {
    let (status, _, body) = get(&format!("{base}/api/v1/clusters"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let clusters: Value = serde_json::from_str(&body).expect("cluster list");
    let servers: Vec<String> = clusters["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|c| c["server"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert_eq!(
        servers.last().map(String::as_str),
        Some("https://kubernetes.default.svc"),
        "in-cluster last: {servers:?}"
    );
    assert!(servers.iter().all(|s| !s.ends_with('/')), "trailing / trimmed: {servers:?}");
    let fields = "items.metadata.name,items.metadata.namespace,items.spec.destination";
    let (status, _, body) = get(&format!("{base}/api/v1/applications?fields={fields}"), Some(token)).await;
    assert_eq!(status, 200, "{body}");
    let apps: Value = serde_json::from_str(&body).expect("application list");
    let names: Vec<String> = apps["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|a| a["metadata"]["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "applications sorted by name");
    (servers, names)
}

/// An RBAC-filtered (here: empty) list is `"items": null`, not `[]`.
pub async fn assert_filtered_list_is_null(url: &str, token: &str) {
    let (status, _, body) = get(url, Some(token)).await;
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!((status, &v["items"]), (200, &Value::Null), "{body}");
}
