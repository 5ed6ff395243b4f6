//! Watch mode end to end on the fake Argo CD's stream: `argomap run` follows it, so changes
//! of Argo CD's applications reach the status within 2 s of a one-minute interval, a
//! status-only change writes nothing, and a proxy that stops routing the stream hands the
//! instance back to polling with a condition and a Warning event. The same assertions run on
//! the real argocd-server in `tests/argocd_real/watch.rs` (`tests/support/watch_checks.rs`).

use std::time::{Duration, Instant};

use fake_argocd::{App, Endpoint, StreamFault};
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::common::*;
use argomap_test_support::watch_checks::*;

/// Waits for an Event of `reason` about instance `prod`, returning its note.
async fn event(client: &kube::Client, ns: &str, reason: &'static str) -> String {
    let events = Api::<Event>::namespaced(client.clone(), ns);
    eventually(Duration::from_secs(10), reason, || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let seen: Vec<_> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
                .map(|e| e.note.unwrap_or_default())
                .ok_or_else(|| format!("events so far: {seen:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watched_instance_follows_the_stream_and_falls_back_to_polling() {
    let client = client().await;
    let ns = namespace(&client, "watch").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    let mut instance = instance_json("prod", &argocd.url(), "60s");
    instance["spec"]["applications"] = json!({"mode": "Watch"});
    create_instance(&client, &ns, instance).await;
    let _op = Operator::start(&ns);
    instance_where(&client, &ns, "prod", Duration::from_secs(30), "streaming", |i| {
        connected(i) && stream_reason(i).as_deref() == Some("Streaming")
    })
    .await;
    let opened = event(&client, &ns, "ApplicationStreamOpened").await;
    assert!(opened.contains("following Argo CD's application stream"), "{opened}");

    // A new destination, then a status-only change, then the destination gone again.
    let mut apps = fake_argocd::sample_apps();
    apps.push(App::to_server("new", "https://new.example.com"));
    let started = Instant::now();
    argocd.set_applications(apps.clone());
    instance_where(&client, &ns, "prod", LIVE, "the new destination", |i| {
        unlinked(i, "https://new.example.com")
    })
    .await;
    let shown = started.elapsed();
    for health in ["Progressing", "Degraded"] {
        apps[0] = apps[0].clone().with_status("OutOfSync", health);
        argocd.set_applications(apps.clone());
        writes_nothing(&client, &ns, "prod", "a status-only change").await;
    }
    apps.pop();
    let started = Instant::now();
    argocd.set_applications(apps.clone());
    instance_where(&client, &ns, "prod", LIVE, "the destination gone", |i| {
        !unlinked(i, "https://new.example.com")
    })
    .await;
    let gone = started.elapsed();
    assert_eq!(argocd.requests(Endpoint::ApplicationStream), 1, "one stream all along");
    eprintln!("fake watch: a new destination shown after {shown:?}, a deleted one gone after {gone:?}");

    // A proxy now routes the list but not the stream: polling takes over, and says so.
    argocd.set_stream_fault(Some(StreamFault::NotRouted));
    argocd.break_streams(StreamFault::CutLine);
    let i = instance_where(&client, &ns, "prod", Duration::from_secs(20), "polled again", |i| {
        connected(i) && stream_reason(i).as_deref() == Some("StreamUnavailable")
    })
    .await;
    let message = stream_message(&i);
    assert!(message.contains("HTTP 404") && message.contains("listed every interval"), "{message}");
    let warned = event(&client, &ns, "ApplicationStreamUnavailable").await;
    assert!(warned.contains("HTTP 404"), "{warned}");
    // Polling keeps the status right, so for Flux and `kubectl wait` the instance is still
    // Ready and Current: a watch falling back is no reason to block a GitOps rollout.
    let ready = i.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    assert_eq!(ready.map(|c| c.status.as_str()), Some("True"), "{:?}", i.status);
    let (verdict, message) = crate::gitops::kstatus(&ns, "argocdinstance/prod");
    assert_eq!(verdict, "Current", "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flapping_stream_writes_status_a_bounded_number_of_times() {
    use argomap::crd::ArgoCdInstance;
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};

    let client = client().await;
    let ns = namespace(&client, "watch-flap").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &token).await;
    let interval = Duration::from_secs(10);
    let mut instance = instance_json("prod", &argocd.url(), "10s");
    instance["spec"]["applications"] = json!({"mode": "Watch"});
    create_instance(&client, &ns, instance).await;
    let _op = Operator::start(&ns);
    let i = instance_where(&client, &ns, "prod", Duration::from_secs(30), "streaming", |i| {
        connected(i) && stream_reason(i).as_deref() == Some("Streaming")
    })
    .await;
    // From now on every stream sends its first events, then half a line, and ends: the
    // condition would flip between Streaming and Reconnecting as often as argomap reconnects.
    argocd.set_stream_fault(Some(StreamFault::CutLine));
    argocd.break_streams(StreamFault::CutLine);
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let version = i.metadata.resource_version.clone().unwrap_or_default();
    let params = WatchParams::default().fields("metadata.name=prod").timeout(60);
    let mut events = api.watch(&params, &version).await.expect("watch").boxed();
    let window = interval * 4;
    let until = tokio::time::Instant::now() + window;
    let mut writes = 0;
    while let Ok(event) = tokio::time::timeout_at(until, events.try_next()).await {
        match event.expect("watch event") {
            Some(WatchEvent::Modified(_)) => writes += 1,
            Some(_) => {}
            None => break,
        }
    }
    // A check writes once an interval (lastCheckedAt); the stream's condition changes at most
    // twice a round, and Argo CD serves at most one round an interval after a first burst.
    let bound = 3 * 4 + 2;
    assert!(writes <= bound, "{writes} status writes in {window:?} of a flapping stream (bound {bound})");
    let streams = argocd.requests(Endpoint::ApplicationStream);
    eprintln!("flapping stream: {writes} status writes and {streams} streams in {window:?}");
}
