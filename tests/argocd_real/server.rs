//! A real argocd-server for the suite: the shared one `make argocd-test` starts
//! (`argocd-up.sh`, read from `ARGOMAP_TEST_ARGOCD_*`), or one started per test by the same
//! script with its own namespace, settings and redis. Seeding goes through the Kubernetes API
//! only (cluster Secrets, Application CRs, argocd-cm/argocd-rbac-cm/argocd-secret); tokens are
//! minted through the API, or offline with `server.secretkey`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

pub const ACCOUNT: &str = "argomap";
/// The Argo CD version under test (a clean tagged build reports it without suffix): the one
/// argocd-up.sh started (`ARGOMAP_TEST_ARGOCD_VERSION` of its env file, which `make argocd-test`
/// sources), `ARGOCD_VERSION` of versions.env unless `make argocd-test ARGOCD_VERSION=...`.
pub fn version() -> String {
    std::env::var("ARGOMAP_TEST_ARGOCD_VERSION").unwrap_or_else(|_| {
        read_env(&shared_env())
            .remove("ARGOMAP_TEST_ARGOCD_VERSION")
            .expect("ARGOMAP_TEST_ARGOCD_VERSION missing from the argocd env")
    })
}

/// Whether the version under test is at least `major.minor` (for what differs by version).
pub fn at_least(major: u32, minor: u32) -> bool {
    let v = version();
    let mut parts = v.trim_start_matches('v').split('.').map(|p| p.parse::<u32>().expect("vX.Y.Z"));
    (parts.next(), parts.next()) >= (Some(major), Some(minor))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn controlplane_dir() -> PathBuf {
    std::env::var_os("ARGOMAP_CONTROLPLANE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/controlplane"))
}

/// How a per-test server is started (each field one `ARGOMAP_ARGOCD_*` of argocd-up.sh).
#[derive(Clone, Default)]
pub struct Opts {
    pub tls: bool,
    /// PEM certificate and key for Secret `argocd-server-tls`.
    pub cert: Option<(PathBuf, PathBuf)>,
    pub rootpath: Option<String>,
    pub app_namespaces: Option<String>,
    /// argocd-rbac-cm `policy.csv`; `None`: `g, argomap, role:readonly`.
    pub policy: Option<String>,
    pub port: Option<u16>,
    pub secret_key: Option<String>,
}

/// One argocd-server (stopped on drop when this test started it).
pub struct Server {
    pub ns: String,
    pub url: String,
    pub origin: String,
    pub port: u16,
    /// argocd-server's own Prometheus metrics (loopback).
    pub metrics_url: String,
    /// The API token argocd-up.sh minted for `argomap` (no expiry).
    pub token: String,
    pub secret_key: String,
    pub admin_password: String,
    dir: Option<PathBuf>,
    opts: Opts,
}

fn read_env(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), unquote(v))).collect()
}

