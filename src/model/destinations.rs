//! Destinations and attribution: which clusters an Argo CD deploys to, and how many of its
//! applications go to each. Pure.

use std::collections::{BTreeMap, HashMap};

use super::url::normalize_url;
use crate::argocd::tally::AppTally;
use crate::argocd::types::{Application, Cluster};
use crate::text::printable;

/// One destination cluster of an Argo CD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationInfo {
    /// Normalised URL (the identity).
    pub url: String,
    /// Argo CD's cluster name, when the cluster list has one.
    pub name: Option<String>,
    /// Argo CD's connection state hint (`Successful`, `Failed`, `Unknown`), if any.
    pub connection_state: Option<String>,
    /// argomap's own count of applications aimed at it.
    pub applications: u64,
    /// Whether Argo CD's cluster list contains it.
    pub listed: bool,
}

/// Every destination of one Argo CD, keyed by normalised URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destinations {
    pub by_url: BTreeMap<String, DestinationInfo>,
    /// All applications in the list.
    pub applications: u64,
    /// Applications whose destination could not be resolved to a URL.
    pub unresolved: u64,
    /// A few `namespace/name` of unresolved applications, for the log.
    pub unresolved_examples: Vec<String>,
    /// Whether any application names a destination (used to read an empty cluster list).
    pub apps_name_destinations: bool,
    /// Whether the cluster list was empty.
    pub cluster_list_empty: bool,
}

const UNRESOLVED_EXAMPLES: usize = 5;
/// Longest Argo CD cluster name kept (Argo CD sets no limit; a Kubernetes name is 253).
pub const NAME_CAP: usize = 253;
/// Longest destination URL kept (longer ones are cut, and then match no mapping).
pub const URL_CAP: usize = 2048;
/// Longest connection state kept (Argo CD's are `Successful`, `Failed`, `Unknown`).
const STATE_CAP: usize = 64;

