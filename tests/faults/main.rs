//! The fault matrix (`make fault-test`): the real `argomap run` against a real kube-apiserver,
//! with faults injected into the fake Argo CD, the credentials Secret, the load and the
//! leader. Each row: inject; the reason shows in status within one interval; the fault ends;
//! the instance is connected again within one interval; the process never crashed; and the
//! ClusterMapping stayed Linked throughout (no mapping state lost). Every test has its own
//! namespace, fake Argo CD and operator; all synchronisation is polling with deadlines.

#[path = "../cluster/common.rs"]
#[allow(dead_code, reason = "the cluster suite's helpers, not all of which the matrix uses")]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use argomap::crd::ArgoCdInstance;
use common::*;
use fake_argocd::{Endpoint, FakeArgoCd, Fault, Options};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// Every row's check interval (the CRD's minimum) and per-request timeout.
const INTERVAL: &str = "10s";
const TIMEOUT: &str = "2s";
/// "Within one interval": the interval with its +10% jitter, the 2 s timeout, and 5 s of slack
/// for a loaded 2-core machine.
const ONE_INTERVAL: Duration = Duration::from_secs(18);
/// "At once": no timer involved, only watches and one check.
const AT_ONCE: Duration = Duration::from_secs(6);
const MAPPED: &str = "https://10.0.0.1:6443";
/// The longest wait between two attempts of a failing watch (argomap's watch backoff, +20%
/// jitter).
const WATCH_BACKOFF: Duration = Duration::from_secs(12);

fn instance(name: &str, url: &str, interval: &str, timeout: &str) -> serde_json::Value {
    let mut i = instance_json(name, url, interval);
    i["spec"]["timeout"] = json!(timeout);
    i
}

/// A namespace with the standard fake, its token Secret, the mapping `prod-eks` of the listed
/// cluster and the instance `prod`; the operator (with `flags`) has connected and linked it.
async fn connected_row(test: &str, flags: &[&str]) -> (Client, String, FakeArgoCd, String, Operator) {
    connected_row_with(test, flags, TIMEOUT).await
}

async fn connected_row_with(
    test: &str,
    flags: &[&str],
    timeout: &str,
) -> (Client, String, FakeArgoCd, String, Operator) {
    let client = client().await;
    let ns = namespace(&client, test).await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_mapping(&client, &ns, mapping_json("prod-eks", "prod", MAPPED)).await;
    create_instance(&client, &ns, instance("prod", &argocd.url(), INTERVAL, timeout)).await;
    let op = Operator::start_with(&ns, flags);
    instance_where(&client, &ns, "prod", Duration::from_secs(30), "connected", connected).await;
    mapping_where(&client, &ns, "prod-eks", "Linked", AT_ONCE).await;
    (client, ns, argocd, token, op)
}

fn has_reason(want: &'static str) -> impl Fn(&ArgoCdInstance) -> bool {
    move |i| reason(i).as_deref() == Some(want)
}

