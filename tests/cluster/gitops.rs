//! What GitOps tools read from argomap's statuses: `kubectl wait --for=condition=Ready` (the
//! real kubectl) and kstatus, the rules Flux's `wait: true` applies (sigs.k8s.io/cli-utils,
//! through the `kstatus` wrapper built by `tests/controlplane/build.sh kstatus`), on live
//! objects written by a running argomap.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::common::*;

const FAST: Duration = Duration::from_secs(5);

fn kubectl(ns: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig_path())
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run kubectl")
}

/// `kubectl wait --for=condition=Ready` on `object` for at most `timeout`: whether it was met,
/// and what kubectl printed.
fn wait_ready(ns: &str, object: &str, timeout: &str) -> (bool, String) {
    let out = kubectl(ns, &["wait", "--for=condition=Ready", object, &format!("--timeout={timeout}")]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn kstatus_bin() -> PathBuf {
    let out = Command::new("bash")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/build.sh"))
        .args(["--print-bin-dir", "kstatus"])
        .output()
        .expect("build.sh");
    let dir = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let bin = PathBuf::from(dir).join("kstatus");
    assert!(bin.exists(), "{} is missing: run `bash tests/controlplane/build.sh kstatus`", bin.display());
    bin
}

/// kstatus' verdict on the live `object`, as fetched by kubectl: (status, message).
pub(crate) fn kstatus(ns: &str, object: &str) -> (String, String) {
    let got = kubectl(ns, &["get", object, "-o", "json"]);
    assert!(got.status.success(), "kubectl get {object}: {}", String::from_utf8_lossy(&got.stderr));
    let mut child = Command::new(kstatus_bin())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kstatus");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &got.stdout).expect("write");
    let out = child.wait_with_output().expect("kstatus output");
    assert!(out.status.success(), "kstatus failed on {object}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("kstatus JSON");
    (v["status"].as_str().unwrap_or_default().into(), v["message"].as_str().unwrap_or_default().into())
}

fn ready_message(i: &ArgoCdInstance) -> String {
    i.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connected_instance_is_current_and_an_unobserved_spec_change_in_progress() {
    let Setup { client, ns, argocd: _argocd, .. } =
        setup("kstatus-ok", &[("prod-eks", "https://10.0.0.1:6443")], "60s").await;
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let mut op = Operator::start(&ns);
    // kubectl waits through the first check itself.
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "30s");
    assert!(met, "kubectl wait on a connecting instance: {text}");
    let (met, text) = wait_ready(&ns, "clustermapping/prod-eks", "10s");
    assert!(met, "kubectl wait on a linked mapping: {text}");
    // kstatus reads Ready=True as Current.
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("Current".into(), "Resource is Ready".into()));
    assert_eq!(kstatus(&ns, "clustermapping/prod-eks"), ("Current".into(), "Resource is Ready".into()));

    // An orphaned mapping may still be linked (Argo CD registers the cluster): InProgress. A
    // conflicting one waits for a change of a ClusterMapping: Stalled, so Failed. (Named to lose a
    // tie: creation times have whole seconds, and the name breaks it.)
    create_mapping(&client, &ns, mapping_json("legacy", "prod", "https://gke.example.com")).await;
    create_mapping(&client, &ns, mapping_json("zz-dup", "prod", "https://10.0.0.1:6443/")).await;
    mapping_where(&client, &ns, "legacy", "Orphaned", FAST).await;
    mapping_where(&client, &ns, "zz-dup", "Conflict", FAST).await;
    assert_eq!(
        kstatus(&ns, "clustermapping/legacy"),
        ("InProgress".into(), "ArgoCdInstance prod has no destination https://gke.example.com".into())
    );
    assert_eq!(
        kstatus(&ns, "clustermapping/zz-dup"),
        ("Failed".into(), "ClusterMapping prod-eks already maps https://10.0.0.1:6443".into())
    );
    let (met, text) = wait_ready(&ns, "clustermapping/legacy", "2s");
    assert!(!met && text.contains("timed out"), "{text}");

    // Nothing observes a spec change while argomap is stopped.
    op.kill();
    instances
        .patch("prod", &PatchParams::default(), &Patch::Merge(json!({"spec": {"interval": "30s"}})))
        .await
        .expect("patch spec");
    assert_eq!(
        kstatus(&ns, "argocdinstance/prod"),
        ("InProgress".into(), "ArgoCdInstance generation is 2, but latest observed generation is 1".into())
    );
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "3s");
    assert!(
        !met && text.contains("timed out"),
        "Ready of generation 1 does not answer for generation 2: {text}"
    );

    let _op = Operator::start(&ns);
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "30s");
    assert!(met, "kubectl wait once argomap checked generation 2: {text}");
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("Current".into(), "Resource is Ready".into()));
    let i = instances.get("prod").await.expect("get");
    assert_eq!(i.status.and_then(|s| s.observed_generation), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_cannot_connect_is_in_progress_or_failed_and_never_ready() {
    let client = client().await;
    let ns = namespace(&client, "kstatus-down").await;
    // A port nobody listens on: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    token_secret(&client, &ns, "argocd-readonly", "a.b.c").await;
    create_instance(&client, &ns, instance_json("prod", &format!("http://127.0.0.1:{port}"), "10s")).await;
    // A Secret argomap may not read (no argomap.io/credentials label).
    let plain: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain"}, "stringData": {"token": "a.b.c"}
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &plain)
        .await
        .expect("secret");
    let mut unlabelled = instance_json("unlabelled", "https://argocd.example.com", "10s");
    unlabelled["spec"]["credentials"]["secretRef"]["name"] = json!("plain");
    create_instance(&client, &ns, unlabelled).await;
    let _op = Operator::start(&ns);

    let down = instance_where(&client, &ns, "prod", Duration::from_secs(20), "Unreachable", |i| {
        reason(i).as_deref() == Some("Unreachable")
    })
    .await;
    // Retried: kstatus InProgress (Reconciling=True), so Flux's wait keeps waiting.
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("InProgress".into(), ready_message(&down)));
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "3s");
    assert!(!met && text.contains("timed out"), "{text}");

    let refused =
        instance_where(&client, &ns, "unlabelled", Duration::from_secs(20), "CredentialsNotOptedIn", |i| {
            reason(i).as_deref() == Some("CredentialsNotOptedIn")
        })
        .await;
    // Retrying cannot help: kstatus Failed (Stalled=True).
    assert_eq!(kstatus(&ns, "argocdinstance/unlabelled"), ("Failed".into(), ready_message(&refused)));
    let (met, text) = wait_ready(&ns, "argocdinstance/unlabelled", "3s");
    assert!(!met && text.contains("timed out"), "{text}");

    // Argo CD back (here: the URL fixed): Ready, and the Reconciling condition is gone (the
    // server-side apply of a connected status drops what argomap no longer sets).
    let (argocd, token) = fake().await;
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    secrets
        .patch(
            "argocd-readonly",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"token": token}})),
        )
        .await
        .expect("token");
    instances
        .patch("prod", &PatchParams::default(), &Patch::Merge(json!({"spec": {"url": argocd.url()}})))
        .await
        .expect("patch url");
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "30s");
    assert!(met, "{text}");
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("Current".into(), "Resource is Ready".into()));
    let up = instances.get("prod").await.expect("get");
    let types: Vec<String> =
        up.status.iter().flat_map(|s| s.conditions.iter().map(|c| c.type_.clone())).collect();
    assert!(!types.iter().any(|t| t == "Reconciling" || t == "Stalled"), "{types:?}");

    // Suspended: Ready=False (Suspended), neither Reconciling nor Stalled: kstatus InProgress.
    instances
        .patch("prod", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
        .await
        .expect("suspend");
    instance_where(&client, &ns, "prod", FAST, "Suspended", |i| reason(i).as_deref() == Some("Suspended"))
        .await;
    assert_eq!(
        kstatus(&ns, "argocdinstance/prod"),
        ("InProgress".into(), "checks are suspended (spec.suspend: true)".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_instance_is_in_progress_until_its_first_check_ends() {
    let client = client().await;
    let ns = namespace(&client, "kstatus-new").await;
    // Argo CD slower than the instance's timeout: the first check lasts 20 s, a window wide
    // enough for the assertions below on a loaded machine.
    let (argocd, token) = fake().await;
    argocd.set_fault(Some(fake_argocd::Fault::Latency(Duration::from_secs(30))));
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    let mut slow = instance_json("prod", &argocd.url(), "60s");
    slow["spec"]["timeout"] = "20s".into();
    create_instance(&client, &ns, slow).await;
    let _op = Operator::start(&ns);

    let pending = instance_where(&client, &ns, "prod", FAST, "the status before the first check", |i| {
        i.status.as_ref().is_some_and(|s| s.connection.is_none() && !s.conditions.is_empty())
    })
    .await;
    assert_eq!(ready_message(&pending), "waiting for argomap's first check");
    // Without it, kstatus would call the status-less object Current.
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("InProgress".into(), ready_message(&pending)));
    let (met, text) = wait_ready(&ns, "argocdinstance/prod", "1s");
    assert!(!met && text.contains("timed out"), "{text}");

    let timed_out = instance_where(&client, &ns, "prod", Duration::from_secs(40), "Timeout", |i| {
        reason(i).as_deref() == Some("Timeout")
    })
    .await;
    assert_eq!(kstatus(&ns, "argocdinstance/prod"), ("InProgress".into(), ready_message(&timed_out)));
}
