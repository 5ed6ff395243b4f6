//! The metrics suite on the real control plane: `/metrics` checked by `promtool` and scraped by
//! a real Prometheus (every query of the Grafana dashboard answered there), `/healthz` and
//! `/readyz`, `/metrics` behind `--metrics-auth`, and the per-destination series within their
//! flag. Its helpers, shared with the read-API suite, are in `served.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use argomap::crd::{ArgoCdInstance, REFRESH_ANNOTATION, Reason};
use fake_argocd::App;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use strum::VariantArray as _;

use crate::common::*;
use crate::served::*;
// Not `common`'s: the namespace these suites start from has a running operator.
use crate::served::setup;

/// Every metric family of docs/operating.md ("Metrics").
const FAMILIES: [&str; 18] = [
    "argomap_instance_up",
    "argomap_instance_last_check_timestamp_seconds",
    "argomap_instance_last_success_timestamp_seconds",
    "argomap_instance_data_age_seconds",
    "argomap_destinations",
    "argomap_orphaned_mappings",
    "argomap_destination_applications",
    "argomap_destination_info",
    "argomap_dangling_destinations",
    "argomap_destination_applications_by_health",
    "argomap_destination_applications_by_sync",
    "argomap_credentials_expiry_timestamp_seconds",
    "argomap_argocd_request_duration_seconds",
    "argomap_argocd_request_errors_total",
    "argomap_reconcile_duration_seconds",
    "argomap_reconcile_errors_total",
    "argomap_cluster_instances",
    "argomap_build_info",
];

/// The labels of `argomap_destination_info`.
const INFO_LABELS: [&str; 9] = [
    "namespace",
    "instance",
    "destination",
    "argocd_cluster_name",
    "state",
    "cluster_id",
    "cluster_name",
    "cluster_type",
    "cloud_provider",
];

/// Asks instance `name` to count its applications by health and sync (`spec.applications.health`).
async fn count_health(s: &crate::served::Setup, name: &str) {
    let on = json!({"spec": {"applications": {"health": true}}});
    Api::<ArgoCdInstance>::namespaced(s.client.clone(), &s.ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&on))
        .await
        .expect("turn health on");
}

/// A counter with no series yet is not exposed at all. Reconciles fail only on Kubernetes API
/// errors, which a healthy control plane does not produce, so this family may be absent.
const ONLY_AFTER_AN_ERROR: &str = "argomap_reconcile_errors_total";

fn promtool() -> PathBuf {
    tool("ARGOMAP_TEST_PROMTOOL", "promtool")
}