/// One Argo CD row: `fault` shows as `want` in status, then clears.
async fn argocd_row(test: &str, flags: &[&str], fault: Fault, want: &'static str) {
    let (client, ns, argocd, _, mut op) = connected_row(test, flags).await;
    argocd.set_fault(Some(fault));
    let failed = instance_where(&client, &ns, "prod", ONE_INTERVAL, want, has_reason(want)).await;
    let ready =
        failed.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")).cloned();
    assert_eq!(ready.map(|c| (c.status, c.reason)), Some(("False".to_string(), want.to_string())));
    assert_eq!(mapping_state(&client, &ns, "prod-eks").await.as_deref(), Some("Linked"), "mapping kept");
    argocd.set_fault(None);
    instance_where(&client, &ns, "prod", ONE_INTERVAL, "connected again", connected).await;
    assert_eq!(mapping_state(&client, &ns, "prod-eks").await.as_deref(), Some("Linked"), "mapping kept");
    assert!(op.is_running(), "argomap kept running");
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_slow_past_the_timeout() {
    argocd_row("f-slow", &[], Fault::Latency(Duration::from_secs(30)), "Timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_5xx() {
    argocd_row("f-5xx", &[], Fault::Status(500), "Unreachable").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_401_expired_token() {
    argocd_row("f-401", &[], Fault::TokenExpired, "AuthenticationFailed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_403() {
    argocd_row("f-403", &[], Fault::PermissionDenied, "InsufficientPermissions").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_404_text_plain_at_a_wrong_base_url() {
    argocd_row("f-404", &[], Fault::PlainNotFound, "InvalidResponse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_html_200() {
    argocd_row("f-html", &[], Fault::HtmlOk, "InvalidResponse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_malformed_json() {
    argocd_row("f-malformed", &[], Fault::InvalidJson, "InvalidResponse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_json_truncated_mid_body() {
    argocd_row("f-cutoff", &[], Fault::CutOff, "InvalidResponse").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_body_over_the_cap() {
    argocd_row("f-cap", &["--max-response-bytes", "1048576"], Fault::Oversized(2 << 20), "InvalidResponse")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_gzip_bomb() {
    argocd_row("f-gzip", &["--max-response-bytes", "1048576"], Fault::GzipBomb(64 << 20), "InvalidResponse")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_slow_drip() {
    argocd_row("f-drip", &[], Fault::SlowDrip(Duration::from_millis(500)), "Timeout").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_down_then_back_on_the_same_address() {
    let (client, ns, argocd, token, mut op) = connected_row("f-down", &[]).await;
    let addr: SocketAddr = argocd.url().trim_start_matches("http://").parse().expect("fake address");
    drop(argocd);
    instance_where(&client, &ns, "prod", ONE_INTERVAL, "Unreachable", has_reason("Unreachable")).await;
    assert_eq!(mapping_state(&client, &ns, "prod-eks").await.as_deref(), Some("Linked"));
    let back = FakeArgoCd::start(Options { addr: Some(addr), ..Default::default() }).await;
    back.add_token(&token);
    back.set_clusters(fake_argocd::sample_clusters());
    back.set_applications(fake_argocd::sample_apps());
    instance_where(&client, &ns, "prod", ONE_INTERVAL, "connected again", connected).await;
    assert!(back.requests(Endpoint::Clusters) > 0);
    assert!(op.is_running());
}

/// Secrets: missing, missing key, rotated, deleted, re-created. The interval is 5 minutes, so
/// every change can only be seen because the Secret's watch checks at once.
#[tokio::test(flavor = "multi_thread")]
async fn secret_missing_wrong_key_rotated_deleted_recreated() {
    let client = client().await;
    let ns = namespace(&client, "f-secret").await;
    let (argocd, token) = fake().await;
    create_mapping(&client, &ns, mapping_json("prod-eks", "prod", MAPPED)).await;
    create_instance(&client, &ns, instance("prod", &argocd.url(), "5m", TIMEOUT)).await;
    let mut op = Operator::start(&ns);
    let not_found = has_reason("CredentialsNotFound");
    instance_where(&client, &ns, "prod", ONE_INTERVAL, "missing Secret", &not_found).await;

    // Missing key: the Secret has `tokn`, not `token`.
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let secret = |data: serde_json::Value| -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "argocd-readonly", "labels": {"argomap.io/credentials": "true"}},
            "stringData": data}))
        .expect("secret")
    };
    let apply = PatchParams::apply("faults-test").force();
    secrets
        .patch("argocd-readonly", &apply, &Patch::Apply(&secret(json!({"tokn": token}))))
        .await
        .expect("create");
    let says = |words: &'static str| {
        move |i: &ArgoCdInstance| {
            reason(i).as_deref() == Some("CredentialsNotFound")
                && i.status
                    .as_ref()
                    .and_then(|s| s.connection.as_ref())
                    .is_some_and(|c| c.message.contains(words))
        }
    };
    instance_where(&client, &ns, "prod", AT_ONCE, "missing key", says("has no key \"token\"")).await;

    // The key added: connected at once.
    // A replace (PUT) without `data`: the old key goes, `token` comes from stringData.
    secrets
        .replace("argocd-readonly", &Default::default(), &secret(json!({"token": token})))
        .await
        .expect("fix the key");
    instance_where(&client, &ns, "prod", AT_ONCE, "connected with the key", connected).await;
    mapping_where(&client, &ns, "prod-eks", "Linked", AT_ONCE).await;

    // Rotated: the old token is revoked, the Secret gets the new one; the next check uses it.
    let rotated = fake_argocd::jwt("argomap:apiKey", None);
    argocd.revoke_tokens();
    argocd.add_token(&rotated);
    let new = secret(json!({"token": rotated}));
    secrets.replace("argocd-readonly", &Default::default(), &new).await.expect("rotate");
    eventually(AT_ONCE, "the new token is sent", || async {
        match argocd.last_header(Endpoint::Clusters, "authorization") {
            Some(h) if h == format!("Bearer {rotated}") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    instance_where(&client, &ns, "prod", AT_ONCE, "connected after rotation", connected).await;

    // Deleted: shown at once, not at the next timed check 5 minutes away.
    secrets.delete("argocd-readonly", &DeleteParams::default()).await.expect("delete");
    instance_where(&client, &ns, "prod", AT_ONCE, "deleted Secret", says("does not exist")).await;
    assert_eq!(mapping_state(&client, &ns, "prod-eks").await.as_deref(), Some("Linked"), "mapping kept");

    // Re-created with the same token: connected at once, not after the backoff.
    secrets.create(&Default::default(), &new).await.expect("re-create");
    instance_where(&client, &ns, "prod", AT_ONCE, "re-created Secret", connected).await;
    assert!(op.is_running());
}

/// 20 instances, 5 whose Argo CD never answers (with the CRD's longest timeout) and 5 that
/// answer 500: the 10 healthy ones keep their interval.
#[tokio::test(flavor = "multi_thread")]
async fn hanging_and_failing_servers_do_not_starve_the_healthy() {
    let client = client().await;
    let ns = namespace(&client, "f-load").await;
    let (healthy, token) = fake().await;
    let hanging = FakeArgoCd::start(Options::default()).await;
    hanging.add_token(&token);
    hanging.set_fault(Some(Fault::Latency(Duration::from_secs(3600))));
    let failing = FakeArgoCd::start(Options::default()).await;
    failing.add_token(&token);
    failing.set_fault(Some(Fault::Status(500)));
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    for i in 0..5 {
        create_instance(&client, &ns, instance(&format!("hang-{i}"), &hanging.url(), INTERVAL, "10m")).await;
        create_instance(&client, &ns, instance(&format!("fail-{i}"), &failing.url(), INTERVAL, TIMEOUT))
            .await;
    }
    let names: Vec<String> = (0..10).map(|i| format!("ok-{i}")).collect();
    for name in &names {
        create_instance(&client, &ns, instance(name, &healthy.url(), INTERVAL, TIMEOUT)).await;
    }
    let mut op = Operator::start(&ns);
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let checked_at = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .and_then(|s| s.connection.as_ref())
            .and_then(|c| c.last_checked_at.clone())
            .map(|t| t.0)
    };
    let mut first = Vec::new();
    for name in &names {
        let i = instance_where(&client, &ns, name, Duration::from_secs(30), "connected", connected).await;
        first.push(checked_at(&i).expect("checked"));
    }
    // Two more checks each, at their interval: within two intervals and the slack.
    for (name, at) in names.iter().zip(first) {
        let want = at.checked_add(jiff::SignedDuration::from_secs(15)).expect("time");
        eventually(Duration::from_secs(40), &format!("{name} checked twice more"), || {
            let api = api.clone();
            async move {
                let i = api.get(name).await.map_err(|e| e.to_string())?;
                match checked_at(&i) {
                    Some(t) if t >= want && connected(&i) => Ok(()),
                    other => Err(format!("{other:?}, wanted {want}")),
                }
            }
        })
        .await;
    }
    for i in 0..5 {
        let name = format!("fail-{i}");
        instance_where(&client, &ns, &name, ONE_INTERVAL, "Unreachable", has_reason("Unreachable")).await;
    }
    assert!(op.is_running());
}

/// A check hanging on a deleted instance is cancelled: it holds no slot afterwards, and SIGTERM
/// does not wait for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_check_is_cancelled_by_deletion_and_by_sigterm() {
    let client = client().await;
    let ns = namespace(&client, "f-cancel").await;
    let (healthy, token) = fake().await;
    let hanging = FakeArgoCd::start(Options::default()).await;
    hanging.add_token(&token);
    hanging.set_fault(Some(Fault::Latency(Duration::from_secs(3600))));
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    // One slot: the hanging check holds it until it is cancelled.
    let mut op = Operator::start_with(&ns, &["--max-concurrent-checks", "1", "--max-check-duration", "10m"]);
    create_instance(&client, &ns, instance("hang", &hanging.url(), INTERVAL, "10m")).await;
    eventually(AT_ONCE, "the hanging check started", || async {
        if hanging.requests(Endpoint::Version) + hanging.requests(Endpoint::Clusters) > 0 {
            Ok(())
        } else {
            Err("no request".into())
        }
    })
    .await;
    create_instance(&client, &ns, instance("prod", &healthy.url(), INTERVAL, TIMEOUT)).await;
    Api::<ArgoCdInstance>::namespaced(client.clone(), &ns)
        .delete("hang", &DeleteParams::default())
        .await
        .expect("delete");
    instance_where(&client, &ns, "prod", AT_ONCE, "checked once the hanging check is cancelled", connected)
        .await;

    // A new hanging check, then SIGTERM: the process exits without waiting on it.
    create_instance(&client, &ns, instance("hang2", &hanging.url(), INTERVAL, "10m")).await;
    let before = hanging.requests(Endpoint::Version) + hanging.requests(Endpoint::Clusters);
    eventually(AT_ONCE, "the second hanging check started", || async {
        let now = hanging.requests(Endpoint::Version) + hanging.requests(Endpoint::Clusters);
        if now > before { Ok(()) } else { Err("no request".into()) }
    })
    .await;
    let stopping = std::time::Instant::now();
    op.terminate();
    let took = stopping.elapsed();
    eprintln!("SIGTERM with a hanging check: exited in {took:?}");
    // Without cancellation the controllers wait out their 15 s shutdown grace; with it, ~0.1 s.
    assert!(took < Duration::from_secs(10), "SIGTERM waited on a hanging request: {took:?}");
}

/// No successful check for longer than the limit while the status says connected: Ready turns
/// Unknown (Stale), the data-age metric grows, and the read API reports `error`.
#[tokio::test(flavor = "multi_thread")]
async fn data_older_than_the_limit_is_stale() {
    // The check hangs within its (long) deadline, so no failure is recorded meanwhile.
    let flags =
        ["--stale-after-intervals", "1", "--max-check-duration", "10m", "--read-api-insecure-no-auth"];
    let (client, ns, argocd, _, op) = connected_row_with("f-stale", &flags, "10m").await;
    argocd.set_fault(Some(Fault::Latency(Duration::from_secs(3600))));
    let stale = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "Unknown" && c.reason == "Stale")
    };
    let i = instance_where(&client, &ns, "prod", Duration::from_secs(30), "Ready Unknown/Stale", stale).await;
    assert!(connected(&i), "the connection fields still say what was last seen");
    let metrics = reqwest_get(&format!("{}/metrics", op.admin)).await;
    let age = metrics
        .lines()
        .find(|l| l.starts_with("argomap_instance_data_age_seconds") && l.contains(&ns))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(age > 10.0, "data age {age}");
    let org = i.spec.organization_id.clone().unwrap_or_default();
    let body = reqwest_get(&format!("{}/organization/{org}/argoCdDestinationClusterMapping", op.http)).await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("read API JSON");
    assert_eq!(v["results"][0]["status"], "error", "{body}");
    argocd.set_fault(None);
}

async fn reqwest_get(url: &str) -> String {
    let out =
        std::process::Command::new("curl").args(["-sf", "--max-time", "5", url]).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A leader frozen (SIGSTOP) past its Lease: the standby takes over, and after SIGCONT the old
/// leader writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_it_thaws() {
    let client = client().await;
    let ns = namespace(&client, "f-freeze").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_instance(&client, &ns, instance("prod", &argocd.url(), INTERVAL, TIMEOUT)).await;
    let replica = |name: &str| {
        Operator::start_env(&ns, &["--leader-election", "--lease-namespace", &ns], &[("POD_NAME", name)])
    };
    let a = replica("replica-a");
    instance_where(&client, &ns, "prod", Duration::from_secs(30), "connected", connected).await;
    let b = replica("replica-b");
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get("argomap")
            .await
            .ok()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .unwrap_or_default()
    };
    assert_eq!(holder().await, "replica-a");
    a.signal("STOP");
    eventually(Duration::from_secs(30), "replica-b takes the Lease", || async {
        let h = holder().await;
        if h == "replica-b" { Ok(()) } else { Err(h) }
    })
    .await;
    eventually(ONE_INTERVAL, "replica-b writes", || async {
        if b.log_text().contains("status written") { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
    let frozen_log = a.log_text().len();
    a.signal("CONT");
    // A full interval and more: any write the thawed replica attempts would be logged.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < until {
        let after = a.log_text().get(frozen_log..).unwrap_or_default().to_string();
        assert!(!after.contains("status written"), "the thawed replica wrote: {after}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(holder().await, "replica-b");
    // A replica that no longer leads exports no per-instance series.
    eventually(ONE_INTERVAL, "no per-instance series on the demoted replica", || async {
        let text = reqwest_get(&format!("{}/metrics", a.admin)).await;
        if text.contains("argomap_build_info") && !text.contains("argomap_instance_up{") {
            Ok(())
        } else {
            Err(text.lines().filter(|l| l.starts_with("argomap_instance_up")).collect::<Vec<_>>().join("; "))
        }
    })
    .await;
    let b_metrics = reqwest_get(&format!("{}/metrics", b.admin)).await;
    assert!(b_metrics.contains("argomap_instance_up{"), "the leader exports them");
}

/// A control plane of this test's own (its processes are stopped and started here, which
/// would break every other test on the shared one); stopped when dropped.
struct OwnControlPlane {
    dir: std::path::PathBuf,
}

impl OwnControlPlane {
    fn start() -> OwnControlPlane {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/faults-controlplane");
        let cp = OwnControlPlane { dir };
        cp.script("up.sh", &[]);
        cp
    }

    fn script(&self, name: &str, args: &[&str]) {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane").join(name);
        let status = std::process::Command::new("bash")
            .arg(&path)
            .args(args)
            .env("ARGOMAP_CONTROLPLANE_DIR", &self.dir)
            .status()
            .expect("run a control-plane script");
        assert!(status.success(), "{name} {args:?} failed");
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        self.dir.join("kubeconfig")
    }

    async fn client(&self) -> Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.kubeconfig()).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        Client::try_from(config).expect("client")
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/controlplane/down.sh"))
            .env("ARGOMAP_CONTROLPLANE_DIR", &self.dir)
            .status();
    }
}

/// kube-apiserver stopped for 30 s and started again, then etcd restarted: argomap keeps
/// running, its watches resume (a mapping created afterwards is linked), checks go on, and no
/// event is repeated.
#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_down_30s_and_etcd_restarted() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cp = OwnControlPlane::start();
    let client = cp.client().await;
    let ns = namespace(&client, "f-kube").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_mapping(&client, &ns, mapping_json("prod-eks", "prod", MAPPED)).await;
    create_instance(&client, &ns, instance("prod", &argocd.url(), INTERVAL, TIMEOUT)).await;
    let kubeconfig = cp.kubeconfig();
    let kubeconfig = kubeconfig.to_str().expect("path");
    let mut op = Operator::start_env(&ns, &[], &[("KUBECONFIG", kubeconfig)]);
    instance_where(&client, &ns, "prod", Duration::from_secs(30), "connected", connected).await;
    mapping_where(&client, &ns, "prod-eks", "Linked", AT_ONCE).await;
    // Reasons of the events, each with how often it was recorded (a repeat of the same event
    // becomes a series on the same object, not a second object).
    let events = || async {
        let api = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &ns);
        let list = api.list(&Default::default()).await.expect("events");
        let mut reasons: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|e| {
                let count = e.series.as_ref().map_or(1, |s| s.count);
                e.reason.map(|r| format!("{r}x{count}"))
            })
            .collect();
        reasons.sort();
        reasons
    };
    let before = events().await;

    cp.script("restart.sh", &["stop", "kube-apiserver"]);
    // The fault itself lasts 30 s; nothing is synchronised on this wait.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(op.is_running(), "argomap survived 30 s without an API server");
    let checks = argocd.requests(Endpoint::Clusters);
    cp.script("restart.sh", &["start", "kube-apiserver"]);
    eventually(ONE_INTERVAL, "Argo CD is checked again once the API server is back", || async {
        let now = argocd.requests(Endpoint::Clusters);
        if now > checks { Ok(()) } else { Err(format!("{now} checks, {checks} before")) }
    })
    .await;
    create_mapping(&client, &ns, mapping_json("old", "prod", "https://old.example.com")).await;
    // A watch that lost its connection lists afresh at its next attempt (a restarted API
    // server would answer a resumed one with 410 only once its watch cache is ready: a minute
    // and more). An attempt stuck on a connection that died with the old server is cut by the
    // watch client's read timeout. Then the mapping is linked from the last check. Measured
    // 3.7 s (twice); the bound is the worst of those steps. It was 3-42 s, and past 95 s in 2
    // runs of 6, while kube's controller backoff slept over all the watches at once.
    let back = std::time::Instant::now();
    let read_timeout = Duration::from_secs(u64::from(argomap::controller::WATCH_SECONDS) + 15);
    mapping_where(&client, &ns, "old", "Linked", read_timeout + WATCH_BACKOFF + ONE_INTERVAL).await;
    eprintln!("a mapping created after the API server came back was linked in {:?}", back.elapsed());

    cp.script("restart.sh", &["stop", "etcd"]);
    cp.script("restart.sh", &["start", "etcd"]);
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let checked = |i: &ArgoCdInstance| {
        i.status.as_ref().and_then(|s| s.connection.as_ref()).and_then(|c| c.last_checked_at.clone())
    };
    let after_etcd = checked(&api.get("prod").await.expect("prod"));
    instance_where(&client, &ns, "prod", ONE_INTERVAL * 2, "checked after the etcd restart", |i| {
        connected(i) && checked(i) > after_etcd
    })
    .await;
    assert!(op.is_running());
    let after = events().await;
    let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    assert!(before.contains(&"Connectedx1".to_string()), "{before:?}");
    assert_eq!(
        after.iter().filter(|r| r.starts_with("Connected")).collect::<Vec<_>>(),
        vec!["Connectedx1"],
        "no duplicate events: {after:?}"
    );
    assert!(new.iter().all(|r| !r.starts_with("ConnectionFailed")), "no failure was reported: {new:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn argocd_huge_version_and_cluster_name_keep_objects_small() {
    let client = client().await;
    let ns = namespace(&client, "fault-huge-words").await;
    // A server whose version and cluster name are half a megabyte each (the version answer,
    // with Argo CD's other fields, stays under the 1 MiB argomap reads of it), with control
    // characters. Before the cap, each went whole into the instance's and mapping's status.
    let huge = "a".repeat(500_000);
    let opts = Options { version: format!("v3.6.1+\n{huge}"), ..Default::default() };
    let argocd = FakeArgoCd::start(opts).await;
    let token = fake_argocd::jwt("argomap:apiKey", None);
    argocd.add_token(&token);
    argocd.set_clusters(vec![fake_argocd::Cluster::new(MAPPED, format!("prod\u{1b}[2J{huge}"))]);
    argocd.set_applications(fake_argocd::sample_apps());
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_mapping(&client, &ns, mapping_json("prod-eks", "prod", MAPPED)).await;
    create_instance(&client, &ns, instance("prod", &argocd.url(), INTERVAL, TIMEOUT)).await;
    let _op = Operator::start(&ns);
    let i = instance_where(&client, &ns, "prod", Duration::from_secs(30), "connected", connected).await;
    let bytes = serde_json::to_vec(&i).expect("json").len();
    assert!(bytes < 16 * 1024, "the instance is {bytes} bytes");
    let version = i.status.and_then(|s| s.connection).and_then(|c| c.argocd_version).expect("version");
    assert!(version.len() <= 64 && version.starts_with("v3.6.1+aaa") && version.ends_with('…'), "{version}");
    mapping_where(&client, &ns, "prod-eks", "Linked", AT_ONCE).await;
    let m = Api::<argomap::crd::ClusterMapping>::namespaced(client.clone(), &ns)
        .get("prod-eks")
        .await
        .expect("mapping");
    let name = m.status.and_then(|s| s.argocd_cluster_name).expect("name");
    assert!(name.len() <= 253 && name.starts_with("prod[2J") && !name.contains('\u{1b}'), "{name}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_hanging_and_crawling_servers_do_not_delay_a_healthy_instance() {
    let client = client().await;
    let ns = namespace(&client, "f-starve").await;
    let (healthy, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    create_instance(&client, &ns, instance("ok", &healthy.url(), INTERVAL, TIMEOUT)).await;
    let op = Operator::start(&ns);
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    instance_where(&client, &ns, "ok", Duration::from_secs(30), "connected", connected).await;
    // Then, beside it: 8 new instances whose Argo CD never answers (with a 10 minute timeout,
    // so each check holds its slot for --max-check-duration), and 8 whose Argo CD answers just
    // under their 2 s timeout.
    let hanging = FakeArgoCd::start(Options::default()).await;
    hanging.add_token(&token);
    hanging.set_fault(Some(Fault::Latency(Duration::from_secs(3600))));
    let crawling = FakeArgoCd::start(Options::default()).await;
    crawling.add_token(&token);
    crawling.set_clusters(fake_argocd::sample_clusters());
    crawling.set_fault(Some(Fault::Latency(Duration::from_millis(1700))));
    for i in 0..8 {
        create_instance(&client, &ns, instance(&format!("hang-{i}"), &hanging.url(), INTERVAL, "10m")).await;
        create_instance(&client, &ns, instance(&format!("crawl-{i}"), &crawling.url(), INTERVAL, TIMEOUT))
            .await;
    }
    // The healthy instance is checked on every interval (10 s, +10% jitter) for 45 s: every
    // gap between two checks at most 11 s, plus 1 s for lastCheckedAt's cut to the second and
    // 3 s of slack for a loaded machine (before, it waited 55 s for a slot).
    let checked_at = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .and_then(|s| s.connection.as_ref())
            .and_then(|c| c.last_checked_at.clone())
            .map(|t| t.0)
    };
    let started = std::time::Instant::now();
    let mut seen: Vec<jiff::Timestamp> = Vec::new();
    while started.elapsed() < Duration::from_secs(45) {
        let i = api.get("ok").await.expect("get");
        if let Some(at) = checked_at(&i)
            && seen.last() != Some(&at)
        {
            seen.push(at);
        }
        let since =
            seen.last().map(|at| jiff::Timestamp::now().duration_since(*at).as_secs_f64()).unwrap_or(0.0);
        assert!(since <= 15.0, "the healthy instance was last checked {since:.1} s ago: {seen:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen.len() >= 4, "checks seen: {seen:?}");
    drop(op);
}
