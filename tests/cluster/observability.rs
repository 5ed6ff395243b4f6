//! Observability and the read API on the real control plane: `/metrics` checked by `promtool`
//! and scraped by a real Prometheus, `/healthz` and `/readyz`, and the Qovery read API called
//! with real ServiceAccount tokens (TokenRequest, TokenReview, SubjectAccessReview), its bodies
//! validated against the contract, and fuzzed by schemathesis.
//!
//! The tools come from `tests/tools/install.sh` (`make tools`, a prerequisite of
//! `make cluster-test`): `promtool` and `prometheus` from Debian's `prometheus` package, on PATH
//! or `ARGOMAP_TEST_PROMTOOL` / `ARGOMAP_TEST_PROMETHEUS`; schemathesis in
//! `${ARGOMAP_CACHE:-$HOME/.cache/argomap}/tools/venv`, or `ARGOMAP_TEST_SCHEMATHESIS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argomap::crd::{ArgoCdInstance, REFRESH_ANNOTATION, Reason};
use fake_argocd::{App, FakeArgoCd, Fault, Options, StreamFault, jwt};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use strum::VariantArray as _;

use crate::common::*;

const CHECK: Duration = Duration::from_secs(20);
const FAST: Duration = Duration::from_secs(5);
/// `spec.organizationId` of `instance_json`.
const ORG: &str = "5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b11";
/// An organization no instance belongs to.
const OTHER_ORG: &str = "5e1c0e4e-0000-4000-8000-00000000ffff";
/// `spec.agentCluster.id` of `instance_json`; `spec.cluster.id` of `mapping_json`.
const AGENT_ID: &str = "0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a";
const MAPPED_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
/// A destination only an application names: Argo CD has no cluster (so no name) for it.
const APPS_ONLY: &str = "https://apps-only.example.com";
const CONTRACT: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/qovery-argocd-mapping-openapi.yaml"));

/// Every metric family of docs/operating.md ("Metrics").
const FAMILIES: [&str; 13] = [
    "argomap_instance_up",
    "argomap_instance_last_check_timestamp_seconds",
    "argomap_instance_last_success_timestamp_seconds",
    "argomap_instance_data_age_seconds",
    "argomap_destinations",
    "argomap_orphaned_mappings",
    "argomap_destination_applications",
    "argomap_credentials_expiry_timestamp_seconds",
    "argomap_argocd_request_duration_seconds",
    "argomap_argocd_request_errors_total",
    "argomap_reconcile_duration_seconds",
    "argomap_reconcile_errors_total",
    "argomap_build_info",
];
/// A counter with no series yet is not exposed at all. Reconciles fail only on Kubernetes API
/// errors, which a healthy control plane does not produce, so this family may be absent.
const ONLY_AFTER_AN_ERROR: &str = "argomap_reconcile_errors_total";

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn log_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/cluster-logs");
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

// ---------------------------------------------------------------------------------------------
// Tools

/// The command for a tool: `$env` if set, else `default`. Fails naming `make tools` if it does
/// not run.
fn tool(env: &str, default: impl Into<PathBuf>) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| default.into());
    let runs = Command::new(&path).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    assert!(
        runs.is_ok_and(|s| s.success()),
        "{} does not run; install the test tools with `make tools` (tests/tools/install.sh) or set {env}",
        path.display()
    );
    path
}

fn promtool() -> PathBuf {
    tool("ARGOMAP_TEST_PROMTOOL", "promtool")
}

fn prometheus_bin() -> PathBuf {
    tool("ARGOMAP_TEST_PROMETHEUS", "prometheus")
}

