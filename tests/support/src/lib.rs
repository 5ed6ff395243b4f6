//! The one home of the helpers argomap's integration suites share (`tests/*.rs`,
//! `tests/cluster/`, `tests/faults/`, `tests/argocd_real/`), a dev-dependency of argomap only:
//! - `fixtures`: argomap's own builders (`argomap::fixtures`, which the unit tests inside `src/`
//!   use as `crate::fixtures`): instances, mappings, Argo CD's wire types, the manifests
//!   `argomap check -f` reads, and the Qovery contract's validator;
//! - [`fake`]: the fake Argo CD with its sample fleet;
//! - `argocd_answers`: what Argo CD answers, asserted alike on the fake and the real server;
//! - `watch_checks`: watch mode's assertions, alike on the fake and the real server.

pub mod argocd_answers;
pub mod watch_checks;

pub use argomap::fixtures;
pub use argomap::fixtures::{MANIFESTS, contract};

use fake_argocd::{FakeArgoCd, Options, jwt};

/// The standard fake Argo CD and a token it accepts: two listed clusters, applications by
/// server and by name, and the synthesised in-cluster destination
/// (`fake_argocd::sample_clusters`, `sample_apps`).
pub async fn fake() -> (FakeArgoCd, String) {
    let argocd = FakeArgoCd::start(Options::default()).await;
    let token = jwt("argomap:apiKey", None);
    argocd.add_token(&token);
    argocd.set_clusters(fake_argocd::sample_clusters());
    argocd.set_applications(fake_argocd::sample_apps());
    (argocd, token)
}
