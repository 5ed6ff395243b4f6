//! `argomap check` as a user runs it: the real binary against the fake Argo CD.

use std::process::Command;

use argomap_test_support::MANIFESTS;
use fake_argocd::{App, Cluster, FakeArgoCd, Fault, Options, jwt};

struct Setup {
    argocd: FakeArgoCd,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let argocd = FakeArgoCd::start(Options::default()).await;
    let token = jwt("argomap:apiKey", None);
    argocd.add_token(&token);
    argocd.set_clusters(vec![
        Cluster::new("https://10.0.0.1:6443", "prod-eks"),
        Cluster::new("https://old.example.com", "old"),
    ]);
    argocd.set_applications(vec![
        App::to_server("api", "https://10.0.0.1:6443"),
        App::to_server("guestbook", "https://kubernetes.default.svc"),
        App::to_name("ghost", "no-such-cluster"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), format!("{token}\n")).expect("token file");
    std::fs::write(dir.path().join("manifests.yaml"), MANIFESTS).expect("manifests");
    Setup { argocd, dir }
}

fn argomap(s: &Setup, extra: &[&str]) -> std::process::Output {
    let token = s.dir.path().join("token");
    let mut args = vec![
        "check".to_string(),
        "--url".into(),
        s.argocd.url(),
        "--token-file".into(),
        token.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Command::new(env!("CARGO_BIN_EXE_argomap")).args(&args).output().expect("run argomap")
}

#[tokio::test(flavor = "multi_thread")]
async fn json_report_has_the_status_and_mapping_states() {
    let s = setup().await;
    let manifests = s.dir.path().join("manifests.yaml").display().to_string();
    let out = tokio::task::block_in_place(|| argomap(&s, &["-f", &manifests, "-o", "json"]));
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let status = &report["status"];
    assert_eq!(status["connection"]["status"], "connected");
    assert_eq!(status["summary"]["linkedClusters"], 2);
    assert_eq!(status["summary"]["unlinkedClusters"], 1);
    assert_eq!(status["summary"]["unresolvedApplications"], 1);
    assert_eq!(status["linkedClusters"][1]["cluster"]["name"], "Production EU");
    assert_eq!(status["orphanedMappings"], serde_json::json!(["legacy-gke"]));
    assert_eq!(report["clusterMappings"]["prod-eks"]["state"], "Linked");
    assert_eq!(report["clusterMappings"]["legacy-gke"]["state"], "Orphaned");
}

#[tokio::test(flavor = "multi_thread")]
async fn table_lists_destinations() {
    let s = setup().await;
    let out = tokio::task::block_in_place(|| argomap(&s, &[]));
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("connected"), "{text}");
    assert!(text.lines().next().unwrap_or("").contains("v3.6.1"), "{text}");
    let row = text.lines().find(|l| l.starts_with("https://old.example.com")).expect("row");
    assert!(row.contains("unlinked"), "{row}");
    let row = text.lines().find(|l| l.starts_with("https://kubernetes.default.svc")).expect("row");
    assert!(row.contains("linked") && row.contains("(agent cluster)"), "{row}");
    assert!(text.contains("1 unresolved"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_check_still_prints_the_status_and_exits_non_zero() {
    let s = setup().await;
    s.argocd.set_fault(Some(Fault::TokenExpired));
    let out = tokio::task::block_in_place(|| argomap(&s, &["-o", "json"]));
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["status"]["connection"]["status"], "error");
    assert_eq!(report["status"]["connection"]["reason"], "AuthenticationFailed");
    let token = std::fs::read_to_string(s.dir.path().join("token")).expect("token");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains(token.trim()), "the token must not be printed");
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_input_exits_two_with_a_message() {
    let s = setup().await;
    let out = tokio::task::block_in_place(|| argomap(&s, &["-f", "/nonexistent/file.yaml"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.yaml"));
    let out = Command::new(env!("CARGO_BIN_EXE_argomap"))
        .args(["check", "--url", "http://127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
}

fn documents(stdout: &[u8]) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_slice(stdout)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn mappings_output_scaffolds_every_unlinked_destination() {
    let s = setup().await;
    s.argocd.set_clusters(vec![
        Cluster::new("https://10.0.0.1:6443", "prod-eks"),
        Cluster::new("https://old.example.com", "Old Cluster"),
        // Its name is taken by the file's mapping for another URL, and the next one's too.
        Cluster::new("https://eks-2.example.com", "prod-eks"),
        Cluster::new("https://eks-3.example.com", "Prod_EKS"),
        Cluster::new("https://10.9.8.7:6443", ""),
    ]);
    let manifests = s.dir.path().join("manifests.yaml").display().to_string();
    let out = tokio::task::block_in_place(|| argomap(&s, &["-f", &manifests, "-o", "mappings"]));
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let docs = documents(&out.stdout);
    let by_url: std::collections::BTreeMap<String, &serde_json::Value> = docs
        .iter()
        .map(|d| (d["spec"]["argocdClusterUrl"].as_str().unwrap_or_default().to_string(), d))
        .collect();
    assert_eq!(docs.len(), 4, "one per unlinked destination: {by_url:?}");
    let name = |url: &str| by_url[url]["metadata"]["name"].as_str().unwrap_or_default().to_string();
    assert_eq!(name("https://old.example.com"), "old-cluster");
    let mut eks = [name("https://eks-2.example.com"), name("https://eks-3.example.com")];
    eks.sort();
    assert_eq!(eks, ["prod-eks-2", "prod-eks-3"], "deduplicated against the file and each other");
    assert_eq!(name("https://10.9.8.7:6443"), "10-9-8-7", "no Argo CD name: from the host");
    for d in &docs {
        assert_eq!(d["kind"], "ClusterMapping");
        assert_eq!(d["metadata"]["namespace"], "platform");
        assert_eq!(d["spec"]["instanceRef"]["name"], "prod-argocd");
        assert!(d["spec"]["cluster"]["id"].as_str().unwrap_or_default().starts_with('<'), "{d}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# Argo CD destination https://old.example.com (Old Cluster): 0 applications"),
        "{text}"
    );

    // Without -f the instance is a placeholder too, and no namespace is set.
    let out = tokio::task::block_in_place(|| argomap(&s, &["-o", "mappings"]));
    let docs = documents(&out.stdout);
    assert!(!docs.is_empty());
    assert!(docs.iter().all(|d| d["spec"]["instanceRef"]["name"] == "<argocdinstance-name>"));
    assert!(docs.iter().all(|d| d["metadata"].get("namespace").is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_are_whole_unless_limited() {
    let s = setup().await;
    let clusters: Vec<Cluster> =
        (0..600).map(|n| Cluster::new(format!("https://c{n}.example.com"), format!("c{n}"))).collect();
    s.argocd.set_clusters(clusters);
    s.argocd.set_applications(vec![]);
    let out = tokio::task::block_in_place(|| argomap(&s, &["-o", "json"]));
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["status"]["unlinkedClusters"].as_array().map(Vec::len), Some(600), "no cap of 500");
    assert_ne!(report["status"]["truncated"], true, "nothing left out");

    let out = tokio::task::block_in_place(|| argomap(&s, &["-o", "json", "--limit", "10"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["status"]["unlinkedClusters"].as_array().map(Vec::len), Some(10));
    assert_eq!(report["status"]["summary"]["unlinkedClusters"], 600, "the counts stay exact");
    assert_eq!(report["status"]["truncated"], true);

    let out = tokio::task::block_in_place(|| argomap(&s, &["--limit", "3"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().filter(|l| l.starts_with("https://c")).count(), 3, "{text}");
    assert!(text.contains("cut by --limit"), "{text}");
    let out = tokio::task::block_in_place(|| argomap(&s, &["-o", "mappings"]));
    assert_eq!(documents(&out.stdout).len(), 600);
}