fn schemathesis() -> PathBuf {
    let cache = std::env::var_os("ARGOMAP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/argomap"));
    tool("ARGOMAP_TEST_SCHEMATHESIS", cache.join("tools/venv/bin/schemathesis"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Reply {
    status: u16,
    content_type: String,
    www_authenticate: Option<String>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn show(&self) -> String {
        format!("{} {}", self.status, self.body)
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client")
}

/// GET with `Authorization: <auth>` when given.
async fn get(url: &str, auth: Option<&str>) -> Result<Reply, String> {
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
async fn get_until(url: &str, auth: Option<&str>, status: u16, deadline: Duration) -> Reply {
    eventually(deadline, &format!("GET {url} answers {status}"), || async move {
        let r = get(url, auth).await?;
        if r.status == status { Ok(r) } else { Err(r.show()) }
    })
    .await
}

async fn ready(op: &Operator) {
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
}

fn mapping_url(op: &Operator, org: &str) -> String {
    format!("{}/organization/{org}/argoCdDestinationClusterMapping", op.http)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Like `common::fake`, with a token that expires (for the credentials-expiry metric) and one
/// more application, aimed at a destination Argo CD has no cluster for (so no name).
async fn fake_with_expiry(exp: i64) -> (FakeArgoCd, String) {
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
struct Setup {
    client: Client,
    ns: String,
    argocd: FakeArgoCd,
    exp: i64,
    op: Operator,
}

async fn setup(test: &str) -> Setup {
    setup_with(test, &[]).await
}

/// [`setup`] with more flags for `argomap run`.
async fn setup_with(test: &str, flags: &[&str]) -> Setup {
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
async fn failing_instance(s: &Setup) -> FakeArgoCd {
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
async fn watched_instance(s: &Setup) -> FakeArgoCd {
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
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Exposition {
    /// Family → TYPE.
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
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
    fn family(&self, sample: &str) -> Option<String> {
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
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> =
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.samples.iter().find(|s| s.name == name && s.labels == want).map(|s| s.value)
    }
}

/// `name{a="x",b="y"} value` (label values with the format's escapes: `\\`, `\"`, `\n`).
fn parse_sample(line: &str) -> Sample {
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

async fn scrape(op: &Operator) -> Result<Reply, String> {
    let r = get(&format!("{}/metrics", op.admin), None).await?;
    if r.status == 200 { Ok(r) } else { Err(r.show()) }
}

/// Polls `/metrics` until `check` accepts it.
async fn metrics_where(
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

fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}\n{}{}\n--- scrape ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// Metrics

#[tokio::test(flavor = "multi_thread")]
async fn a_live_scrape_passes_promtool_and_has_exactly_the_design_families() {
    let s = setup("obs-metrics").await;
    let _down = failing_instance(&s).await;
    let ns = s.ns.as_str();
    let prod = [("namespace", ns), ("instance", "prod")];
    let down = [("namespace", ns), ("instance", "down")];
    let (text, m) = metrics_where(&s.op, "series of both instances", |m| {
        let up = |labels: &[(&str, &str)]| m.value("argomap_instance_up", labels);
        if up(&prod) != Some(1.0) || up(&down) != Some(0.0) {
            return Err("instance_up of prod and down".into());
        }
        if m.find("argomap_argocd_request_errors_total", &down).is_empty() {
            return Err("no request errors of down yet".into());
        }
        // Metrics follow the mappings too (a mapping change recomputes the links).
        let linked = m.value("argomap_destinations", &[prod[0], prod[1], ("state", "linked")]);
        if linked != Some(2.0) || m.value("argomap_orphaned_mappings", &prod) != Some(1.0) {
            return Err("prod's linked destinations and orphaned mappings".into());
        }
        Ok(())
    })
    .await;
    promtool_check(&text);

    // Exactly the families of docs/operating.md, each with its own label names.
    let present: BTreeSet<&str> = m.types.keys().map(String::as_str).collect();
    let design: BTreeSet<&str> = FAMILIES.into_iter().collect();
    let unknown: Vec<&&str> = present.difference(&design).collect();
    assert!(unknown.is_empty(), "families docs/operating.md does not name: {unknown:?}");
    let missing: Vec<&&str> = design.difference(&present).filter(|f| **f != ONLY_AFTER_AN_ERROR).collect();
    assert!(missing.is_empty(), "families missing: {missing:?}\n{text}");
    let kinds: BTreeMap<&str, &str> = [
        ("argomap_argocd_request_duration_seconds", "histogram"),
        ("argomap_reconcile_duration_seconds", "histogram"),
        ("argomap_argocd_request_errors_total", "counter"),
        ("argomap_reconcile_errors_total", "counter"),
    ]
    .into_iter()
    .collect();
    for (family, kind) in &m.types {
        assert_eq!(kind, kinds.get(family.as_str()).unwrap_or(&"gauge"), "TYPE of {family}");
    }
    let inst = ["namespace", "instance"];
    let label_names: BTreeMap<&str, Vec<&str>> = [
        ("argomap_instance_up", inst.to_vec()),
        ("argomap_instance_last_check_timestamp_seconds", inst.to_vec()),
        ("argomap_instance_last_success_timestamp_seconds", inst.to_vec()),
        ("argomap_instance_data_age_seconds", inst.to_vec()),
        ("argomap_destinations", vec!["namespace", "instance", "state"]),
        ("argomap_orphaned_mappings", inst.to_vec()),
        ("argomap_destination_applications", vec!["namespace", "instance", "destination", "linked"]),
        ("argomap_credentials_expiry_timestamp_seconds", inst.to_vec()),
        ("argomap_argocd_request_duration_seconds", vec!["endpoint", "code"]),
        ("argomap_argocd_request_errors_total", vec!["namespace", "instance", "reason"]),
        ("argomap_reconcile_duration_seconds", vec!["controller"]),
        ("argomap_reconcile_errors_total", vec!["controller", "category"]),
        ("argomap_build_info", vec!["version"]),
    ]
    .into_iter()
    .collect();
    for sample in &m.samples {
        let family = m.family(&sample.name).unwrap_or_else(|| panic!("sample without a family: {sample:?}"));
        let mut want: BTreeSet<&str> = label_names[family.as_str()].iter().copied().collect();
        if sample.name.ends_with("_bucket") {
            want.insert("le");
        }
        let got: BTreeSet<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(got, want, "labels of {sample:?}");
        assert!(sample.labels.get("namespace").is_none_or(|n| n == ns), "another namespace: {sample:?}");
    }

    // Bounded label values: categories, never messages.
    let reasons: BTreeSet<&str> = Reason::VARIANTS.iter().map(|r| r.as_str()).collect();
    for x in m.find("argomap_argocd_request_errors_total", &[]) {
        assert!(reasons.contains(x.labels["reason"].as_str()), "reason is not a category: {x:?}");
    }
    assert_eq!(
        m.value("argomap_argocd_request_errors_total", &[down[0], down[1], ("reason", "Unreachable")])
            .map(|v| v >= 1.0),
        Some(true)
    );
    for x in m.find("argomap_reconcile_duration_seconds_count", &[]) {
        assert!(["argocdinstance", "clustermapping"].contains(&x.labels["controller"].as_str()), "{x:?}");
    }
    for x in m.find("argomap_reconcile_errors_total", &[]) {
        let category = &x.labels["category"];
        assert!(
            !category.is_empty()
                && category.len() < 40
                && category.chars().all(|c| c.is_ascii_alphanumeric()),
            "category is not a fixed label: {x:?}"
        );
    }
    let endpoints: BTreeSet<&str> = m
        .find("argomap_argocd_request_duration_seconds_count", &[])
        .iter()
        .map(|x| x.labels["endpoint"].as_str())
        .collect();
    assert!(
        endpoints.len() <= 8 && endpoints.iter().all(|e| e.len() < 40 && !e.contains('?')),
        "{endpoints:?}"
    );
    let codes: BTreeSet<&str> = m
        .find("argomap_argocd_request_duration_seconds_count", &[])
        .iter()
        .map(|x| x.labels["code"].as_str())
        .collect();
    assert!(codes.contains("2xx") && codes.contains("5xx"), "request codes: {codes:?}");
    assert!(
        m.value("argomap_reconcile_duration_seconds_count", &[("controller", "argocdinstance")])
            .unwrap_or(0.0)
            >= 1.0
    );

    // Values of the connected instance.
    let v = |name: &str, extra: &[(&str, &str)]| {
        let labels: Vec<(&str, &str)> = prod.iter().chain(extra).copied().collect();
        m.value(name, &labels).unwrap_or_else(|| panic!("no {name}{labels:?}\n{text}"))
    };
    assert_eq!(v("argomap_destinations", &[("state", "linked")]), 2.0);
    assert_eq!(v("argomap_destinations", &[("state", "unlinked")]), 2.0);
    assert_eq!(v("argomap_orphaned_mappings", &[]), 1.0);
    let apps: BTreeMap<(String, String), f64> = m
        .find("argomap_destination_applications", &prod)
        .iter()
        .map(|x| ((x.labels["destination"].clone(), x.labels["linked"].clone()), x.value))
        .collect();
    let want: BTreeMap<(String, String), f64> = [
        ("https://10.0.0.1:6443", "true", 2.0),
        ("https://kubernetes.default.svc", "true", 1.0),
        ("https://old.example.com", "false", 0.0),
        (APPS_ONLY, "false", 1.0),
    ]
    .into_iter()
    .map(|(d, l, n)| ((d.to_string(), l.to_string()), n))
    .collect();
    assert_eq!(apps, want);
    assert_eq!(v("argomap_credentials_expiry_timestamp_seconds", &[]), s.exp as f64);
    let (last_check, last_success) = (
        v("argomap_instance_last_check_timestamp_seconds", &[]),
        v("argomap_instance_last_success_timestamp_seconds", &[]),
    );
    assert_eq!(last_check, last_success);
    assert!((last_success - now_secs() as f64).abs() < 120.0, "last success {last_success}");
    assert!(m.value("argomap_instance_last_success_timestamp_seconds", &down).is_none());
    let age = v("argomap_instance_data_age_seconds", &[]);
    assert!((0.0..120.0).contains(&age), "data age {age}");
    assert!(m.value("argomap_instance_data_age_seconds", &down).is_none(), "no data, no age");
    assert!(m.value("argomap_instance_last_check_timestamp_seconds", &down).is_some());
    assert!(
        m.value("argomap_credentials_expiry_timestamp_seconds", &down).is_none(),
        "no expiry is known for an instance that never connected"
    );
    assert_eq!(m.value("argomap_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_instance_removes_its_series() {
    let s = setup("obs-delete").await;
    let _down = failing_instance(&s).await;
    let ns = s.ns.clone();
    let of = |m: &Exposition, instance: &str| -> Vec<String> {
        m.samples
            .iter()
            .filter(|x| x.labels.get("instance").map(String::as_str) == Some(instance))
            .map(|x| x.name.clone())
            .collect()
    };
    metrics_where(&s.op, "series of prod and down", |m| {
        let (p, d) = (of(m, "prod"), of(m, "down"));
        let has = |v: &[String], n: &str| v.iter().any(|x| x == n);
        if has(&p, "argomap_destination_applications")
            && has(&p, "argomap_credentials_expiry_timestamp_seconds")
            && has(&d, "argomap_argocd_request_errors_total")
        {
            Ok(())
        } else {
            Err(format!("prod: {p:?}, down: {d:?}"))
        }
    })
    .await;

    // A destination that vanishes from Argo CD loses its series at the next check.
    s.argocd.set_applications(vec![
        App::to_server("api", "https://10.0.0.1:6443"),
        App::to_name("web", "prod-eks").in_namespace("team-a"),
        App::to_server("guestbook", "https://kubernetes.default.svc"),
    ]);
    let instances = Api::<ArgoCdInstance>::namespaced(s.client.clone(), &ns);
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "vanish"}}});
    instances.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("refresh");
    let (_, m) = metrics_where(&s.op, "the vanished destination's series removed", |m| {
        let apps = m.find("argomap_destination_applications", &[("instance", "prod")]);
        let stray = apps.iter().filter(|x| x.labels["destination"] == APPS_ONLY).count();
        if apps.is_empty() || stray > 0 { Err(format!("{apps:?}")) } else { Ok(()) }
    })
    .await;
    assert_eq!(
        m.value(
            "argomap_destinations",
            &[("namespace", ns.as_str()), ("instance", "prod"), ("state", "unlinked")]
        ),
        Some(1.0)
    );

    instances.delete("prod", &DeleteParams::default()).await.expect("delete prod");
    let (_, m) = metrics_where(&s.op, "prod's series removed", |m| {
        let left = of(m, "prod");
        if left.is_empty() { Ok(()) } else { Err(format!("left: {left:?}")) }
    })
    .await;
    assert!(!of(&m, "down").is_empty(), "down keeps its series");
    assert!(m.value("argomap_build_info", &[("version", env!("CARGO_PKG_VERSION"))]).is_some());

    instances.delete("down", &DeleteParams::default()).await.expect("delete down");
    let (text, _) = metrics_where(&s.op, "down's series removed", |m| {
        let left = of(m, "down");
        if left.is_empty() { Ok(()) } else { Err(format!("left: {left:?}")) }
    })
    .await;
    assert!(!text.contains(&format!("namespace=\"{ns}\"")), "no series of the namespace remain:\n{text}");
    promtool_check(&text);
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus server from Debian's package, scraping one target every second, storage in a
/// temp dir; killed when dropped (its log is printed if the test failed).
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str, name: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        // Two jobs on the same target: `argomap` keeps the exposed `namespace`/`instance` labels
        // (honor_labels, as the chart's ServiceMonitor does); `argomap-plain` is Prometheus'
        // default, where the target's own `instance` label wins and argomap's becomes
        // `exported_instance`.
        let job = |name: &str, honor: bool| {
            format!(
                "  - job_name: {name}\n    honor_labels: {honor}\n    static_configs:\n      - targets: ['{target}']\n"
            )
        };
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}{}",
            job("argomap", true),
            job("argomap-plain", false)
        );
        std::fs::write(&config, yaml).expect("write config");
        let log = log_dir().join(format!("{name}-prometheus.log"));
        // Prometheus cannot report a port it picked, so one is chosen here; another process may
        // take it first, and then Prometheus exits at once: try again with another.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let file = std::fs::File::create(&log).expect("log file");
            let mut child = Command::new(prometheus_bin())
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(file)
                .spawn()
                .expect("start prometheus");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    assert!(text.contains("address already in use"), "prometheus exited ({status}):\n{text}");
                    break;
                }
                if std::net::TcpStream::connect(&addr).is_ok() {
                    return Prometheus { child, url: format!("http://{addr}"), log, _dir: dir };
                }
                assert!(std::time::Instant::now() < deadline, "prometheus does not listen on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("prometheus found no free port in 5 tries");
    }

    /// An instant query; the `result` vector.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let url = url::Url::parse_with_params(&format!("{}/api/v1/query", self.url), [("query", promql)])
            .expect("query URL");
        let r = get(url.as_str(), None).await?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.show()))?;
        if v["status"] != "success" {
            return Err(r.show());
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            print_log_tail("prometheus", &self.log, 30);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scrapes_instance_up() {
    let s = setup("obs-prom").await;
    let target = s.op.admin.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&target, &s.ns);
    get_until(&format!("{}/-/ready", prom.url), None, 200, Duration::from_secs(30)).await;

    let one = |promql: String| {
        let prom = &prom;
        async move {
            eventually(Duration::from_secs(60), &format!("PromQL {promql}"), || {
                let promql = promql.as_str();
                async move {
                    let result = prom.query(promql).await?;
                    if result.len() == 1 { Ok(result[0].clone()) } else { Err(format!("{result:?}")) }
                }
            })
            .await
        }
    };
    let up =
        one(format!("argomap_instance_up{{job=\"argomap\",namespace=\"{}\",instance=\"prod\"}} == 1", s.ns))
            .await;
    assert_eq!(up["value"][1], "1");
    // Without honor_labels the label is renamed, the value is the same.
    let plain = one(format!(
        "argomap_instance_up{{job=\"argomap-plain\",namespace=\"{}\",exported_instance=\"prod\"}} == 1",
        s.ns
    ))
    .await;
    assert_eq!(
        (plain["metric"]["instance"].as_str(), plain["metric"]["namespace"].as_str()),
        (Some(target.as_str()), Some(s.ns.as_str()))
    );
    // Both scrapes are healthy: Prometheus parsed the whole exposition.
    for job in ["argomap", "argomap-plain"] {
        let up = one(format!("up{{job=\"{job}\"}} == 1")).await;
        assert_eq!(up["value"][1], "1");
    }
    let families = prom
        .query(&format!(
            "count by (__name__) ({{job=\"argomap\",__name__=~\"argomap_.+\",namespace=\"{}\"}})",
            s.ns
        ))
        .await
        .expect("query families");
    assert!(families.len() >= 6, "{families:?}");
}

/// The Grafana dashboard the chart ships (and README shows how to import).
const DASHBOARD: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/charts/argomap/dashboards/argomap.json"));

/// Every panel of a dashboard, rows' nested panels included: (title, target exprs).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    fn walk(panels: &Value, out: &mut Vec<(String, Vec<String>)>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            if p["type"] == "row" {
                continue;
            }
            let exprs: Vec<String> = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    t["expr"].as_str().unwrap_or_else(|| panic!("a target without expr: {t}")).to_string()
                })
                .collect();
            out.push((p["title"].as_str().unwrap_or_default().to_string(), exprs));
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// What Grafana would send for the dashboard's variables, with concrete values.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut e = expr.to_string();
    // Longest names first, so `$__rate_interval` is not read as `$__rate` + text.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    for (name, value) in vars {
        e = e.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    e
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_panel_returns_data_from_a_real_prometheus() {
    let s = setup("obs-dash").await;
    // A failing instance, for the panels of failed checks by reason (and a 503 request code).
    let _down = failing_instance(&s).await;
    // An instance in watch mode whose stream was cut once, for the watch-mode panels.
    let _watched = watched_instance(&s).await;
    let target = s.op.admin.trim_start_matches("http://").to_string();
    let prom = Prometheus::start(&target, &s.ns);
    get_until(&format!("{}/-/ready", prom.url), None, 200, Duration::from_secs(30)).await;

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let names: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("variable name").to_string())
        .collect();
    let want: BTreeSet<String> =
        ["datasource", "job", "namespace", "instance", "topn"].iter().map(|n| n.to_string()).collect();
    assert_eq!(names, want, "the variables this test substitutes");
    // The job of the honor_labels scrape (as the chart's ServiceMonitor does); the instances of
    // this test; Grafana's rate interval for a 1 s scrape is at least 4 scrapes, 1m is the usual.
    let vars = [
        ("job", "argomap"),
        ("namespace", s.ns.as_str()),
        ("instance", "prod|down|watched"),
        ("topn", "10"),
        ("__rate_interval", "1m"),
    ];
    // The query variables' label_values(SELECTOR, LABEL) offer the values substituted below.
    for v in dashboard["templating"]["list"].as_array().into_iter().flatten().filter(|v| v["type"] == "query")
    {
        let q = v["query"]["query"].as_str().expect("a query variable's query");
        let inner =
            q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).expect("label_values(...)");
        let (selector, label) = inner.rsplit_once(',').expect("label_values(SELECTOR, LABEL)");
        let label = label.trim();
        let promql = substitute(&format!("count by ({label}) ({selector})"), &vars);
        let want =
            vars.iter().find(|(k, _)| *k == v["name"]).map(|(_, w)| *w).expect("a value for the variable");
        // Polled until every wanted value is offered: the two jobs' first scrapes land apart.
        eventually(
            Duration::from_secs(60),
            &format!("variable {} offers {want}: {promql}", v["name"]),
            || {
                let (prom, promql) = (&prom, promql.as_str());
                async move {
                    let r = prom.query(promql).await?;
                    let values: BTreeSet<&str> =
                        r.iter().filter_map(|r| r["metric"][label].as_str()).collect();
                    if want.split('|').all(|w| values.contains(w)) {
                        Ok(())
                    } else {
                        Err(format!("{values:?}"))
                    }
                }
            },
        )
        .await;
    }
    let panels = dashboard_queries(&dashboard);
    // What the dashboard must show, by panel title.
    for wanted in [
        "Instance up",
        "Data age",
        "Linked, unlinked and orphaned per instance",
        "Applications per destination (top $topn)",
        "Argo CD request latency",
        "Failed checks by reason",
        "Reconcile duration",
        "Credentials expiry",
        "Application stream up",
        "Stream events by type",
        "Stream reconnects by reason",
    ] {
        assert!(panels.iter().any(|(t, _)| t == wanted), "no panel {wanted:?}: {panels:?}");
    }
    let mut checked = 0;
    for (title, exprs) in &panels {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for expr in exprs {
            let promql = substitute(expr, &vars);
            assert!(!promql.contains('$'), "panel {title:?}: a variable this test does not know: {promql}");
            let result = eventually(Duration::from_secs(60), &format!("panel {title:?}: {promql}"), || {
                let (prom, promql) = (&prom, promql.as_str());
                async move {
                    let result = prom.query(promql).await?;
                    // Data: at least one series with a number (histogram_quantile gives NaN
                    // while nothing was observed in the window).
                    let finite = result.iter().any(|r| {
                        r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(f64::is_finite)
                    });
                    if finite { Ok(result) } else { Err(format!("{result:?}")) }
                }
            })
            .await;
            for r in &result {
                let ns = r["metric"]["namespace"].as_str();
                assert!(ns.is_none_or(|n| n == s.ns), "panel {title:?} shows another namespace: {r}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} queries");

    // A few values, so that "returns data" is also the right data.
    let value = |r: &Value| r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let one = |title: &str, index: usize| {
        let expr = &panels.iter().find(|(t, _)| t == title).expect("panel").1[index];
        substitute(expr, &vars)
    };
    let up = prom.query(&one("Instance up", 0)).await.expect("query");
    let by_instance: BTreeMap<&str, f64> =
        up.iter().map(|r| (r["metric"]["instance"].as_str().unwrap_or_default(), value(r))).collect();
    assert_eq!(by_instance, BTreeMap::from([("down", 0.0), ("prod", 1.0), ("watched", 1.0)]), "{up:?}");
    let streaming = prom.query(&one("Application stream up", 0)).await.expect("query");
    assert_eq!(streaming.len(), 1, "only the watched instance has a stream: {streaming:?}");
    assert_eq!((streaming[0]["metric"]["instance"].as_str(), value(&streaming[0])), (Some("watched"), 1.0));
    let reconnects = prom.query(&one("Stream reconnects by reason", 0)).await.expect("query");
    assert!(reconnects.iter().any(|r| r["metric"]["reason"] == "Malformed"), "{reconnects:?}");
    let expiry = prom.query(&one("Credentials expiry", 0)).await.expect("query");
    assert_eq!(expiry.len(), 1, "only prod's token has an exp: {expiry:?}");
    let left = value(&expiry[0]);
    assert!((s.exp - now_secs() - 120) as f64 <= left && left <= (s.exp - now_secs()) as f64 + 5.0, "{left}");
    let orphaned = prom.query(&one("Linked, unlinked and orphaned per instance", 2)).await.expect("query");
    let prod = orphaned.iter().find(|r| r["metric"]["instance"] == "prod").expect("prod orphaned");
    assert_eq!(value(prod), 1.0);
    let errors = prom.query(&one("Failed checks by reason", 0)).await.expect("query");
    assert!(
        errors.iter().any(|r| r["metric"]["instance"] == "down" && r["metric"]["reason"] == "Unreachable"),
        "{errors:?}"
    );
    let top = prom.query(&one("Applications per destination (top $topn)", 0)).await.expect("query");
    assert!(
        top.iter().any(|r| r["metric"]["destination"] == "https://10.0.0.1:6443" && value(r) == 2.0),
        "{top:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Health

#[tokio::test(flavor = "multi_thread")]
async fn healthz_is_200_and_readyz_is_200_once_synced() {
    let client = client().await;
    let ns = namespace(&client, "obs-health").await;
    let op = Operator::start(&ns);
    let health = get_until(&format!("{}/healthz", op.admin), None, 200, CHECK).await;
    assert_eq!(health.json(), json!({"status": "ok"}));
    assert!(health.content_type.starts_with("application/json"), "{}", health.content_type);
    let readyz = format!("{}/readyz", op.admin);
    let r = eventually(CHECK, "readyz 200", || {
        let readyz = readyz.as_str();
        async move {
            let r = get(readyz, None).await?;
            match r.status {
                200 => Ok(r),
                503 if r.json()["error"] == "NotReady" => Err(r.show()),
                _ => panic!("readyz answers neither 200 nor 503 NotReady: {}", r.show()),
            }
        }
    })
    .await;
    assert_eq!(r.json(), json!({"status": "ready"}));
    let metrics = scrape(&op).await.expect("metrics");
    assert!(metrics.content_type.starts_with("text/plain"), "{}", metrics.content_type);
    let nowhere = get(&format!("{}/nope", op.admin), None).await.expect("GET /nope");
    assert_eq!((nowhere.status, nowhere.json()["error"].clone()), (404, json!("NotFound")));
    // The read API's port serves no probe and no metrics.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = get(&format!("{}{path}", op.http), None).await.expect("GET");
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (404, json!("NotFound")),
            "{path} on the read API port"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The read API with ServiceAccount tokens

/// A read-API token (audience `argomap`) of ServiceAccount `name` (created if needed) from the
/// TokenRequest API.
async fn service_account_token(client: &Client, ns: &str, name: &str) -> String {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    if accounts.get_opt(name).await.expect("get service account").is_none() {
        let sa: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("service account");
        accounts.create(&PostParams::default(), &sa).await.expect("create service account");
    }
    token_of(&accounts, name, &[argomap::server::DEFAULT_AUDIENCE]).await
}

/// Role + RoleBinding: ServiceAccount `sa` may `list argocdinstances.argomap.io` in `ns`. Waits
/// until the API server's authorizer says so (it caches RBAC objects), so a review made after
/// this returns is answered with the grant.
async fn grant_list(client: &Client, ns: &str, sa: &str) {
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "argomap-viewer"},
        "rules": [{"apiGroups": ["argomap.io"], "resources": ["argocdinstances"], "verbs": ["list"]}]
    }))
    .expect("role");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("argomap-viewer-{sa}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "argomap-viewer"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create role binding");
    let reviews = Api::<SubjectAccessReview>::all(client.clone());
    let user = format!("system:serviceaccount:{ns}:{sa}");
    eventually(FAST, "the RoleBinding takes effect", || {
        let (reviews, user) = (&reviews, &user);
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.clone()),
                    groups: Some(vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{ns}"),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some("list".into()),
                        group: Some("argomap.io".into()),
                        resource: Some("argocdinstances".into()),
                        namespace: Some(ns.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let answer = reviews.create(&PostParams::default(), &review).await.map_err(|e| e.to_string())?;
            if answer.status.as_ref().is_some_and(|s| s.allowed) {
                Ok(())
            } else {
                Err(format!("{:?}", answer.status))
            }
        }
    })
    .await;
}

/// The contract's `ArgoCdInstanceMappingResponseList`, strict (no member it does not name), with
/// formats asserted: the same validator as `src/model/qovery.rs`'s tests.
fn contract_validator() -> jsonschema::Validator {
    let doc: Value = serde_yaml::from_str(CONTRACT).expect("contract parses");
    let mut components = doc["components"].clone();
    for schema in components["schemas"].as_object_mut().expect("schemas").values_mut() {
        if schema["type"] == "object" {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
    let schema = json!({
        "$ref": "#/components/schemas/ArgoCdInstanceMappingResponseList",
        "components": components,
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(&schema)
        .expect("contract schema compiles")
}

#[track_caller]
fn assert_contract(body: &Value) {
    let errors: Vec<String> =
        contract_validator().iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "body breaks the contract:\n  {}\nbody: {body:#}", errors.join("\n  "));
}

#[track_caller]
fn assert_error(r: &Reply, status: u16, category: &str) {
    assert_eq!(r.status, status, "{}", r.show());
    assert!(r.content_type.starts_with("application/json"), "{}: {}", r.content_type, r.show());
    let body = r.json();
    assert_eq!(body["error"], category, "{}", r.show());
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", r.show());
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{}", r.show());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_read_api_with_service_account_tokens_through_every_status() {
    let s = setup("obs-readapi").await;
    let (client, ns, op) = (&s.client, s.ns.as_str(), &s.op);
    ready(op).await;
    let url = mapping_url(op, ORG);
    let unknown = mapping_url(op, "00000000-0000-4000-8000-000000000000");

    // 401: no token, a garbage one, or one of a scheme that is not a bearer token.
    for auth in [None, Some("Bearer garbage"), Some("Bearer a.b.c"), Some("Basic dXNlcjpwYXNz")] {
        let r = get(&url, auth).await.expect("GET");
        assert_error(&r, 401, "Unauthorized");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    }
    // Even with a malformed organization id: the token is checked first.
    assert_error(&get(&mapping_url(op, "not-a-uuid"), None).await.expect("GET"), 401, "Unauthorized");

    // A valid ServiceAccount token without RBAC: 403 (before the operator sees the instance too:
    // the caller cannot list instances everywhere, so an unknown organization is 403 as well).
    let no_rbac = bearer(&service_account_token(client, ns, "viewer").await);
    let r = eventually(CHECK, "403 without RBAC", || {
        let (url, auth) = (url.as_str(), no_rbac.as_str());
        async move {
            let r = get(url, Some(auth)).await?;
            match r.status {
                403 => Ok(r),
                200 if r.json() == json!({"results": []}) => Err(r.show()),
                _ => panic!("a token without RBAC got {}", r.show()),
            }
        }
    })
    .await;
    assert_error(&r, 403, "Forbidden");
    // 400 with a JSON body for a malformed organizationId.
    for bad in ["not-a-uuid", "5e1c0e4e8f5a4c369d381f0d9c7c2b11", "5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b1g"] {
        assert_error(&get(&mapping_url(op, bad), Some(&no_rbac)).await.expect("GET"), 400, "BadRequest");
    }
    // No existence oracle: an unknown organization answers exactly as one the caller cannot see.
    let existing = get(&url, Some(&no_rbac)).await.expect("GET");
    let r = get(&unknown, Some(&no_rbac)).await.expect("GET");
    assert_error(&r, 403, "Forbidden");
    assert_eq!(r.body, existing.body, "same answer for an organization that exists and one that does not");

    // Granted: the same ServiceAccount with a fresh token (review answers of the first token are
    // cached for 30 s).
    grant_list(client, ns, "viewer").await;
    let viewer = bearer(&service_account_token(client, ns, "viewer").await);
    // The entry follows the instance's status, which follows the mappings: wait for both links.
    let r = eventually(FAST, "200 with both linked clusters", || {
        let (url, auth) = (url.as_str(), viewer.as_str());
        async move {
            let r = get(url, Some(auth)).await?;
            let linked = |b: &Value| b["results"][0]["linked_clusters"].as_array().map(Vec::len);
            if r.status == 200 && linked(&r.json()) == Some(2) { Ok(r) } else { Err(r.show()) }
        }
    })
    .await;
    let body = r.json();
    assert!(r.content_type.starts_with("application/json"), "{}", r.content_type);
    assert_contract(&body);
    let instance = Api::<ArgoCdInstance>::namespaced(client.clone(), ns).get("prod").await.expect("prod");
    let secret = Api::<Secret>::namespaced(client.clone(), ns).get("argocd-readonly").await.expect("secret");
    let last_checked = instance
        .status
        .as_ref()
        .and_then(|st| st.connection.as_ref())
        .and_then(|c| c.last_checked_at.as_ref())
        .map(|t| t.0.to_string())
        .expect("lastCheckedAt");
    assert_eq!(
        body,
        json!({"results": [{
            "agent_cluster_id": AGENT_ID,
            "agent_cluster_name": "Production EU",
            "agent_cluster_cloud_provider": "AWS",
            "credentials_id": secret.uid().expect("secret uid"),
            "argocd_url": s.argocd.url(),
            "status": "connected",
            "last_checked_at": last_checked,
            "linked_clusters": [
                {
                    "argocd_cluster_url": "https://10.0.0.1:6443",
                    "argocd_cluster_name": "prod-eks",
                    "qovery_cluster_id": MAPPED_ID,
                    "qovery_cluster_name": "Cluster prod-eks",
                    "qovery_cluster_cloud_provider": "GCP",
                    "qovery_cluster_type": "SELF_MANAGED",
                    "applications_count": 2
                },
                {
                    "argocd_cluster_url": "https://kubernetes.default.svc",
                    "argocd_cluster_name": "in-cluster",
                    "qovery_cluster_id": AGENT_ID,
                    "qovery_cluster_name": "Production EU",
                    "qovery_cluster_cloud_provider": "AWS",
                    "qovery_cluster_type": "MANAGED",
                    "applications_count": 1
                }
            ],
            "unlinked_clusters": [
                {"argocd_cluster_url": APPS_ONLY, "argocd_cluster_name": APPS_ONLY, "applications_count": 1},
                {"argocd_cluster_url": "https://old.example.com", "argocd_cluster_name": "old", "applications_count": 0}
            ]
        }]})
    );
    // The organization id compares ignoring case; the contract's `Token` scheme works too.
    let r = get(&mapping_url(op, &ORG.to_uppercase()), Some(&viewer)).await.expect("GET");
    assert_eq!((r.status, r.json()), (200, body.clone()));
    let token_scheme = viewer.replacen("Bearer ", "Token ", 1);
    assert_eq!(get(&url, Some(&token_scheme)).await.expect("GET").json(), body);
    // Granted in this namespace only, not cluster-wide: an unknown organization stays 403.
    assert_error(&get(&unknown, Some(&viewer)).await.expect("GET"), 403, "Forbidden");

    // Another ServiceAccount, granted in another namespace only, still gets 403 here.
    let other_ns = namespace(client, "obs-readapi-other").await;
    grant_list(client, &other_ns, "elsewhere").await;
    let elsewhere = bearer(&service_account_token(client, &other_ns, "elsewhere").await);
    assert_error(&get(&url, Some(&elsewhere)).await.expect("GET"), 403, "Forbidden");
}

// ---------------------------------------------------------------------------------------------
// Hardening: the admin port apart, bounded reviews, revocation, no oracle, bounded series

#[tokio::test(flavor = "multi_thread")]
async fn probes_and_metrics_answer_while_the_read_api_connections_are_all_taken() {
    let s = setup_with("obs-admin", &["--read-api-max-connections", "8"]).await;
    ready(&s.op).await;
    let read_api = s.op.http.trim_start_matches("http://").to_string();
    // Idle connections that never send a request: the read API's whole budget, and more.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(tokio::net::TcpStream::connect(&read_api).await.expect("connect"));
    }
    let quick = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("client");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = quick.get(format!("{}{path}", s.op.admin)).send().await;
        assert!(r.as_ref().is_ok_and(|r| r.status() == 200), "{path} while the read API is full: {r:?}");
    }
    // The idle connections give way (after a second without a byte) to a client with a request.
    let started = std::time::Instant::now();
    let r = quick.get(mapping_url(&s.op, ORG)).send().await;
    assert!(r.as_ref().is_ok_and(|r| r.status() == 401), "a new client is answered: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    metrics_where(&s.op, "the eviction is counted", |e| {
        let evicted = e
            .samples
            .iter()
            .filter(|x| x.name == "argomap_http_connections_refused_total")
            .filter(|x| x.labels.get("reason").map(String::as_str) == Some("evicted"))
            .filter(|x| x.labels.get("server").map(String::as_str) == Some("read-api"))
            .map(|x| x.value)
            .sum::<f64>();
        if evicted >= 1.0 { Ok(()) } else { Err(format!("{evicted} evictions")) }
    })
    .await;
    drop(idle);
}

/// A token of ServiceAccount `name` in `ns` (created if needed) for the API server's own
/// audience, as a Prometheus ServiceAccount has.
async fn plain_token(client: &Client, ns: &str, name: &str) -> String {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    if accounts.get_opt(name).await.expect("get service account").is_none() {
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
        accounts.create(&PostParams::default(), &sa).await.expect("create service account");
    }
    token_of(&accounts, name, &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn with_metrics_auth_only_a_scraper_allowed_to_get_metrics_reads_them() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let s = setup_with("obs-metrics-auth", &["--metrics-auth"]).await;
    // The probes need no token: the kubelet sends none.
    ready(&s.op).await;
    get_until(&format!("{}/healthz", s.op.admin), None, 200, FAST).await;
    let url = format!("{}/metrics", s.op.admin);
    assert_error(&get(&url, None).await.expect("GET"), 401, "Unauthorized");
    assert_error(&get(&url, Some("Bearer not-a-token")).await.expect("GET"), 401, "Unauthorized");
    let nobody = bearer(&plain_token(&s.client, &s.ns, "nobody").await);
    assert_error(&get(&url, Some(&nobody)).await.expect("GET"), 403, "Forbidden");
    // What the chart's <fullname>-metrics-reader grants, bound to a Prometheus-like account.
    let name = format!("{}-metrics-reader", s.ns);
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]
    }))
    .expect("cluster role");
    Api::<ClusterRole>::all(s.client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": s.ns}]
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(s.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    // argomap keeps a denial for the review TTL: ask only once the API server's authorizer
    // has the binding.
    let reviews = Api::<SubjectAccessReview>::all(s.client.clone());
    let user = format!("system:serviceaccount:{}:prometheus", s.ns);
    eventually(FAST, "the metrics-reader binding takes effect", || {
        let (reviews, user) = (&reviews, &user);
        async move {
            let review: SubjectAccessReview = serde_json::from_value(json!({
                "spec": {"user": user, "nonResourceAttributes": {"verb": "get", "path": "/metrics"}}
            }))
            .map_err(|e| e.to_string())?;
            let answer = reviews.create(&PostParams::default(), &review).await.map_err(|e| e.to_string())?;
            if answer.status.is_some_and(|s| s.allowed) { Ok(()) } else { Err("not yet".into()) }
        }
    })
    .await;
    let prometheus = bearer(&plain_token(&s.client, &s.ns, "prometheus").await);
    let r = get_until(&url, Some(&prometheus), 200, FAST).await;
    assert!(r.body.contains("argomap_instance_up{"), "{}", r.body);
    promtool_check(&r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_counts_for_its_organization_only_while_its_namespace_is_bound_to_it() {
    use argomap::model::organization::ORGANIZATION_LABEL;
    use k8s_openapi::api::core::v1::Namespace;
    let client = client().await;
    let ns = namespace_labelled(&client, "obs-org", None).await;
    let (argocd, token) = fake_with_expiry(now_secs() + 30 * 24 * 3600).await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let op = Operator::start(&ns);
    let condition = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "OrganizationBound"))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    // Unbound: connected, Ready, and left out of its organization's answer, saying why.
    let i = instance_where(&client, &ns, "prod", CHECK, "NamespaceNotInOrganization", |i| {
        connected(i) && condition(i).is_some_and(|c| c.1 == "NamespaceNotInOrganization")
    })
    .await;
    let (status, _, message) = condition(&i).expect("condition");
    assert_eq!(status, "False");
    assert!(
        message.contains(&format!("kubectl label namespace {ns} {ORGANIZATION_LABEL}={ORG}")),
        "{message}"
    );
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
    let reader = bearer(&reader_token(&client).await);
    let url = mapping_url(&op, ORG);
    let results = |r: &Reply| r.json()["results"].as_array().map(Vec::len).unwrap_or_default();
    assert_eq!(results(&get_until(&url, Some(&reader), 200, FAST).await), 0);
    // An administrator binds the namespace: the condition turns at once, the answer holds it.
    let namespaces = Api::<Namespace>::all(client.clone());
    let bind = json!({"metadata": {"labels": {ORGANIZATION_LABEL: ORG}}});
    namespaces.patch(&ns, &PatchParams::default(), &Patch::Merge(&bind)).await.expect("label");
    instance_where(&client, &ns, "prod", FAST, "NamespaceLabelled", |i| {
        condition(i).is_some_and(|c| c.0 == "True" && c.1 == "NamespaceLabelled")
    })
    .await;
    eventually(FAST, "the instance in its organization's answer", || {
        let (url, reader) = (&url, &reader);
        async move {
            let r = get(url, Some(reader)).await?;
            if results(&r) == 1 { Ok(()) } else { Err(r.show()) }
        }
    })
    .await;
    // Bound to another organization: out again.
    let other = json!({"metadata": {"labels": {ORGANIZATION_LABEL: OTHER_ORG}}});
    namespaces.patch(&ns, &PatchParams::default(), &Patch::Merge(&other)).await.expect("relabel");
    instance_where(&client, &ns, "prod", FAST, "NamespaceInOtherOrganization", |i| {
        condition(i).is_some_and(|c| c.1 == "NamespaceInOtherOrganization")
    })
    .await;
    assert_eq!(results(&get(&url, Some(&reader)).await.expect("GET")), 0);
    drop(argocd);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_tokens_issued_for_argomap_are_accepted() {
    let s = setup("obs-audience").await;
    ready(&s.op).await;
    let url = mapping_url(&s.op, ORG);
    // The API server's own tokens (the admin's; a ServiceAccount's without an audience) could be
    // replayed against it: refused.
    assert_error(&get(&url, Some(&bearer(&admin_token()))).await.expect("GET"), 401, "Unauthorized");
    grant_list(&s.client, &s.ns, "plain").await;
    let plain = plain_token(&s.client, &s.ns, "plain").await;
    assert_error(&get(&url, Some(&bearer(&plain))).await.expect("GET"), 401, "Unauthorized");
    // The same ServiceAccount with a token for argomap is let in.
    let for_argomap = bearer(&service_account_token(&s.client, &s.ns, "plain").await);
    get_until(&url, Some(&for_argomap), 200, FAST).await;
    // An empty --read-api-audience accepts the API server's audience (the old behaviour).
    let ns = namespace(&s.client, "obs-audience-any").await;
    let op = Operator::start_with(&ns, &["--read-api-audience", ""]);
    get_until(&format!("{}/readyz", op.admin), None, 200, CHECK).await;
    get_until(&mapping_url(&op, ORG), Some(&bearer(&admin_token())), 200, FAST).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_never_reviewed_are_throttled_per_client_with_429() {
    let s = setup_with("obs-throttle", &["--read-api-reviews-per-client", "2"]).await;
    ready(&s.op).await;
    let url = mapping_url(&s.op, ORG);
    let mut seen: BTreeMap<u16, usize> = BTreeMap::new();
    let started = std::time::Instant::now();
    for n in 0..60 {
        let r = get(&url, Some(&format!("Bearer not-a-token-{n}"))).await.expect("GET");
        if r.status == 429 {
            assert_error(&r, 429, "TooManyRequests");
        }
        *seen.entry(r.status).or_default() += 1;
    }
    // Every 401 cost one TokenReview: a burst of 4, then 2 per second.
    let reviewed = seen.get(&401).copied().unwrap_or(0);
    // Bounded by the time the loop took, however slow the machine; every other request was
    // answered 429 (so some were, unless the loop took half a minute).
    let budget = 4 + (2.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(reviewed <= budget, "{reviewed} reviews > {budget}: {seen:?}");
    let throttled = seen.get(&429).copied().unwrap_or(0);
    assert_eq!(reviewed + throttled, 60, "only 401 and 429: {seen:?}");
    assert!(budget >= 60 || throttled > 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_role_binding_is_refused_within_the_review_ttl() {
    let s = setup_with("obs-revoke", &["--read-api-review-ttl", "2s"]).await;
    ready(&s.op).await;
    grant_list(&s.client, &s.ns, "revoked").await;
    let auth = bearer(&service_account_token(&s.client, &s.ns, "revoked").await);
    let url = mapping_url(&s.op, ORG);
    get_until(&url, Some(&auth), 200, FAST).await;
    Api::<RoleBinding>::namespaced(s.client.clone(), &s.ns)
        .delete("argomap-viewer-revoked", &DeleteParams::default())
        .await
        .expect("delete role binding");
    let deleted = std::time::Instant::now();
    get_until(&url, Some(&auth), 403, Duration::from_secs(10)).await;
    // The TTL, plus the API server's own RBAC cache catching up.
    assert!(deleted.elapsed() < Duration::from_secs(8), "refused after {:?}", deleted.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_caller_who_sees_everything_learns_an_organization_is_unknown() {
    let s = setup("obs-oracle").await;
    ready(&s.op).await;
    let no_rbac = bearer(&service_account_token(&s.client, &s.ns, "nobody").await);
    let existing = get(&mapping_url(&s.op, ORG), Some(&no_rbac)).await.expect("GET");
    let unknown = get(&mapping_url(&s.op, OTHER_ORG), Some(&no_rbac)).await.expect("GET");
    assert_error(&existing, 403, "Forbidden");
    assert_eq!((unknown.status, unknown.body.clone()), (existing.status, existing.body.clone()));
    // A reader allowed to list everywhere: for it an unknown organization is empty.
    let admin = bearer(&reader_token(&s.client).await);
    let r = get(&mapping_url(&s.op, OTHER_ORG), Some(&admin)).await.expect("GET");
    assert_eq!((r.status, r.json()), (200, json!({"results": []})), "{}", r.show());
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_series_stay_within_the_flag() {
    let s = setup_with("obs-series", &["--destination-metrics-limit", "1"]).await;
    let text = eventually(CHECK, "destination series", || async {
        let text = scrape(&s.op).await?.body;
        if text.contains("argomap_destination_applications{") { Ok(text) } else { Err(text) }
    })
    .await;
    let ours = format!("namespace=\"{}\"", s.ns);
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("argomap_destination_applications{") && l.contains(&ours))
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    // The one kept has the most applications (prod-eks: 2); the counts per state stay exact.
    assert!(series[0].contains("destination=\"https://10.0.0.1:6443\""), "{series:?}");
    assert!(
        text.lines().any(|l| l.starts_with("argomap_destinations{")
            && l.contains(&ours)
            && l.contains("state=\"unlinked\"")
            && l.ends_with(" 2")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// schemathesis

/// The contract as schemathesis reads it: the fixture with the organization of the test
/// instance as the example of `organizationId` (so the examples phase asks for a populated
/// body, not only random unknown organizations), and every object schema strict like
/// `contract_validator`. Paths, parameters and responses are otherwise the fixture's.
fn schemathesis_spec(dir: &Path) -> PathBuf {
    let mut doc: Value = serde_yaml::from_str(CONTRACT).expect("contract parses");
    doc["components"]["parameters"]["organizationId"]["example"] = json!(ORG);
    for schema in doc["components"]["schemas"].as_object_mut().expect("schemas").values_mut() {
        if schema["type"] == "object" {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
    let path = dir.join("contract.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write spec");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_response_that_breaks_the_contract() {
    let s = setup("obs-fuzz").await;
    ready(&s.op).await;
    grant_list(&s.client, &s.ns, "fuzzer").await;
    let token = service_account_token(&s.client, &s.ns, "fuzzer").await;
    let auth = bearer(&token);
    let populated = get_until(&mapping_url(&s.op, ORG), Some(&auth), 200, FAST).await;
    assert_eq!(populated.json()["results"].as_array().map(Vec::len), Some(1), "{}", populated.show());
    assert_contract(&populated.json());
    // The cases this test stands for are sent explicitly, not left to what schemathesis
    // happens to generate: an unknown organization, a malformed id, no token, a bad token.
    // Allowed in one namespace only: an unknown organization is 403, as one it cannot see.
    let unknown = get(&mapping_url(&s.op, OTHER_ORG), Some(&auth)).await.expect("GET");
    assert_error(&unknown, 403, "Forbidden");
    assert_error(&get(&mapping_url(&s.op, "not-a-uuid"), Some(&auth)).await.expect("GET"), 400, "BadRequest");
    assert_error(&get(&mapping_url(&s.op, ORG), None).await.expect("GET"), 401, "Unauthorized");
    assert_error(
        &get(&mapping_url(&s.op, ORG), Some("Bearer nope")).await.expect("GET"),
        401,
        "Unauthorized",
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let spec = schemathesis_spec(dir.path());
    let log = log_dir().join(format!("{}-schemathesis.log", s.ns));
    let junit = dir.path().join("junit.xml");
    let har = dir.path().join("requests.har");
    let st = schemathesis();
    let op_url = s.op.http.clone();
    let args: Vec<String> = vec![
        "run".into(),
        spec.display().to_string(),
        "--url".into(),
        op_url,
        "--header".into(),
        format!("Authorization: {auth}"),
        "--include-operation-id".into(),
        "listArgoCdDestinationClusterMappings".into(),
        // Every check but status_code_conformance: the contract lists 200, 401, 403 and 404
        // only, while the read API deliberately answers a malformed organizationId with 400
        // (docs/read-api.md), and 503 while not ready or when reviews fail. That check flags
        // the 400s (ST103 "Undocumented status code") and nothing else. The others include
        // response_schema_conformance (every 200 body against the strict schema above),
        // not_a_server_error, negative_data_rejection (a malformed id is a 4xx),
        // positive_data_acceptance and ignored_auth (no or a bad token is 401).
        "--checks".into(),
        "all".into(),
        "--exclude-checks".into(),
        "status_code_conformance".into(),
        "--phases".into(),
        "examples,coverage,fuzzing".into(),
        "--max-examples".into(),
        "200".into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "10".into(),
        // The same requests on every run: a fixed seed, and deterministic generation (which
        // also keeps no example database between runs).
        "--seed".into(),
        "20261201".into(),
        "--generation-deterministic".into(),
        "--report".into(),
        "junit,har".into(),
        "--report-junit-path".into(),
        junit.display().to_string(),
        "--report-har-path".into(),
        har.display().to_string(),
        "--no-color".into(),
    ];
    let workdir = dir.path().to_path_buf();
    let out =
        tokio::task::spawn_blocking(move || run_bounded(&st, &args, &workdir, Duration::from_secs(240)))
            .await
            .expect("schemathesis thread");
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(&log, text.replace(&token, "<token>")).expect("write schemathesis log");
    assert!(
        out.status.success(),
        "schemathesis failed ({}), output in {}:\n{text}",
        out.status,
        log.display()
    );
    let report = std::fs::read_to_string(&junit).expect("junit report");
    assert!(report.contains("<testcase"), "schemathesis ran no test case:\n{report}\n{text}");

    // Every answer it got is one the read API documents, and every populated body is valid.
    // Which statuses it happened to draw is not asserted: the explicit requests above cover them.
    let har: Value = serde_json::from_slice(&std::fs::read(&har).expect("HAR report")).expect("HAR JSON");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in har["log"]["entries"].as_array().expect("HAR entries") {
        let status = entry["response"]["status"].as_u64().unwrap_or(0);
        let body: Value = entry["response"]["content"]["text"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(Value::Null);
        let kind = match status {
            200 if body["results"].as_array().is_some_and(|r| !r.is_empty()) => {
                assert_contract(&body);
                "200 populated"
            }
            200 => {
                assert_contract(&body);
                "200 empty"
            }
            400 => "400",
            401 => "401",
            403 => "403",
            404 => "404",
            // Methods the operation does not have (the coverage phase tries them).
            405 => "405",
            other => panic!("schemathesis got status {other}: {entry}"),
        };
        *seen.entry(kind).or_default() += 1;
    }
    let total: usize = seen.values().sum();
    assert!(total >= 20, "schemathesis sent only {total} requests: {seen:?}");
    std::fs::write(log_dir().join(format!("{}-schemathesis-statuses.txt", s.ns)), format!("{seen:?}\n"))
        .expect("write summary");
}

/// Runs `cmd args` in `dir`, killed after `limit`.
fn run_bounded(cmd: &Path, args: &[String], dir: &Path, limit: Duration) -> std::process::Output {
    let child = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", cmd.display()));
    let pid = child.id();
    let (done, wait) = std::sync::mpsc::channel();
    let watchdog = std::thread::spawn(move || {
        if wait.recv_timeout(limit).is_err() {
            // Still running after the limit: end it (only this child, by its pid).
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("wait");
    let _ = done.send(());
    let _ = watchdog.join();
    out
}
