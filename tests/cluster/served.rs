//! What the metrics suite (`metrics.rs`) and the read-API suite (`read_api.rs`) share: the
//! test tools, GETs on the operator's two ports, the namespace both start from (instance `prod`
//! connected through a running operator), the Prometheus text format, and tokens.
//!
//! The tools come from `tests/tools/install.sh` (`make tools`, a prerequisite of
//! `make cluster-test`): `promtool` and `prometheus` from Debian's `prometheus` package, on PATH
//! or `ARGOMAP_TEST_PROMTOOL` / `ARGOMAP_TEST_PROMETHEUS`; schemathesis in
//! `${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/venv`, or `ARGOMAP_TEST_SCHEMATHESIS`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argomap::crd::ArgoCdInstance;
use fake_argocd::{App, FakeArgoCd, Fault, Options, StreamFault, jwt};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::common::*;

pub(crate) const CHECK: Duration = Duration::from_secs(20);

pub(crate) const FAST: Duration = Duration::from_secs(5);

/// A destination only an application names: Argo CD has no cluster (so no name) for it.
pub(crate) const APPS_ONLY: &str = "https://apps-only.example.com";

// ---------------------------------------------------------------------------------------------
// Tools

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

pub(crate) fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cluster-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// The command for a tool: `$env` if set, else `default`. Fails naming `make tools` if it does
/// not run.
pub(crate) fn tool(env: &str, default: impl Into<PathBuf>) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| default.into());
    let runs = Command::new(&path).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        runs.is_ok_and(|s| s.success()),
        "{} does not run; install the test tools with `make tools` (tests/tools/install.sh) or set {env}",
        path.display()
    );
    path
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

// ---------------------------------------------------------------------------------------------
// HTTP

pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) www_authenticate: Option<String>,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub(crate) fn show(&self) -> String {
        format!("{} {}", self.status, self.body)
    }
}

pub(crate) fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client")
}

/// GET with `Authorization: <auth>` when given.
pub(crate) async fn get(url: &str, auth: Option<&str>) -> Result<Reply, String> {
    let mut req = http().get(url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    let resp = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = resp.status().as_u16();
    let content_type = header("content-type").unwrap_or_default();
    let www_authenticate = header("www-authenticate");
    let body = resp.text().await.map_err(|e| format!("GET {url}: body: {e}"))?;
    Ok(Reply { status, content_type, www_authenticate, body })
}

/// Polls `url` until it answers `status`.
pub(crate) async fn get_until(url: &str, auth: Option<&str>, status: u16, deadline: Duration) -> Reply {
    eventually(deadline, &format!("GET {url} answers {status}"), || async move {
        let r = get(url, auth).await?;
        if r.status == status { Ok(r) } else { Err(r.show()) }
    })
    .await
}

pub(crate) async fn ready(op: &Operator) {
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
}

pub(crate) fn mapping_url(op: &Operator, org: &str) -> String {
    format!("{}/organization/{org}/argoCdDestinationClusterMapping", op.http)
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Like `common::fake`, with a token that expires (for the credentials-expiry metric) and one
/// more application, aimed at a destination Argo CD has no cluster for (so no name).
pub(crate) async fn fake_with_expiry(exp: i64) -> (FakeArgoCd, String) {
    let argocd = FakeArgoCd::start(Options::default()).await;
    let token = jwt("argomap:apiKey", Some(exp));
    argocd.add_token(&token);
    argocd.set_clusters(fake_argocd::sample_clusters());
    let mut apps = fake_argocd::sample_apps();
    apps.push(App::to_server("stray", APPS_ONLY));
    argocd.set_applications(apps);
    (argocd, token)
}

/// A namespace with the credentials Secret, ClusterMappings `prod-eks` (linked) and `legacy`
/// (orphaned), and instance `prod`, connected through a running operator. Metrics do not wait
/// for `/readyz`; the read API does (it answers 503 until the watches have synced).
pub(crate) struct Setup {
    pub(crate) client: Client,
    pub(crate) ns: String,
    pub(crate) argocd: FakeArgoCd,
    pub(crate) exp: i64,
    pub(crate) op: Operator,
}

pub(crate) async fn setup(test: &str) -> Setup {
    setup_with(test, &[]).await
}

/// [`setup`] with more flags for `argomap run`.
pub(crate) async fn setup_with(test: &str, flags: &[&str]) -> Setup {
    let client = client().await;
    let ns = namespace(&client, test).await;
    let exp = now_secs() + 30 * 24 * 3600;
    let (argocd, token) = fake_with_expiry(exp).await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_mapping(&client, &ns, mapping_json("prod-eks", "prod", "https://10.0.0.1:6443")).await;
    create_mapping(&client, &ns, mapping_json("legacy", "prod", "https://gke.example.com")).await;
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let op = Operator::start_with(&ns, flags);
    instance_where(&client, &ns, "prod", CHECK, "connected", connected).await;
    Setup { client, ns, argocd, exp, op }
}

/// A second Argo CD that fails every API call with 503, and instance `down` pointing at it.
pub(crate) async fn failing_instance(s: &Setup) -> FakeArgoCd {
    let down = FakeArgoCd::start(Options::default()).await;
    down.set_fault(Some(Fault::Status(503)));
    create_instance(&s.client, &s.ns, instance_json("down", &down.url(), "60s")).await;
    instance_where(&s.client, &s.ns, "down", CHECK, "down is Unreachable", |i| {
        reason(i).as_deref() == Some("Unreachable")
    })
    .await;
    down
}

/// A third Argo CD (its token has no exp) and instance `watched` following its application
/// stream, cut once (a line in half: reason `Malformed`) and streaming again.
pub(crate) async fn watched_instance(s: &Setup) -> FakeArgoCd {
    let (argocd, token) = fake().await;
    token_secret(&s.client, &s.ns, "watched-token", &token).await;
    let mut i = instance_json("watched", &argocd.url(), "60s");
    i["spec"]["credentials"]["secretRef"]["name"] = json!("watched-token");
    i["spec"]["applications"] = json!({"mode": "Watch"});
    create_instance(&s.client, &s.ns, i).await;
    let streaming = |i: &ArgoCdInstance| {
        argomap_test_support::watch_checks::stream_reason(i).as_deref() == Some("Streaming")
    };
    instance_where(&s.client, &s.ns, "watched", CHECK, "watched is streaming", streaming).await;
    argocd.break_streams(StreamFault::CutLine);
    metrics_where(&s.op, "a reconnect counted", |m| {
        let found =
            m.find("argomap_stream_reconnects_total", &[("instance", "watched"), ("reason", "Malformed")]);
        if found.is_empty() { Err("no reconnect yet".to_owned()) } else { Ok(()) }
    })
    .await;
    instance_where(&s.client, &s.ns, "watched", CHECK, "watched is streaming again", streaming).await;
    argocd
}

// ---------------------------------------------------------------------------------------------
// The Prometheus text format

#[derive(Debug)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

pub(crate) struct Exposition {
    /// Family → TYPE.
    pub(crate) types: BTreeMap<String, String>,
    pub(crate) samples: Vec<Sample>,
}

impl Exposition {
    pub(crate) fn parse(text: &str) -> Exposition {
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                types.insert(name.to_string(), kind.to_string());
            } else if !line.starts_with('#') {
                samples.push(parse_sample(line));
            }
        }
        Exposition { types, samples }
    }

    /// The family a sample belongs to (histograms: `_bucket`, `_sum`, `_count`).
    pub(crate) fn family(&self, sample: &str) -> Option<String> {
        if self.types.contains_key(sample) {
            return Some(sample.to_string());
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| sample.strip_suffix(suffix))
            .find(|base| self.types.get(*base).is_some_and(|t| t == "histogram"))
            .map(str::to_string)
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub(crate) fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly these labels.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }
}

