//! `argomap check -o mappings` against the real apiserver: the scaffold is refused as printed,
//! each placeholder on its own, and accepted once every one is filled in.

use std::io::Write;
use std::process::{Command, Stdio};

use fake_argocd::Cluster;
use serde_json::json;

use crate::common::*;

/// `kubectl apply --dry-run=server` of `manifests`: Ok(stdout) or Err(stderr).
fn dry_run_apply(manifests: &str) -> Result<String, String> {
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig_path())
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child.stdin.take().expect("stdin").write_all(manifests.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("kubectl");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if out.status.success() { Ok(text(&out.stdout)) } else { Err(text(&out.stderr)) }
}

fn scaffold(dir: &std::path::Path, url: &str, with_file: bool) -> String {
    let mut args = vec!["check".to_string(), "--url".into(), url.into(), "--token-file".into()];
    args.push(dir.join("token").display().to_string());
    if with_file {
        args.extend(["-f".into(), dir.join("manifests.yaml").display().to_string()]);
    }
    args.extend(["-o".into(), "mappings".into()]);
    let out = Command::new(env!("CARGO_BIN_EXE_argomap")).args(&args).output().expect("argomap check");
    assert!(out.status.success(), "argomap check: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn as_json_docs(yaml: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// The documents as a JSON list kubectl accepts.
fn list(docs: &[serde_json::Value]) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scaffold_is_refused_until_its_placeholders_are_filled() {
    let client = client().await;
    let ns = namespace(&client, "scaffold").await;
    let (argocd, token) = fake().await;
    argocd.set_clusters(vec![
        Cluster::new("https://10.0.0.1:6443", "prod-eks"),
        Cluster::new("https://old.example.com", "Old Cluster"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), &token).expect("token");
    let mut instance = instance_json("prod", &argocd.url(), "60s");
    instance["metadata"]["namespace"] = json!(ns);
    let mut mapping = mapping_json("prod-eks", "prod", "https://10.0.0.1:6443");
    mapping["metadata"]["namespace"] = json!(ns);
    let file = format!(
        "{}---\n{}",
        serde_yaml::to_string(&instance).expect("y"),
        serde_yaml::to_string(&mapping).expect("y")
    );
    std::fs::write(dir.path().join("manifests.yaml"), file).expect("manifests");

    let printed = scaffold(dir.path(), &argocd.url(), true);
    let err = dry_run_apply(&printed).expect_err("the scaffold as printed is refused");
    assert!(err.contains("spec.cluster.id"), "{err}");

    let docs = as_json_docs(&printed);
    let names: Vec<&str> = docs.iter().filter_map(|d| d["metadata"]["name"].as_str()).collect();
    assert_eq!(names, ["old-cluster"], "one per unlinked destination:\n{printed}");
    let fill = |doc: &mut serde_json::Value, skip: &str| {
        let c = &mut doc["spec"]["cluster"];
        for (field, value) in [
            ("id", json!("7c9e6679-7425-40de-944b-e07fc1f90ae7")),
            ("name", json!("Old Cluster")),
            ("cloudProvider", json!("AWS")),
            ("type", json!("MANAGED")),
        ] {
            if field != skip {
                c[field] = value;
            }
        }
    };
    for (left, says) in [
        ("id", "spec.cluster.id"),
        ("name", "cluster.name is still a placeholder"),
        ("cloudProvider", "spec.cluster.cloudProvider"),
        ("type", "spec.cluster.type"),
    ] {
        let mut docs = docs.clone();
        docs.iter_mut().for_each(|d| fill(d, left));
        let err = dry_run_apply(&list(&docs)).expect_err(&format!("refused with only {left} left"));
        assert!(err.contains(says), "{left}: {err}");
    }
    let mut filled = docs.clone();
    filled.iter_mut().for_each(|d| fill(d, ""));
    let out = dry_run_apply(&list(&filled)).unwrap_or_else(|e| panic!("filled in, it is accepted: {e}"));
    assert!(out.contains("clustermapping.argomap.io/old-cluster created (server dry run)"), "{out}");

    // Without -f the instance reference is a placeholder too, refused on its own.
    let mut bare = as_json_docs(&scaffold(dir.path(), &argocd.url(), false));
    bare.iter_mut().for_each(|d| {
        fill(d, "");
        d["metadata"]["namespace"] = json!(ns);
    });
    let err = dry_run_apply(&list(&bare)).expect_err("placeholder instanceRef refused");
    assert!(err.contains("spec.instanceRef.name"), "{err}");
}
