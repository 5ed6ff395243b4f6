//! Two replicas with leader election: exactly one checks Argo CD; a standby takes over when the
//! leader dies, at once when it is stopped with SIGTERM (the Lease is released and a running
//! standby sees it through its watch).

use std::time::{Duration, Instant};

use fake_argocd::Endpoint;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::common::*;

async fn holder(client: &kube::Client, ns: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), ns).get("argomap").await.ok()?;
    lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty())
}

async fn holder_is(client: &kube::Client, ns: &str, want: &str, deadline: Duration) {
    eventually(deadline, &format!("Lease held by {want}"), || async move {
        match holder(client, ns).await {
            Some(h) if h == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn replica(ns: &str, name: &str) -> Operator {
    Operator::start_env(ns, &["--leader-election", "--lease-namespace", ns], &[("POD_NAME", name)])
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_checks_and_a_standby_takes_over() {
    let Setup { client, ns, argocd, .. } = setup("leader", &[], "10s").await;
    let mut a = replica(&ns, "replica-a");
    let mut b = replica(&ns, "replica-b");
    instance_where(&client, &ns, "prod", Duration::from_secs(30), "connected", connected).await;
    let first = eventually(Duration::from_secs(10), "a Lease holder", || async {
        holder(&client, &ns).await.ok_or_else(|| "none".to_string())
    })
    .await;

    // Exactly one replica polls: a 10 s interval over 21 s is 2 or 3 checks, not twice that.
    let before = argocd.requests(Endpoint::Clusters);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(21) {
        assert_eq!(holder(&client, &ns).await.as_deref(), Some(first.as_str()), "the leader stays");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let checks = argocd.requests(Endpoint::Clusters) - before;
    assert!((1..=3).contains(&checks), "one poller expected, saw {checks} checks in 21 s");

    // The leader dies without releasing: the standby polls within 20 s.
    let (leader, standby) = if first == "replica-a" { (&mut a, "replica-b") } else { (&mut b, "replica-a") };
    leader.kill();
    let before = argocd.requests(Endpoint::Clusters);
    let killed = Instant::now();
    eventually(Duration::from_secs(20), "the standby checks Argo CD", || async {
        if argocd.requests(Endpoint::Clusters) > before { Ok(()) } else { Err("no check yet".into()) }
    })
    .await;
    holder_is(&client, &ns, standby, Duration::from_secs(5)).await;
    eprintln!("takeover after SIGKILL: {:?}", killed.elapsed());

    // SIGTERM releases the Lease at once, and a standby that was already running (as in a
    // rolling update) takes it within a couple of seconds, not when it would have expired.
    let mut c = replica(&ns, "replica-c");
    eventually(Duration::from_secs(20), "replica-c synced", || async {
        if c.log_text().contains("watches synced") { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    let new_leader = if standby == "replica-a" { &mut a } else { &mut b };
    let stopped = Instant::now();
    new_leader.terminate();
    holder_is(&client, &ns, "replica-c", Duration::from_secs(4)).await;
    eprintln!("takeover by a running standby after SIGTERM: {:?}", stopped.elapsed());
    assert!(
        stopped.elapsed() < Duration::from_secs(LEASE_EXPIRY_SECS),
        "taken over before the Lease expired"
    );
    c.terminate();
}

const LEASE_EXPIRY_SECS: u64 = argomap::leader::LEASE_DURATION;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_right_after_start_still_exits() {
    // A signal before the first list completes must not leave the process waiting forever.
    let Setup { ns, .. } = setup("early-term", &[], "60s").await;
    let mut op = replica(&ns, "early");
    op.terminate();
}