/// `name{a="x",b="y"} value` (label values with the format's escapes: `\\`, `\"`, `\n`).
pub(crate) fn parse_sample(line: &str) -> Sample {
    let (name, mut rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => panic!("sample without value: {line}"),
    };
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        loop {
            while chars.peek().is_some_and(|(_, c)| *c == ',' || *c == ' ') {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    end = Some(*i);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "label value must be quoted: {line}");
            let mut value = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some(other) => value.push(other),
                        None => panic!("dangling escape: {line}"),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
        }
        let end = end.unwrap_or_else(|| panic!("unterminated labels: {line}"));
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next().unwrap_or_else(|| panic!("no value: {line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|e| panic!("value {v:?} of {line}: {e}")),
    };
    Sample { name: name.to_string(), labels, value }
}

pub(crate) async fn scrape(op: &Operator) -> Result<Reply, String> {
    let r = get(&format!("{}/metrics", op.admin), None).await?;
    if r.status == 200 { Ok(r) } else { Err(r.show()) }
}

/// Polls `/metrics` until `check` accepts it.
pub(crate) async fn metrics_where(
    op: &Operator,
    what: &str,
    check: impl Fn(&Exposition) -> Result<(), String>,
) -> (String, Exposition) {
    let check = &check;
    eventually(CHECK, what, || async move {
        let text = scrape(op).await?.body;
        let e = Exposition::parse(&text);
        check(&e).map_err(|why| format!("{why}\n{text}"))?;
        Ok((text, e))
    })
    .await
}

#[track_caller]
pub(crate) fn assert_error(r: &Reply, status: u16, category: &str) {
    assert_eq!(r.status, status, "{}", r.show());
    assert!(r.content_type.starts_with("application/json"), "{}: {}", r.content_type, r.show());
    let body = r.json();
    assert_eq!(body["error"], category, "{}", r.show());
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.show());
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{}", r.show());
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A token of ServiceAccount `name` in `ns` (created if needed) for the API server's own
/// audience, as a Prometheus ServiceAccount has.
pub(crate) async fn plain_token(client: &Client, ns: &str, name: &str) -> String {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    if accounts.get_opt(name).await.expect("get service account").is_none() {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
        accounts.create(&PostParams::default(), &sa).await.expect("create service account");
    }
    token_of(&accounts, name, &[]).await
}
