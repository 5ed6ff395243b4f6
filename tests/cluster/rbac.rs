//! The operator under the chart's RBAC, as ServiceAccount `argomap-system:argomap` (the control
//! plane's operator token): a full reconcile with Events, the Lease and the read API's reviews
//! proves the rules are enough; removing one rule is caught.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use argomap::crd::ClusterMapping;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;

use crate::common::*;

const SYSTEM_NS: &str = "argomap-system";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn helm() -> PathBuf {
    let bin = run(Command::new("bash")
        .arg(repo().join("tests/controlplane/build.sh"))
        .args(["--print-bin-dir", "helm"]));
    PathBuf::from(bin.lines().last().unwrap_or("").trim()).join("helm")
}

/// The chart's ServiceAccount and RBAC for release `argomap` in `argomap-system`, optionally
/// without one resource.
fn apply_chart_rbac(drop_resource: Option<&str>) {
    let rendered = run(Command::new(helm()).current_dir(repo()).args([
        "template",
        "argomap",
        "charts/argomap",
        "--namespace",
        SYSTEM_NS,
        "--kube-version",
        "1.37.2",
        "--show-only",
        "templates/serviceaccount.yaml",
        "--show-only",
        "templates/rbac.yaml",
        "--show-only",
        "templates/rbac-leader-election.yaml",
        "--show-only",
        "templates/rbac-reviews.yaml",
    ]));
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let mut v: serde_json::Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if v.is_null() {
            continue;
        }
        if let (Some(resource), Some(rules)) =
            (drop_resource, v.get_mut("rules").and_then(|r| r.as_array_mut()))
        {
            for rule in rules.iter_mut() {
                if let Some(resources) = rule["resources"].as_array_mut() {
                    resources.retain(|r| r != resource);
                }
            }
            rules.retain(|rule| rule["resources"].as_array().is_some_and(|r| !r.is_empty()));
        }
        docs.push(serde_json::to_string(&v).expect("json"));
    }
    let kubeconfig = kubeconfig_path();
    let _ = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args(["create", "namespace", SYSTEM_NS])
        .output();
    for doc in docs {
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["apply", "--server-side", "--force-conflicts", "-n", SYSTEM_NS, "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("kubectl apply");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(doc.as_bytes()).expect("write");
        assert!(child.wait().expect("wait").success(), "kubectl apply of {doc}");
    }
}

fn operator_kubeconfig() -> String {
    std::env::var("ARGOMAP_TEST_KUBECONFIG_OPERATOR")
        .unwrap_or_else(|_| repo().join("target/controlplane/kubeconfig-operator").display().to_string())
}

fn chart_operator(ns: &str) -> Operator {
    Operator::start_env(
        ns,
        &["--leader-election", "--lease-namespace", SYSTEM_NS, "--lease-name", "argomap"],
        &[("KUBECONFIG", &operator_kubeconfig()), ("POD_NAME", "argomap-chart-rbac")],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_rbac_is_enough_and_a_missing_rule_is_caught() {
    apply_chart_rbac(None);
    let Setup { client, ns, argocd, token } =
        setup("rbac", &[("prod-eks", "https://10.0.0.1:6443")], "60s").await;

    let mut op = chart_operator(&ns);
    instance_where(
        &client,
        &ns,
        "prod",
        Duration::from_secs(30),
        "connected under the chart's RBAC",
        connected,
    )
    .await;
    mapping_where(&client, &ns, "prod-eks", "Linked", Duration::from_secs(5)).await;
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(5), "events recorded", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            if list.items.iter().any(|e| e.reason.as_deref() == Some("Connected")) {
                Ok(())
            } else {
                Err(format!("{} events", list.items.len()))
            }
        }
    })
    .await;
    let lease = Api::<Lease>::namespaced(client.clone(), SYSTEM_NS).get("argomap").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some("argomap-chart-rbac"));

    // The read API's TokenReview and SubjectAccessReview run as the operator, too.
    let http = http_get(
        &format!(
            "{}/organization/5e1c0e4e-8f5a-4c36-9d38-1f0d9c7c2b11/argoCdDestinationClusterMapping",
            op.http
        ),
        &admin_token(),
    )
    .await;
    assert_eq!(http.0, 200, "{}", http.1);
    assert!(http.1.contains("\"argocd_url\""), "{}", http.1);
    let log = std::fs::read_to_string(&op.log).unwrap_or_default();
    assert!(!log.to_lowercase().contains("forbidden"), "no request was refused:\n{log}");
    op.terminate();

    // Without `patch` on clustermappings/status the mapping never gets a state, and the log
    // says why.
    apply_chart_rbac(Some("clustermappings/status"));
    let ns2 = namespace(&client, "rbac-missing").await;
    token_secret(&client, &ns2, "argocd-readonly", &token).await;
    create_mapping(&client, &ns2, mapping_json("prod-eks", "prod", "https://10.0.0.1:6443")).await;
    create_instance(&client, &ns2, instance_json("prod", &argocd.url(), "60s")).await;
    let op2 = chart_operator(&ns2);
    eventually(Duration::from_secs(30), "a forbidden write in the log", || {
        let log = op2.log.clone();
        async move {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("forbidden") && text.contains("clustermappings") {
                Ok(())
            } else {
                Err("not yet".into())
            }
        }
    })
    .await;
    let m = Api::<ClusterMapping>::namespaced(client.clone(), &ns2).get("prod-eks").await.expect("mapping");
    assert!(m.status.and_then(|s| s.state).is_none(), "the missing rule kept the status from being written");
    drop(op2);
    apply_chart_rbac(None);
}

/// A GET with a bearer token, without adding an HTTP client to the dev-dependencies: curl is on
/// every machine this runs on.
async fn http_get(url: &str, token: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}