/// A destination URL as argomap keeps it: normalised, printable and bounded.
fn destination_url(server: &str) -> String {
    printable(&normalize_url(server), URL_CAP)
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Destinations = Argo CD's cluster list ∪ every application's destination. Applications that
/// name their destination are resolved through the cluster list, as Argo CD does; a name
/// matching zero or several clusters, or a destination with both or neither of server and
/// name, counts as unresolved.
pub fn destinations(clusters: &[Cluster], apps: &[Application]) -> Destinations {
    destinations_from(clusters, &AppTally::from_apps(apps))
}

/// [`destinations`] from the application list as the client folds it while decoding.
pub fn destinations_from(clusters: &[Cluster], apps: &AppTally) -> Destinations {
    let mut out = Destinations { cluster_list_empty: clusters.is_empty(), ..Default::default() };
    let mut by_name: HashMap<&str, Vec<String>> = HashMap::new();
    for c in clusters {
        let Some(server) = non_empty(&c.server) else { continue };
        let url = destination_url(server);
        let name = non_empty(&c.name).map(|n| printable(n, NAME_CAP));
        if let Some(name) = non_empty(&c.name) {
            by_name.entry(name).or_default().push(url.clone());
        }
        let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo {
            url,
            name: None,
            connection_state: None,
            applications: 0,
            listed: true,
        });
        entry.name = entry.name.take().or(name);
        entry.connection_state =
            entry.connection_state.take().or(c.connection_status().map(|s| printable(s, STATE_CAP)));
    }

    out.applications = apps.total;
    out.apps_name_destinations = apps.any_destination;
    out.unresolved = apps.unaddressed;
    out.unresolved_examples = apps.unaddressed_examples.iter().map(|e| printable(e, NAME_CAP)).collect();
    let count = |out: &mut Destinations, url: String, n: u64| {
        let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo {
            url,
            name: None,
            connection_state: None,
            applications: 0,
            listed: false,
        });
        entry.applications += n;
    };
    for (server, n) in &apps.by_server {
        count(&mut out, destination_url(server), *n);
    }
    // Sorted, so the examples of unresolved names do not depend on hashing.
    let mut names: Vec<(&String, &(u64, String))> = apps.by_name.iter().collect();
    names.sort();
    for (name, (n, first)) in names {
        match by_name.get(name.as_str()).map(Vec::as_slice) {
            Some([only]) => count(&mut out, only.clone(), *n),
            _ => {
                out.unresolved += n;
                if out.unresolved_examples.len() < UNRESOLVED_EXAMPLES {
                    out.unresolved_examples.push(printable(first, NAME_CAP));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::types::{AppSpec, ClusterInfo, ConnectionState};
    use crate::fixtures::{app, cluster};

    #[test]
    fn destinations_union_of_clusters_and_apps() {
        let clusters =
            vec![cluster("https://10.0.0.1:6443", "prod"), cluster("https://old.example.com", "old")];
        let apps = vec![
            app("argocd", "a", Some("https://10.0.0.1:6443/"), None),
            app("argocd", "b", Some("https://UNLISTED.example.com"), None),
        ];
        let d = destinations(&clusters, &apps);
        assert_eq!(d.by_url.len(), 3);
        assert_eq!(d.by_url["https://10.0.0.1:6443"].applications, 1);
        assert!(d.by_url["https://10.0.0.1:6443"].listed);
        assert_eq!(d.by_url["https://old.example.com"].applications, 0);
        let unlisted = &d.by_url["https://unlisted.example.com"];
        assert!(!unlisted.listed);
        assert_eq!(unlisted.name, None);
        assert_eq!(d.applications, 2);
        assert_eq!(d.unresolved, 0);
    }

    #[test]
    fn name_only_destinations_resolve_through_cluster_list() {
        let clusters =
            vec![cluster("https://kubernetes.default.svc", "in-cluster"), cluster("https://b", "b")];
        let apps = vec![
            app("argocd", "cert-manager", None, Some("in-cluster")),
            app("argocd", "x", None, Some("b")),
            app("argocd", "ghost", None, Some("no-such-cluster")),
        ];
        let d = destinations(&clusters, &apps);
        assert_eq!(d.by_url["https://kubernetes.default.svc"].applications, 1);
        assert_eq!(d.by_url["https://b"].applications, 1);
        assert_eq!(d.unresolved, 1);
        assert_eq!(d.unresolved_examples, vec!["argocd/ghost".to_string()]);
    }

    #[test]
    fn ambiguous_names_and_bad_destinations_are_unresolved() {
        let clusters = vec![cluster("https://a", "dup"), cluster("https://b", "dup")];
        let mut neither = app("argocd", "neither", None, None);
        neither.spec = Some(AppSpec { destination: None });
        let apps = vec![
            app("argocd", "ambiguous", None, Some("dup")),
            app("argocd", "both", Some("https://a"), Some("dup")),
            neither,
            Application::default(),
        ];
        let d = destinations(&clusters, &apps);
        assert_eq!(d.unresolved, 4);
        assert_eq!(d.by_url["https://a"].applications, 0);
        assert_eq!(d.applications, 4);
    }

    #[test]
    fn apps_in_other_namespaces_count_separately() {
        let apps = vec![
            app("argocd", "api", Some("https://a"), None),
            app("team-a", "api", Some("https://a"), None),
        ];
        let d = destinations(&[cluster("https://a", "a")], &apps);
        assert_eq!(d.by_url["https://a"].applications, 2);
    }

    #[test]
    fn what_argo_cd_names_is_kept_printable_and_bounded() {
        let mut huge = Cluster {
            server: Some(format!("https://{}.example.com", "x".repeat(10_000))),
            ..Default::default()
        };
        huge.name = Some(format!("prod\n{}", "n".repeat(1 << 20)));
        let d = destinations(&[huge], &[]);
        let (url, info) = d.by_url.iter().next().expect("one destination");
        assert!(url.len() <= URL_CAP && url.ends_with('…'));
        let name = info.name.as_deref().expect("name");
        assert!(name.len() <= NAME_CAP && name.starts_with("prodn") && !name.contains('\n'), "{name}");
    }

    #[test]
    fn connection_state_is_copied_as_hint() {
        let mut c = cluster("https://a", "a");
        c.info =
            Some(ClusterInfo { connection_state: Some(ConnectionState { status: Some("Failed".into()) }) });
        let d = destinations(&[c, cluster("https://b", "")], &[]);
        assert_eq!(d.by_url["https://a"].connection_state.as_deref(), Some("Failed"));
        assert_eq!(d.by_url["https://b"].connection_state, None);
        assert_eq!(d.by_url["https://b"].name, None, "an empty Argo CD name is no name");
    }

    #[test]
    fn empty_cluster_list_while_apps_name_destinations_is_flagged() {
        let d = destinations(&[], &[app("argocd", "a", Some("https://a"), None)]);
        assert!(d.cluster_list_empty);
        assert!(d.apps_name_destinations);
        assert_eq!(d.by_url["https://a"].applications, 1);
        let d = destinations(&[], &[]);
        assert!(d.cluster_list_empty && !d.apps_name_destinations);
    }

    #[test]
    fn multi_source_apps_use_their_single_destination() {
        // The projected body of a multi-source app: spec.sources is dropped by the projection,
        // spec.destination stays.
        let raw = r#"{"items":[{"metadata":{"name":"payments-prod","namespace":"argocd"},
            "spec":{"sources":[{"repoURL":"https://x"},{"repoURL":"https://y","ref":"values"}],
            "destination":{"server":"https://10.0.0.1:6443","namespace":"payments"},"project":"default"}}]}"#;
        let list: crate::argocd::types::ApplicationList = serde_json::from_str(raw).expect("decode");
        let d = destinations(&[], list.items.as_deref().unwrap_or_default());
        assert_eq!(d.by_url["https://10.0.0.1:6443"].applications, 1);
    }
}
