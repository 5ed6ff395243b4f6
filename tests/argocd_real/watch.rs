//! Watch mode against the real argocd-server: changes of Application CRs reach the status
//! through the stream within 2 s (the interval is a minute, so polling cannot explain it),
//! a status-only change of an application sends no event and writes nothing, and a restarted
//! server is followed again after a relist. The same assertions run on the fake's stream in
//! `tests/cluster/watch.rs` (`tests/support/watch_checks.rs`); what five minutes of watching
//! cost Argo CD is in `watch_cost.rs`.

use std::time::{Duration, Instant};

use argomap::crd::ArgoCdInstance;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::common::*;
use crate::server::{self, Dest, Opts, Server};
use crate::{argomap_setup, metric, until_reason};
use argomap_test_support::watch_checks::*;

async fn until_stream(client: &kube::Client, ns: &str, want: &str, deadline: Duration) -> ArgoCdInstance {
    instance_where(client, ns, "prod", deadline, &format!("ApplicationStream {want}"), |i| {
        stream_reason(i).as_deref() == Some(want)
    })
    .await
}

/// An Argo CD of this test's own in namespace `acd` (one cluster, one application `web` on it),
/// and argomap's namespace for `test` with instance `prod` watching it every minute.
pub(crate) async fn watched_server(client: &kube::Client, acd: &str, test: &str) -> (String, Server, String) {
    let acd = namespace(client, acd).await;
    server::cluster_secret(client, &acd, "a-cluster", "https://a.example.com").await;
    server::applications(
        client,
        &acd,
        vec![server::application("web", Dest::Server("https://a.example.com"))],
    )
    .await;
    let server = Server::start(&acd, Opts::default());
    let ns = watched(client, test, &server).await;
    (acd, server, ns)
}

/// An instance in watch mode with a one-minute interval against `server`.
async fn watched(client: &kube::Client, test: &str, server: &Server) -> String {
    argomap_setup(client, test, &server.url, &server.token, &[], |i| {
        i["spec"]["interval"] = json!("60s");
        i["spec"]["applications"] = json!({"mode": "Watch"});
    })
    .await
}

/// Changes only the status of application `new` (no application controller runs here).
async fn set_health(client: &kube::Client, ns: &str, health: &str) {
    apps(client, ns)
        .patch(
            "new",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"sync": {"status": "OutOfSync"}, "health": {"status": health}}})),
        )
        .await
        .expect("patch the application's status");
    let changed: Value = apps(client, ns).get("new").await.map(|o| o.data).expect("get application");
    assert_eq!(changed["status"]["health"]["status"], json!(health), "the status change happened");
}

fn apps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &server::app_resource())
}

#[tokio::test(flavor = "multi_thread")]
async fn applications_created_and_deleted_show_within_two_seconds_and_status_changes_write_nothing() {
    let client = client().await;
    let (acd, _server, ns) = watched_server(&client, "acd-watch", "real-watch").await;
    let op = Operator::start(&ns);
    until_reason(&client, &ns, "Connected").await;
    let i = until_stream(&client, &ns, "Streaming", Duration::from_secs(40)).await;
    assert_eq!(i.status.as_ref().and_then(|s| s.summary.as_ref()).map(|s| s.applications), Some(1));

    // A new destination: only the stream can bring it this fast.
    let started = Instant::now();
    server::applications(
        &client,
        &acd,
        vec![server::application("new", Dest::Server("https://new.example.com"))],
    )
    .await;
    instance_where(&client, &ns, "prod", LIVE, "the new destination", |i| {
        unlinked(i, "https://new.example.com")
    })
    .await;
    let shown = started.elapsed();

    // Status-only changes. Argo CD compares an event's projected bytes with the last one it
    // sent for that application, `type` included: the first MODIFIED after the ADDED still
    // goes out (and changes nothing); from then on a status change sends nothing at all.
    let events = || metric(&op, "argomap_stream_events_total", &[("namespace", &ns)]);
    let primed = events();
    set_health(&client, &acd, "Progressing").await;
    writes_nothing(&client, &ns, "prod", "the first status-only change").await;
    assert!(events() - primed <= 1.0, "{} events for the first status change", events() - primed);
    let quiet = events();
    set_health(&client, &acd, "Degraded").await;
    writes_nothing(&client, &ns, "prod", "a status-only change").await;
    assert_eq!(events() - quiet, 0.0, "no event for a status-only change");

    let started = Instant::now();
    apps(&client, &acd).delete("new", &DeleteParams::default()).await.expect("delete application");
    instance_where(&client, &ns, "prod", LIVE, "the destination gone", |i| {
        !unlinked(i, "https://new.example.com")
    })
    .await;
    let gone = started.elapsed();
    // Between the checks of a one-minute interval, no application list but the task's own.
    assert_eq!(metric(&op, "argomap_stream_relists_total", &[("namespace", &ns)]), 1.0);
    eprintln!("watch: a new destination shown after {shown:?}, a deleted one gone after {gone:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_server_is_followed_again_after_a_relist() {
    let client = client().await;
    let (acd, mut server, ns) = watched_server(&client, "acd-watch-restart", "real-watch-restart").await;
    let op = Operator::start(&ns);
    until_stream(&client, &ns, "Streaming", Duration::from_secs(40)).await;

    server.stop();
    let i = until_stream(&client, &ns, "Reconnecting", Duration::from_secs(20)).await;
    let message = stream_message(&i);
    assert!(message.contains("reconnecting"), "{message}");

    // Created while the server is down: only the relist after the reconnect can bring it.
    server::applications(
        &client,
        &acd,
        vec![server::application("late", Dest::Server("https://late.example.com"))],
    )
    .await;
    server.start_again();
    until_stream(&client, &ns, "Streaming", Duration::from_secs(60)).await;
    instance_where(
        &client,
        &ns,
        "prod",
        Duration::from_secs(10),
        "the application created while down",
        |i| unlinked(i, "https://late.example.com"),
    )
    .await;
    assert!(metric(&op, "argomap_stream_relists_total", &[("namespace", &ns)]) >= 2.0);
    assert!(metric(&op, "argomap_stream_reconnects_total", &[("namespace", &ns)]) >= 1.0);
}
