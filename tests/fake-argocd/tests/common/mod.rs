//! Helpers shared by the integration tests: an HTTP client and a data set with every odd case.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Once;

use fake_argocd::{App, Cluster, FakeArgoCd, Options, jwt};
use reqwest::header::HeaderMap;

/// reqwest is built with `rustls-no-provider`: install ring once per test binary.
pub fn install_ring() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only if another provider is already installed, which is fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client that ignores proxy environment variables; `gzip` decides Accept-Encoding handling.
pub fn client_with(gzip: bool, ca_pem: Option<&str>) -> reqwest::Client {
    install_ring();
    // Trust only the fake's certificate (or nothing): loading the system roots costs ~30 ms
    // per client.
    let certs = ca_pem.map(|pem| reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA PEM parses"));
    reqwest::Client::builder().no_proxy().gzip(gzip).tls_certs_only(certs).build().expect("client builds")
}

pub fn client() -> reqwest::Client {
    client_with(true, None)
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `GET {fake.url()}{path}` with an optional bearer token.
pub async fn get(fake: &FakeArgoCd, path: &str, token: Option<&str>) -> Reply {
    send(&client(), fake, reqwest::Method::GET, path, token, &[], None).await
}

pub async fn send(
    client: &reqwest::Client,
    fake: &FakeArgoCd,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut req = client.request(method, format!("{}{path}", fake.url()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req.body(body.to_owned());
    }
    let resp = req.send().await.expect("request reaches the fake");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("body reads"),
    }
}

/// Where the agents' clusters of [`rich_clusters`] point (argocd-agent's resource proxy).
pub const RESOURCE_PROXY: &str = "https://argocd-agent-resource-proxy.argocd.svc:9090";

/// Clusters covering every connection state, Secret labels and annotations (some that Argo CD
/// hides) and an argocd-agent agent's cluster; no in-cluster secret, so it is synthesised.
pub fn rich_clusters() -> Vec<Cluster> {
    vec![
        Cluster::new("https://prod-eu.example.com", "prod-eu")
            .with_apps_count(2)
            .with_label("argocd.argoproj.io/secret-type", "cluster")
            .with_label("env", "prod")
            .with_label("multicluster.x-k8s.io/inventory-member-id", "prod-eu")
            .with_annotation("clusterprofile.x-k8s.io/origin", "fleet/prod-eu")
            .with_annotation("managed-by", "argocd.argoproj.io")
            .with_annotation("kubectl.kubernetes.io/last-applied-configuration", "{}"),
        // trailing slash is trimmed on output; no server version known
        Cluster {
            server_version: None,
            ..Cluster::new("https://10.20.30.40:6443/", "staging").with_status("Failed").with_apps_count(1)
        },
        Cluster {
            project: Some("team-a".to_owned()),
            namespaces: vec!["team-a-dev".to_owned(), "team-a-preview".to_owned()],
            server_version: None,
            ..Cluster::new("https://dev.k8s.example.com", "dev").with_status("Unknown")
        },
        // no controller cache entry: status "", attemptedAt null, count 0 (here: wrongly 5)
        Cluster::new("https://nocache.example.com", "nocache").with_status("").with_apps_count(5),
        // a secret without a name
        Cluster::new("https://nameless.example.com", ""),
        // an agent's cluster on an argocd-agent principal
        Cluster::agent(RESOURCE_PROXY, "edge-1"),
    ]
}

/// Applications covering every destination form.
pub fn rich_apps() -> Vec<App> {
    vec![
        App::to_server("guestbook", "https://kubernetes.default.svc"),
        App::to_name("cert-manager", "in-cluster").in_project("platform"),
        App::to_server("team-a-api", "https://kubernetes.default.svc")
            .in_namespace("team-a")
            .in_project("team-a")
            .with_status("OutOfSync", "Progressing"),
        App::to_server("payments-prod", "https://prod-eu.example.com")
            .in_project("payments")
            .as_multi_source(),
        App::to_server("frontend-prod", "https://prod-eu.example.com")
            .with_status("OutOfSync", "Degraded")
            .with_health_message("Deployment \"frontend\" exceeded its progress deadline"),
        App::to_server("frontend-staging", "https://10.20.30.40:6443").with_status("Unknown", "Unknown"),
        App::to_server("orphan", "https://gone.example.com"),
        // never reconciled, no project, no namespace in the destination
        App {
            project: String::new(),
            dest_namespace: None,
            ..App::to_name("fresh", "dev").with_status("", "")
        },
    ]
}

/// A fake emulating `version`, loaded with the rich data set, and a token it accepts.
pub async fn rich_server(version: &str) -> (FakeArgoCd, String) {
    let fake = FakeArgoCd::start(Options {
        version: version.to_owned(),
        users: vec![("admin".to_owned(), "s3cr3t".to_owned())],
        ..Options::default()
    })
    .await;
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    fake.set_clusters(rich_clusters());
    fake.set_applications(rich_apps());
    (fake, token)
}

/// An open `GET /api/v1/stream/applications`, read line by line.
pub struct Stream {
    pub status: u16,
    pub content_type: String,
    resp: reqwest::Response,
    buf: String,
}

/// Opens the stream with `query` (after `?`), as an event stream (`sse`) or JSON lines.
/// `None` when no headers came within `wait` (the server sends none before its first event).
pub async fn open_stream(
    fake: &FakeArgoCd,
    query: &str,
    token: Option<&str>,
    sse: bool,
    wait: std::time::Duration,
) -> Option<Stream> {
    let mut req = client().get(format!("{}/api/v1/stream/applications?{query}", fake.url()));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if sse {
        req = req.header("accept", "text/event-stream");
    }
    let resp = tokio::time::timeout(wait, req.send()).await.ok()?.expect("stream request reaches the fake");
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    Some(Stream { status: resp.status().as_u16(), content_type, resp, buf: String::new() })
}

impl Stream {
    /// The next non-empty line (frames keep their `data: ` prefix and trailing space), or
    /// `None` at the end of the body or when nothing came within `wait`.
    pub async fn line(&mut self, wait: std::time::Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(at) = self.buf.find('\n') {
                let line: String = self.buf.drain(..=at).collect();
                let line = line.trim_end_matches('\n').to_owned();
                if line.is_empty() {
                    continue;
                }
                return Some(line);
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk()).await.ok()?;
            match chunk.expect("stream body reads") {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None if self.buf.is_empty() => return None,
                // A last line without its newline (a cut-off stream).
                None => return Some(std::mem::take(&mut self.buf)),
            }
        }
    }

    /// The next event or error as JSON, skipping keepalives.
    pub async fn event(&mut self, wait: std::time::Duration) -> Option<serde_json::Value> {
        loop {
            let line = self.line(wait).await?;
            if line.starts_with(':') {
                continue;
            }
            let json = line.strip_prefix("data: ").unwrap_or(&line);
            return Some(serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
}