fn prometheus_bin() -> PathBuf {
    tool("ARGOMAP_TEST_PROMETHEUS", "prometheus")
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
    count_health(&s, "prod").await;
    let ns = s.ns.as_str();
    let prod = [("namespace", ns), ("instance", "prod")];
    let down = [("namespace", ns), ("instance", "down")];
    let (text, m) = metrics_where(&s.op, "series of both instances", |m| {
        let up = |labels: &[(&str, &str)]| m.value("argomap_instance_up", labels);
        if up(&prod) != Some(1.0) || up(&down) != Some(0.0) {
            return Err("instance_up of prod and down".into());
        }
        if m.find("argomap_destination_applications_by_health", &prod).is_empty() {
            return Err("no counts by health of prod yet".into());
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
        ("argomap_destination_info", INFO_LABELS.to_vec()),
        ("argomap_dangling_destinations", inst.to_vec()),
        (
            "argomap_destination_applications_by_health",
            vec!["namespace", "instance", "destination", "health"],
        ),
        ("argomap_destination_applications_by_sync", vec!["namespace", "instance", "destination", "sync"]),
        ("argomap_credentials_expiry_timestamp_seconds", inst.to_vec()),
        ("argomap_argocd_request_duration_seconds", vec!["endpoint", "code"]),
        ("argomap_argocd_request_errors_total", vec!["namespace", "instance", "reason"]),
        ("argomap_reconcile_duration_seconds", vec!["controller"]),
        ("argomap_reconcile_errors_total", vec!["controller", "category"]),
        ("argomap_cluster_instances", vec!["cluster_id", "cluster_name"]),
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
    // The join metric: state, and the platform cluster of each link (the mapping's, or the
    // agent cluster for the implicit in-cluster link).
    let info: BTreeMap<String, Vec<String>> = m
        .find("argomap_destination_info", &prod)
        .iter()
        .map(|x| {
            assert_eq!(x.value, 1.0, "{x:?}");
            let l = |k: &str| x.labels[k].clone();
            (
                l("destination"),
                ["argocd_cluster_name", "state", "cluster_name", "cluster_type", "cloud_provider"]
                    .map(l)
                    .to_vec(),
            )
        })
        .collect();
    let row = |cells: [&str; 5]| cells.map(str::to_string).to_vec();
    let want: BTreeMap<String, Vec<String>> = [
        ("https://10.0.0.1:6443", row(["prod-eks", "linked", "Cluster prod-eks", "SELF_MANAGED", "GCP"])),
        ("https://kubernetes.default.svc", row(["in-cluster", "linked", "Production EU", "MANAGED", "AWS"])),
        ("https://old.example.com", row(["old", "unlinked", "", "", ""])),
        (APPS_ONLY, row(["", "dangling", "", "", ""])),
    ]
    .into_iter()
    .map(|(d, r)| (d.to_string(), r))
    .collect();
    assert_eq!(info, want, "{text}");
    assert_eq!(v("argomap_dangling_destinations", &[]), 1.0);
    assert!(m.value("argomap_dangling_destinations", &down).is_none(), "no data, no count");
    // Counts by health and sync: every fixed value, for every destination kept.
    let healths: BTreeSet<&str> = m
        .find("argomap_destination_applications_by_health", &prod)
        .iter()
        .map(|x| x.labels["health"].as_str())
        .collect();
    assert_eq!(healths, argomap::metrics::HEALTH.into_iter().collect(), "{text}");
    let syncs: BTreeSet<&str> = m
        .find("argomap_destination_applications_by_sync", &prod)
        .iter()
        .map(|x| x.labels["sync"].as_str())
        .collect();
    assert_eq!(syncs, argomap::metrics::SYNC.into_iter().collect(), "{text}");
    let healthy = v(
        "argomap_destination_applications_by_health",
        &[("destination", "https://10.0.0.1:6443"), ("health", "Healthy")],
    );
    assert_eq!(healthy, 2.0, "the fake's applications are Healthy and Synced");
    assert_eq!(
        v("argomap_destination_applications_by_sync", &[("destination", APPS_ONLY), ("sync", "Synced")]),
        1.0
    );
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
    // prod deploys to its agent cluster (in-cluster) and to the mapped one; down nowhere yet.
    let per_cluster: BTreeMap<(&str, &str), f64> = m
        .find("argomap_cluster_instances", &[])
        .iter()
        .map(|x| ((x.labels["cluster_id"].as_str(), x.labels["cluster_name"].as_str()), x.value))
        .collect();
    let want: BTreeMap<(&str, &str), f64> = [
        (("0b9f6a1e-2c1d-4e4f-9a4b-1f2e3d4c5b6a", "Production EU"), 1.0),
        (("7c9e6679-7425-40de-944b-e07fc1f90ae7", "Cluster prod-eks"), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_cluster, want, "{text}");
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
        let mut left = Vec::new();
        for family in ["argomap_destination_applications", "argomap_destination_info"] {
            let series = m.find(family, &[("instance", "prod")]);
            if series.is_empty() {
                return Err(format!("no {family} of prod"));
            }
            left.extend(series.into_iter().filter(|x| x.labels["destination"] == APPS_ONLY));
        }
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;
    assert_eq!(
        m.value("argomap_dangling_destinations", &[("namespace", ns.as_str()), ("instance", "prod")]),
        Some(0.0),
        "no destination dangles any more"
    );
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
        Self::start_with(target, name, &[])
    }

    /// [`Prometheus::start`], also scraping each (job, target) of `others` with Prometheus'
    /// defaults (as an Argo CD's metrics would be).
    fn start_with(target: &str, name: &str, others: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        // Two jobs on the same target: `argomap` keeps the exposed `namespace`/`instance` labels
        // (honor_labels, as the chart's ServiceMonitor does); `argomap-plain` is Prometheus'
        // default, where the target's own `instance` label wins and argomap's becomes
        // `exported_instance`.
        let job = |name: &str, target: &str, honor: bool| {
            format!(
                "  - job_name: {name}\n    honor_labels: {honor}\n    static_configs:\n      - targets: ['{target}']\n"
            )
        };
        let mut jobs = job("argomap", target, true) + &job("argomap-plain", target, false);
        for (name, target) in others {
            jobs += &job(name, target, false);
        }
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
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

// ---------------------------------------------------------------------------------------------
// Joining with Argo CD's own metrics

/// What an Argo CD application controller's `/metrics` would say of the fake's fleet: its
/// applications as written (`api-slash`'s server with a trailing `/`, `web` aimed at a cluster
/// name, so with an empty `dest_server`), and its clusters' connections.
const ARGOCD_METRICS: &str = r#"# HELP argocd_app_info Information about application.
# TYPE argocd_app_info gauge
argocd_app_info{autosync_enabled="true",dest_namespace="api",dest_server="https://10.0.0.1:6443",health_status="Healthy",name="api",namespace="argocd",operation="",project="default",repo="https://git.example.com/apps",sync_status="Synced"} 1
argocd_app_info{autosync_enabled="true",dest_namespace="api",dest_server="https://10.0.0.1:6443/",health_status="Healthy",name="api-slash",namespace="argocd",operation="",project="default",repo="https://git.example.com/apps",sync_status="Synced"} 1
argocd_app_info{autosync_enabled="false",dest_namespace="web",dest_server="",health_status="Healthy",name="web",namespace="team-a",operation="",project="default",repo="https://git.example.com/apps",sync_status="Synced"} 1
argocd_app_info{autosync_enabled="false",dest_namespace="guestbook",dest_server="https://kubernetes.default.svc",health_status="Healthy",name="guestbook",namespace="argocd",operation="",project="default",repo="https://git.example.com/apps",sync_status="OutOfSync"} 1
argocd_app_info{autosync_enabled="false",dest_namespace="stray",dest_server="https://apps-only.example.com",health_status="Unknown",name="stray",namespace="argocd",operation="",project="default",repo="https://git.example.com/apps",sync_status="Unknown"} 1
# HELP argocd_cluster_connection_status The k8s cluster current connection status.
# TYPE argocd_cluster_connection_status gauge
argocd_cluster_connection_status{k8s_version="v1.33.1",server="https://10.0.0.1:6443"} 1
argocd_cluster_connection_status{k8s_version="v1.33.1",server="https://old.example.com"} 0
argocd_cluster_connection_status{k8s_version="v1.33.1",server="https://kubernetes.default.svc"} 1
"#;

/// Serves [`ARGOCD_METRICS`] at `/metrics` on a loopback port until the test's runtime ends;
/// returns `host:port`.
async fn argocd_metrics() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address").to_string();
    let metrics =
        || async { ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], ARGOCD_METRICS) };
    let app = axum::Router::new().route("/metrics", axum::routing::get(metrics));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The PromQL blocks of docs/operating.md's "Joining with Argo CD's metrics", in order, as
/// written (for its example instance `namespace="platform", instance="prod-argocd"`).
fn join_recipes_as_written() -> Vec<String> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md")).expect("docs");
    let section = doc.split_once("### Joining with Argo CD's metrics").expect("the join section").1;
    let section = section.split("\n## ").next().unwrap_or_default();
    let section = section.split("\n### ").next().unwrap_or_default();
    section
        .split("```promql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_string())
        .collect()
}

/// [`join_recipes_as_written`] for instance `prod` of namespace `ns`.
fn join_recipes(ns: &str) -> Vec<String> {
    let example = r#"namespace="platform", instance="prod-argocd""#;
    let ours = format!(r#"namespace="{ns}", instance="prod""#);
    let blocks: Vec<String> = join_recipes_as_written().iter().map(|b| b.replace(example, &ours)).collect();
    assert!(blocks.iter().all(|b| b.contains(&ours)), "each recipe selects one instance: {blocks:?}");
    blocks
}

/// The result of an instant query as `label` → the value of `of` (absent: empty).
fn by_label(result: &[Value], label: &str, of: &str) -> BTreeMap<String, String> {
    result
        .iter()
        .map(|r| {
            let l = |k: &str| r["metric"][k].as_str().unwrap_or_default().to_string();
            (l(label), l(of))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_join_names_argo_cds_applications_platform_clusters_in_a_real_prometheus() {
    let s = setup("obs-join").await;
    // One more application, its server written with a trailing `/`: argomap counts it under the
    // normalised URL, Argo CD's metric keeps it as written.
    let mut apps = fake_argocd::sample_apps();
    apps.push(App::to_server("stray", APPS_ONLY));
    apps.push(App::to_server("api-slash", "https://10.0.0.1:6443/"));
    s.argocd.set_applications(apps);
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "join"}}});
    Api::<ArgoCdInstance>::namespaced(s.client.clone(), &s.ns)
        .patch("prod", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .expect("refresh");
    let prod = [("namespace", s.ns.as_str()), ("instance", "prod")];
    metrics_where(&s.op, "api-slash counted under the normalised URL", |m| {
        let labels = [prod[0], prod[1], ("destination", "https://10.0.0.1:6443"), ("linked", "true")];
        let n = m.value("argomap_destination_applications", &labels);
        if n == Some(3.0) { Ok(()) } else { Err(format!("{n:?}")) }
    })
    .await;

    let argocd = argocd_metrics().await;
    let target = s.op.admin.trim_start_matches("http://").to_string();
    let prom = Prometheus::start_with(&target, &s.ns, &[("argocd", &argocd)]);
    get_until(&format!("{}/-/ready", prom.url), None, 200, Duration::from_secs(30)).await;
    let recipes = join_recipes(&s.ns);
    assert_eq!(recipes.len(), 4, "{recipes:?}");
    // Polled until both sides have been scraped and the expected rows are there.
    let rows = |promql: String, label: &'static str, want: BTreeMap<String, String>| {
        let prom = &prom;
        async move {
            eventually(Duration::from_secs(60), &format!("PromQL {promql}"), || {
                let (promql, want) = (promql.as_str(), &want);
                async move {
                    let got = by_label(&prom.query(promql).await?, label, "cluster_name");
                    if &got == want { Ok(()) } else { Err(format!("{got:?}")) }
                }
            })
            .await
        }
    };
    let map = |rows: &[(&str, &str)]| -> BTreeMap<String, String> {
        rows.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    // The recipe: each application with the platform cluster of its destination (none for the
    // dangling one). api-slash's server is not written as argomap normalises it, and web names
    // its cluster: neither joins.
    rows(
        recipes[0].clone(),
        "name",
        map(&[("api", "Cluster prod-eks"), ("guestbook", "Production EU"), ("stray", "")]),
    )
    .await;
    // Trailing slashes dropped on Argo CD's side: api-slash joins too.
    rows(
        recipes[1].clone(),
        "name",
        map(&[
            ("api", "Cluster prod-eks"),
            ("api-slash", "Cluster prod-eks"),
            ("guestbook", "Production EU"),
            ("stray", ""),
        ]),
    )
    .await;
    // What did not join, to look at.
    rows(recipes[2].clone(), "name", map(&[("api-slash", ""), ("web", "")])).await;
    // Argo CD's clusters and their connection, with the platform cluster of each.
    rows(
        recipes[3].clone(),
        "server",
        map(&[
            ("https://10.0.0.1:6443", "Cluster prod-eks"),
            ("https://kubernetes.default.svc", "Production EU"),
            ("https://old.example.com", ""),
        ]),
    )
    .await;
    // The README's recipe is the first one.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let first = &join_recipes_as_written()[0];
    assert!(readme.contains(first.as_str()), "README's recipe differs from docs/operating.md's:\n{first}");
}

/// The Grafana dashboard the chart ships (and README shows how to import).
const DASHBOARD: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/charts/argomap/dashboards/argomap.json"));

/// Every panel of a dashboard, rows' nested panels included: (title, target exprs, the variable
/// it is repeated for).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, Vec<String>, Option<String>)> {
    fn walk(panels: &Value, out: &mut Vec<(String, Vec<String>, Option<String>)>) {
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
            let repeat = p["repeat"].as_str().map(str::to_string);
            out.push((p["title"].as_str().unwrap_or_default().to_string(), exprs, repeat));
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
    // Counts by health and sync for prod, and Argo CD's own metrics, for the join tables.
    count_health(&s, "prod").await;
    let argocd = argocd_metrics().await;
    let target = s.op.admin.trim_start_matches("http://").to_string();
    let prom = Prometheus::start_with(&target, &s.ns, &[("argocd", &argocd)]);
    get_until(&format!("{}/-/ready", prom.url), None, 200, Duration::from_secs(30)).await;

    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let names: BTreeSet<String> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("variable name").to_string())
        .collect();
    let want: BTreeSet<String> = ["datasource", "job", "namespace", "instance", "topn", "argocd_job"]
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names, want, "the variables this test substitutes");
    // The job of the honor_labels scrape (as the chart's ServiceMonitor does); the instances of
    // this test; Grafana's rate interval for a 1 s scrape is at least 4 scrapes, 1m is the usual.
    let vars = [
        ("job", "argomap"),
        ("namespace", s.ns.as_str()),
        ("instance", "prod|down|watched"),
        ("topn", "10"),
        ("argocd_job", "argocd"),
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
        "Dangling destinations per instance",
        "Applications by health per destination (top $topn)",
        "Applications by sync status per destination (top $topn)",
        "Argo CD applications by platform cluster ($instance)",
        "Argo CD cluster connections by platform cluster ($instance)",
        "Application stream up",
        "Stream events by type",
        "Stream reconnects by reason",
    ] {
        assert!(panels.iter().any(|(t, _, _)| t == wanted), "no panel {wanted:?}: {panels:?}");
    }
    let mut checked = 0;
    for (title, exprs, repeat) in &panels {
        assert!(!exprs.is_empty(), "panel {title:?} has no query");
        for expr in exprs {
            let vars: Vec<(&str, &str)> = match repeat {
                Some(var) => {
                    vars.iter().map(|(k, v)| if k == var { (*k, "prod") } else { (*k, *v) }).collect()
                }
                None => vars.to_vec(),
            };
            let promql = substitute(expr, &vars);
            // `"$1"`: label_replace's replacement, not a variable.
            let unknown = promql.replace("\"$1\"", "").contains('$');
            assert!(!unknown, "panel {title:?}: a variable this test does not know: {promql}");
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
        // A panel repeated for a variable is one copy per value, each with that value only:
        // prod's copy has data (above), every copy's query runs (the data is there by now).
        if let Some(var) = repeat {
            let all = vars.iter().find(|(k, _)| k == var).map(|(_, v)| *v).expect("a value for the variable");
            for value in all.split('|') {
                let one: Vec<(&str, &str)> =
                    vars.iter().map(|(k, v)| if k == var { (*k, value) } else { (*k, *v) }).collect();
                for expr in exprs {
                    let promql = substitute(expr, &one);
                    if let Err(e) = prom.query(&promql).await {
                        panic!("panel {title:?}, copy for {value}: {promql}: {e}");
                    }
                }
            }
        }
    }
    assert!(checked >= 12, "only {checked} queries");

    // A few values, so that "returns data" is also the right data.
    let value = |r: &Value| r["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let one = |title: &str, index: usize| {
        let (_, exprs, repeat) = panels.iter().find(|(t, _, _)| t == title).expect("panel");
        let vars: Vec<(&str, &str)> = vars
            .iter()
            .map(|(k, v)| if Some(*k) == repeat.as_deref() { (*k, "prod") } else { (*k, *v) })
            .collect();
        substitute(&exprs[index], &vars)
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
    let dangling = prom.query(&one("Dangling destinations per instance", 0)).await.expect("query");
    let by_instance: BTreeMap<&str, f64> =
        dangling.iter().map(|r| (r["metric"]["instance"].as_str().unwrap_or_default(), value(r))).collect();
    assert_eq!(by_instance, BTreeMap::from([("prod", 1.0), ("watched", 0.0)]), "{dangling:?}");
    let health =
        prom.query(&one("Applications by health per destination (top $topn)", 0)).await.expect("query");
    assert!(
        health.iter().all(|r| r["metric"]["instance"] == "prod" && r["metric"]["health"] == "Healthy"),
        "only prod counts by health, and the fake's applications are Healthy: {health:?}"
    );
    let joined =
        prom.query(&one("Argo CD applications by platform cluster ($instance)", 0)).await.expect("query");
    let apps: BTreeMap<(&str, &str), f64> = joined
        .iter()
        .map(|r| {
            let l = |k: &str| r["metric"][k].as_str().unwrap_or_default();
            ((l("dest_server"), l("cluster_name")), value(r))
        })
        .collect();
    assert_eq!(
        apps,
        BTreeMap::from([
            // api, and api-slash with its trailing `/` dropped by the panel's query.
            (("https://10.0.0.1:6443", "Cluster prod-eks"), 2.0),
            (("https://kubernetes.default.svc", "Production EU"), 1.0),
            ((APPS_ONLY, ""), 1.0),
        ]),
        "{joined:?}"
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
// Hardening: who reads /metrics, bounded series

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
    let info: Vec<&str> =
        text.lines().filter(|l| l.starts_with("argomap_destination_info{") && l.contains(&ours)).collect();
    assert_eq!(info.len(), 1, "the join metric keeps the same destination: {info:?}");
    assert!(info[0].contains("destination=\"https://10.0.0.1:6443\""), "{info:?}");

    // Counts by health and sync, once asked for: the same one destination, each fixed value.
    count_health(&s, "prod").await;
    let (_, m) = metrics_where(&s.op, "counts by health", |m| {
        let ours = [("namespace", s.ns.as_str())];
        if m.find("argomap_destination_applications_by_sync", &ours).is_empty() {
            Err("none yet".into())
        } else {
            Ok(())
        }
    })
    .await;
    for (family, values) in [
        ("argomap_destination_applications_by_health", argomap::metrics::HEALTH.len()),
        ("argomap_destination_applications_by_sync", argomap::metrics::SYNC.len()),
    ] {
        let series = m.find(family, &[("namespace", s.ns.as_str())]);
        assert_eq!(series.len(), values, "{family}: {series:?}");
        assert!(series.iter().all(|x| x.labels["destination"] == "https://10.0.0.1:6443"), "{series:?}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("argomap_destinations{")
            && l.contains(&ours)
            && l.contains("state=\"unlinked\"")
            && l.ends_with(" 2")),
        "{text}"
    );
}
