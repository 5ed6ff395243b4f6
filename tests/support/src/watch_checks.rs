//! Watch mode's assertions, run the same way against the fake Argo CD (`tests/cluster`) and
//! the real argocd-server (`tests/argocd_real`).

use std::time::{Duration, Instant};

use argomap::crd::ArgoCdInstance;
use kube::Api;

/// How fast a change of Argo CD's applications must reach the status in watch mode (the
/// interval is a minute, so polling cannot explain it).
pub const LIVE: Duration = Duration::from_secs(2);

/// How long a status must stay unwritten to call a change silent: well over what an event
/// takes to cross the stream and a reconcile to write (both under a second).
pub const QUIET: Duration = Duration::from_secs(4);

/// The reason of the `ApplicationStream` condition.
pub fn stream_reason(i: &ArgoCdInstance) -> Option<String> {
    let s = i.status.as_ref()?;
    s.conditions.iter().find(|c| c.type_ == "ApplicationStream").map(|c| c.reason.clone())
}

/// The message of the `ApplicationStream` condition.
pub fn stream_message(i: &ArgoCdInstance) -> String {
    let s = i.status.as_ref();
    s.and_then(|s| s.conditions.iter().find(|c| c.type_ == "ApplicationStream"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Whether `url` is among the instance's unlinked destinations.
pub fn unlinked(i: &ArgoCdInstance, url: &str) -> bool {
    i.status.as_ref().is_some_and(|s| s.unlinked_clusters.iter().any(|u| u.argocd_cluster_url == url))
}

/// Asserts that instance `name` is not written for [`QUIET`] (its resourceVersion stays).
pub async fn writes_nothing(client: &kube::Client, ns: &str, name: &str, what: &str) {
    let api = Api::<ArgoCdInstance>::namespaced(client.clone(), ns);
    let before = api.get(name).await.expect("get instance").metadata.resource_version;
    let since = Instant::now();
    while since.elapsed() < QUIET {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = api.get(name).await.expect("get instance");
        assert_eq!(now.metadata.resource_version, before, "{what}: a status write: {:?}", now.status);
    }
}
