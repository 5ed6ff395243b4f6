//! What watch mode costs Argo CD, counted by argocd-server itself (`grpc_server_started_total`
//! on its metrics port): over five minutes of a one-minute interval, one stream, a cluster
//! list per interval, and no application list (the relist period is ten intervals). A change
//! made in the middle of the window still arrives through the stream, so the quiet is a live
//! stream's, not a dead one's.

use std::time::{Duration, Instant};

use argomap::crd::ArgoCdInstance;
use kube::Api;

use crate::common::*;
use crate::metric;
use crate::server::{self, Dest, Server};
use crate::watch::watched_server;
use argomap_test_support::watch_checks::*;

/// The window.
const WINDOW: Duration = Duration::from_secs(300);
/// When, within the window, the live change is made.
const CHANGE_AT: Duration = Duration::from_secs(150);

/// Argo CD's counts of the calls argomap makes: (application lists, streams, cluster lists).
fn counts(server: &Server) -> (u64, u64, u64) {
    (
        server.grpc_started("application.ApplicationService", "List"),
        server.grpc_started("application.ApplicationService", "Watch"),
        server.grpc_started("cluster.ClusterService", "List"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn five_minutes_of_watch_mode_cost_argo_cd_one_stream_and_the_cluster_lists() {
    let client = client().await;
    let (acd, server, ns) = watched_server(&client, "acd-watch-cost", "real-watch-cost").await;
    let op = Operator::start(&ns);
    let streaming = |i: &ArgoCdInstance| stream_reason(i).as_deref() == Some("Streaming");
    instance_where(&client, &ns, "prod", Duration::from_secs(60), "streaming", streaming).await;

    let before = counts(&server);
    let started = Instant::now();
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let mut changed_after = None;
    // The window is the measurement; meanwhile the stream must stay open throughout.
    while started.elapsed() < WINDOW {
        if changed_after.is_none() && started.elapsed() >= CHANGE_AT {
            let at = Instant::now();
            server::applications(
                &client,
                &acd,
                vec![server::application("mid", Dest::Server("https://mid.example.com"))],
            )
            .await;
            instance_where(&client, &ns, "prod", LIVE, "the change in the window", |i| {
                unlinked(i, "https://mid.example.com")
            })
            .await;
            changed_after = Some(at.elapsed());
        }
        let i = instances.get("prod").await.expect("get instance");
        assert!(streaming(&i), "the stream stays open: {}", stream_message(&i));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let after = counts(&server);
    let (lists, streams, clusters) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    eprintln!(
        "watch cost over {WINDOW:?} (Argo CD's own counts): {lists} application lists, {streams} streams opened \
         ({} in all), {clusters} cluster lists; before the window: {} lists, {} stream; a change in the window \
         shown after {changed_after:?}",
        after.1, before.0, before.1
    );
    assert_eq!(after.1, 1, "one stream all along: {before:?} → {after:?}");
    assert_eq!(lists, 0, "no application list in the window: {before:?} → {after:?}");
    // One check an interval (±10%), five intervals: 4 to 6 depending on where they fall.
    assert!((4..=6).contains(&clusters), "{clusters} cluster lists in five one-minute intervals");
    assert_eq!(metric(&op, "argomap_stream_relists_total", &[("namespace", &ns)]), 1.0);
}