/// Undoes bash's `printf %q` for the values argocd-up.sh writes (backslash escapes only).
fn unquote(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

impl Server {
    fn from_env(env: &HashMap<String, String>, dir: Option<PathBuf>, opts: Opts) -> Server {
        let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("{k} missing from the argocd env"));
        Server {
            ns: get("ARGOMAP_TEST_ARGOCD_NAMESPACE"),
            url: get("ARGOMAP_TEST_ARGOCD_URL"),
            origin: get("ARGOMAP_TEST_ARGOCD_ORIGIN"),
            port: get("ARGOMAP_TEST_ARGOCD_PORT").parse().expect("port"),
            metrics_url: get("ARGOMAP_TEST_ARGOCD_METRICS_URL"),
            token: get("ARGOMAP_TEST_ARGOCD_TOKEN"),
            secret_key: get("ARGOMAP_TEST_ARGOCD_SECRET_KEY"),
            admin_password: get("ARGOMAP_TEST_ARGOCD_ADMIN_PASSWORD"),
            dir,
            opts,
        }
    }

    /// The server `make argocd-test` started (namespace `argocd`, plain HTTP, nothing seeded:
    /// its lists hold only the synthesised in-cluster). Tests must not seed it.
    pub fn shared() -> Server {
        Server::from_env(&read_env(&shared_env()), None, Opts::default())
    }

    /// A server of this test's own, in namespace `ns` (seed it first: the server's informers
    /// have synced what exists when /healthz says ok).
    pub fn start(ns: &str, opts: Opts) -> Server {
        let dir = controlplane_dir().join("argocd-per-test").join(ns);
        run_up(ns, &dir, &opts);
        let env = read_env(&dir.join("env"));
        Server::from_env(&env, Some(dir), opts)
    }

    /// Stops this test's server.
    pub fn stop(&self) {
        if let Some(dir) = &self.dir {
            let status = Command::new("bash")
                .arg(repo().join("tests/controlplane/argocd-down.sh"))
                .env("ARGOMAP_ARGOCD_DIR", dir)
                .status()
                .expect("argocd-down.sh");
            assert!(status.success(), "argocd-down.sh failed");
        }
    }

    /// Starts it again on the same port with the same `server.secretkey` (tokens stay valid).
    pub fn start_again(&mut self) {
        let dir = self.dir.clone().expect("only a per-test server restarts");
        let mut opts = self.opts.clone();
        opts.port = Some(self.port);
        opts.secret_key = Some(self.secret_key.clone());
        run_up(&self.ns, &dir, &opts);
        let mut old = Server::from_env(&read_env(&dir.join("env")), Some(dir), opts);
        assert_eq!(old.url, self.url, "the restarted server keeps its URL");
        std::mem::swap(self, &mut old);
        // The replaced value must not stop the new process on drop.
        old.dir = None;
    }

    /// curl against the server: (status, content type, body). `-k`: its certificate is
    /// checked by argomap's tests, not here.
    pub fn curl(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&Value>) -> Reply {
        curl(method, &format!("{}{path}", self.url), bearer, body, &[])
    }

    /// gRPC calls of `service`/`method` Argo CD started, by its own count
    /// (`grpc_server_started_total`): REST requests reach gRPC through grpc-gateway, so this
    /// counts them as Argo CD served them, whoever sent them.
    pub fn grpc_started(&self, service: &str, method: &str) -> u64 {
        let text = curl("GET", &self.metrics_url, None, None, &[]).body;
        let want = [format!("grpc_method=\"{method}\""), format!("grpc_service=\"{service}\"")];
        text.lines()
            .filter(|l| l.starts_with("grpc_server_started_total{") && want.iter().all(|w| l.contains(w)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// An admin session JWT.
    pub fn admin_session(&self) -> String {
        let body = json!({"username": "admin", "password": self.admin_password});
        let r = self.curl("POST", "/api/v1/session", None, Some(&body));
        assert_eq!(r.status, 200, "admin login: {}", r.body);
        r.json()["token"].as_str().expect("session token").to_string()
    }

    /// Mints an API token for `account` through the API (`expires_in` seconds, 0: never).
    pub fn mint_token(&self, account: &str, id: &str, expires_in: i64) -> String {
        let admin = self.admin_session();
        let body = json!({"name": id, "id": id, "expiresIn": expires_in});
        let r = self.curl("POST", &format!("/api/v1/account/{account}/token"), Some(&admin), Some(&body));
        assert_eq!(r.status, 200, "mint token: {}", r.body);
        r.json()["token"].as_str().expect("token").to_string()
    }

    pub fn revoke_token(&self, account: &str, id: &str) {
        let admin = self.admin_session();
        let r = self.curl(
            "DELETE",
            &format!("/api/v1/account/{account}/token/{id}"),
            Some(&admin),
            Some(&json!({})),
        );
        assert_eq!(r.status, 200, "revoke token: {}", r.body);
    }

    /// Sets `account`'s password through the API (as admin).
    pub fn set_password(&self, account: &str, password: &str) {
        let admin = self.admin_session();
        let body = json!({"name": account, "currentPassword": self.admin_password, "newPassword": password});
        let r = self.curl("PUT", "/api/v1/account/password", Some(&admin), Some(&body));
        assert_eq!(r.status, 200, "set password: {}", r.body);
    }

    /// An API token signed offline with `server.secretkey` (HS256, as Argo CD signs them).
    pub fn offline_token(&self, account: &str, jti: &str, iat: i64, exp: Option<i64>) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let mut claims =
            json!({"iss": "argocd", "sub": format!("{account}:apiKey"), "jti": jti, "iat": iat, "nbf": iat});
        if let Some(exp) = exp {
            claims["exp"] = json!(exp);
        }
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.secret_key.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()).as_ref());
        format!("{input}.{sig}")
    }

    /// The server's own lists, as `account`'s token sees them.
    pub fn clusters(&self, token: &str) -> Value {
        let r = self.curl("GET", "/api/v1/clusters", Some(token), None);
        assert_eq!(r.status, 200, "clusters: {}", r.body);
        r.json()
    }

    /// Projected as argomap projects it for this version: before v3.5 Argo CD knows no `spec.*`
    /// sub-key (`items.spec.destination` drops `spec`), so `items.spec` there.
    pub fn applications(&self, token: &str) -> Value {
        let spec = if at_least(3, 5) { "items.spec.destination" } else { "items.spec" };
        self.applications_with(token, &format!("items.metadata.name,items.metadata.namespace,{spec}"))
    }

    pub fn applications_with(&self, token: &str, fields: &str) -> Value {
        let r = self.curl("GET", &format!("/api/v1/applications?fields={fields}"), Some(token), None);
        assert_eq!(r.status, 200, "applications: {}", r.body);
        r.json()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            if std::thread::panicking() {
                let log = dir.join("argocd-server.log");
                crate::common::print_log_tail("argocd-server", &log, 30);
            }
            let _ = Command::new("bash")
                .arg(repo().join("tests/controlplane/argocd-down.sh"))
                .env("ARGOMAP_ARGOCD_DIR", dir)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// The env file of the shared server.
fn shared_env() -> PathBuf {
    match std::env::var("ARGOMAP_TEST_ARGOCD_DIR") {
        Ok(d) => PathBuf::from(d).join("env"),
        Err(_) => controlplane_dir().join("argocd/env"),
    }
}

fn run_up(ns: &str, dir: &Path, opts: &Opts) {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("tests/controlplane/argocd-up.sh"))
        .env("ARGOMAP_ARGOCD_VERSION", version())
        .env("ARGOMAP_ARGOCD_DIR", dir)
        .env("ARGOMAP_ARGOCD_NAMESPACE", ns)
        .env("ARGOMAP_ARGOCD_TLS", if opts.tls { "1" } else { "0" });
    for (k, v) in [
        ("ARGOMAP_ARGOCD_ROOTPATH", opts.rootpath.clone()),
        ("ARGOMAP_ARGOCD_APP_NAMESPACES", opts.app_namespaces.clone()),
        ("ARGOMAP_ARGOCD_POLICY_CSV", opts.policy.clone()),
        ("ARGOMAP_ARGOCD_PORT", opts.port.map(|p| p.to_string())),
        ("ARGOMAP_ARGOCD_SECRET_KEY", opts.secret_key.clone()),
        ("ARGOMAP_ARGOCD_TLS_CERT", opts.cert.as_ref().map(|c| c.0.display().to_string())),
        ("ARGOMAP_ARGOCD_TLS_KEY", opts.cert.as_ref().map(|c| c.1.display().to_string())),
    ] {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd.output().expect("argocd-up.sh");
    assert!(out.status.success(), "argocd-up.sh for {ns} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn curl(method: &str, url: &str, bearer: Option<&str>, body: Option<&Value>, headers: &[&str]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-ksS", "--max-time", "20", "-X", method, "-o", "-", "-w", "\n%{http_code} %{content_type}"]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {b}")]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, ct) = tail.split_once(' ').unwrap_or((tail, ""));
    Reply { status: code.parse().unwrap_or(0), content_type: ct.to_string(), body: body.to_string() }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

pub fn app_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

/// A cluster Secret in Argo CD's namespace.
pub async fn cluster_secret(client: &Client, ns: &str, name: &str, server: &str) {
    let s: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {"name": name, "server": server, "config": "{\"tlsClientConfig\":{\"insecure\":true}}"}
    }))
    .expect("cluster secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &s)
        .await
        .expect("create cluster secret");
}

/// An application's destination: by server URL or by cluster name.
#[derive(Clone, Copy)]
pub enum Dest<'a> {
    Server(&'a str),
    Name(&'a str),
}

pub fn application(name: &str, dest: Dest<'_>) -> Value {
    let destination = match dest {
        Dest::Server(s) => json!({"server": s, "namespace": "default"}),
        Dest::Name(n) => json!({"name": n, "namespace": "default"}),
    };
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/apps.git", "path": name, "targetRevision": "HEAD"},
            "destination": destination
        }
    })
}

/// Creates Application CRs in `ns`, 16 at a time.
pub async fn applications(client: &Client, ns: &str, apps: Vec<Value>) {
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &app_resource());
    futures::stream::iter(apps)
        .map(|v| {
            let api = api.clone();
            async move {
                let o: DynamicObject = serde_json::from_value(v).expect("application");
                api.create(&PostParams::default(), &o).await.map(|_| ())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("create applications");
}

/// Polls until the server's own lists (as `token` sees them) have `clusters` and `apps`
/// entries: informers catch up with the Kubernetes API asynchronously.
pub async fn listed(server: &Server, token: &str, clusters: usize, apps: usize, deadline: Duration) {
    crate::common::eventually(deadline, "Argo CD lists what was seeded", || async move {
        let c = server.clusters(token)["items"].as_array().map(Vec::len).unwrap_or(0);
        let a = server.applications(token)["items"].as_array().map(Vec::len).unwrap_or(0);
        if (c, a) == (clusters, apps) { Ok(()) } else { Err(format!("{c} clusters, {a} applications")) }
    })
    .await
}
