//! Pure attribution: which destinations an Argo CD deploys to, how many applications go to
//! each, and which ClusterMappings link, conflict or point at nothing. No IO here.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::argocd::types::{Application, Cluster};
use crate::crd::{IN_CLUSTER_URL, KnownCluster, LinkedCluster, MappingState, UnlinkedCluster};

/// Canonical form of a cluster URL, used for every comparison: scheme and host lower-cased,
/// default port and trailing `/` dropped, path and query kept (argocd-agent's `?agentName=`
/// URLs are distinct destinations), fragment dropped. A string that is no URL is kept
/// (trimmed, without trailing `/`) so that it still compares equal to itself.
pub fn normalize_url(raw: &str) -> String {
    let trimmed = raw.trim();
    let Ok(url) = url::Url::parse(trimmed) else {
        return trimmed.trim_end_matches('/').to_string();
    };
    let Some(host) = url.host_str() else {
        return trimmed.trim_end_matches('/').to_string();
    };
    // `Url` already lower-cases scheme and host and drops the scheme's default port.
    let mut out = format!("{}://{}", url.scheme(), host.to_ascii_lowercase());
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(url.path().trim_end_matches('/'));
    if let Some(q) = url.query().filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(q);
    }
    out
}

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

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Destinations = Argo CD's cluster list ∪ every application's destination. Applications that
/// name their destination are resolved through the cluster list, as Argo CD does; a name
/// matching zero or several clusters, or a destination with both or neither of server and
/// name, counts as unresolved.
pub fn destinations(clusters: &[Cluster], apps: &[Application]) -> Destinations {
    let mut out = Destinations { cluster_list_empty: clusters.is_empty(), ..Default::default() };
    let mut by_name: HashMap<&str, Vec<String>> = HashMap::new();
    for c in clusters {
        let Some(server) = non_empty(&c.server) else { continue };
        let url = normalize_url(server);
        let name = non_empty(&c.name);
        if let Some(name) = name {
            by_name.entry(name).or_default().push(url.clone());
        }
        let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo {
            url,
            name: None,
            connection_state: None,
            applications: 0,
            listed: true,
        });
        entry.name = entry.name.take().or(name.map(String::from));
        entry.connection_state = entry.connection_state.take().or(c.connection_status().map(String::from));
    }

    for app in apps {
        out.applications += 1;
        let dest = app.destination();
        let server = dest.and_then(|d| non_empty(&d.server));
        let name = dest.and_then(|d| non_empty(&d.name));
        if server.is_some() || name.is_some() {
            out.apps_name_destinations = true;
        }
        let url = match (server, name) {
            (Some(server), None) => Some(normalize_url(server)),
            (None, Some(name)) => match by_name.get(name).map(Vec::as_slice) {
                Some([only]) => Some(only.clone()),
                _ => None,
            },
            _ => None,
        };
        match url {
            Some(url) => {
                let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo {
                    url,
                    name: None,
                    connection_state: None,
                    applications: 0,
                    listed: false,
                });
                entry.applications += 1;
            }
            None => {
                out.unresolved += 1;
                if out.unresolved_examples.len() < UNRESOLVED_EXAMPLES {
                    out.unresolved_examples.push(app.key());
                }
            }
        }
    }
    out
}

/// What the linker needs of a ClusterMapping.
#[derive(Clone, Debug)]
pub struct MappingInput<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub created: Option<Timestamp>,
    pub cluster: &'a KnownCluster,
}

/// The state one ClusterMapping ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingOutcome {
    pub state: MappingState,
    pub argocd_cluster_name: Option<String>,
    pub applications_count: Option<u64>,
    pub conflicts_with: Option<String>,
}

/// The result of linking destinations to mappings, lists sorted by URL (or name).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Linkage {
    pub linked: Vec<LinkedCluster>,
    pub unlinked: Vec<UnlinkedCluster>,
    pub orphaned: Vec<String>,
    pub mappings: BTreeMap<String, MappingOutcome>,
}

/// Links every destination to the ClusterMapping with an equal normalised URL. Several
/// mappings for one URL: the oldest (creation time, then name) holds it and the others are
/// `Conflict`. No mapping: unlinked, except Argo CD's in-cluster destination, which links
/// implicitly to the agent cluster. A mapping whose URL is no destination is `Orphaned`.
pub fn link(dest: &Destinations, mappings: &[MappingInput<'_>], agent: &KnownCluster) -> Linkage {
    let mut claims: BTreeMap<String, Vec<&MappingInput<'_>>> = BTreeMap::new();
    for m in mappings {
        claims.entry(normalize_url(m.url)).or_default().push(m);
    }
    let mut out = Linkage::default();
    // Destination URL → the mapping that holds it.
    let mut holders: HashMap<String, &MappingInput<'_>> = HashMap::new();
    for (url, mut claimants) in claims {
        // Oldest first; a missing creation time sorts last, then by name for a stable order.
        claimants.sort_by(|a, b| {
            (a.created.is_none(), a.created, a.name).cmp(&(b.created.is_none(), b.created, b.name))
        });
        let holder = claimants[0];
        let found = dest.by_url.get(&url);
        for loser in &claimants[1..] {
            out.mappings.insert(
                loser.name.to_string(),
                MappingOutcome {
                    state: MappingState::Conflict,
                    argocd_cluster_name: found.and_then(|d| d.name.clone()),
                    applications_count: None,
                    conflicts_with: Some(holder.name.to_string()),
                },
            );
        }
        match found {
            Some(d) => {
                holders.insert(url, holder);
                out.mappings.insert(
                    holder.name.to_string(),
                    MappingOutcome {
                        state: MappingState::Linked,
                        argocd_cluster_name: d.name.clone(),
                        applications_count: Some(d.applications),
                        conflicts_with: None,
                    },
                );
            }
            None => {
                out.orphaned.push(holder.name.to_string());
                out.mappings.insert(
                    holder.name.to_string(),
                    MappingOutcome {
                        state: MappingState::Orphaned,
                        argocd_cluster_name: None,
                        applications_count: None,
                        conflicts_with: None,
                    },
                );
            }
        }
    }

    let in_cluster = normalize_url(IN_CLUSTER_URL);
    for d in dest.by_url.values() {
        let linked_to = match holders.get(&d.url) {
            Some(m) => Some((Some(m.name.to_string()), m.cluster.clone())),
            None if d.url == in_cluster => Some((None, agent.clone())),
            None => None,
        };
        match linked_to {
            Some((mapping, cluster)) => out.linked.push(LinkedCluster {
                argocd_cluster_url: d.url.clone(),
                argocd_cluster_name: d.name.clone(),
                mapping,
                cluster,
                applications_count: d.applications,
                argocd_connection_state: d.connection_state.clone(),
            }),
            None => out.unlinked.push(UnlinkedCluster {
                argocd_cluster_url: d.url.clone(),
                argocd_cluster_name: d.name.clone(),
                applications_count: d.applications,
                argocd_connection_state: d.connection_state.clone(),
            }),
        }
    }
    out.orphaned.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::types::{AppMetadata, AppSpec, ClusterInfo, ConnectionState, Destination};
    use crate::crd::{CloudProvider, KubernetesType};

    fn cluster(server: &str, name: &str) -> Cluster {
        Cluster { server: Some(server.into()), name: Some(name.into()), ..Default::default() }
    }

    fn app(ns: &str, name: &str, server: Option<&str>, dest_name: Option<&str>) -> Application {
        Application {
            metadata: Some(AppMetadata { name: Some(name.into()), namespace: Some(ns.into()) }),
            spec: Some(AppSpec {
                destination: Some(Destination {
                    server: server.map(String::from),
                    name: dest_name.map(String::from),
                }),
            }),
        }
    }

    fn known(name: &str) -> KnownCluster {
        KnownCluster {
            id: "0b9f6a1e-0000-4000-8000-000000000001".into(),
            name: name.into(),
            cloud_provider: CloudProvider::Aws,
            kind: KubernetesType::Managed,
        }
    }

    fn ts(s: &str) -> Option<Timestamp> {
        Some(s.parse().expect("timestamp"))
    }

    #[test]
    fn normalize_lowercases_scheme_and_host_and_keeps_path_case() {
        assert_eq!(normalize_url("HTTPS://API.Example.COM/Path/X"), "https://api.example.com/Path/X");
    }

    #[test]
    fn normalize_drops_default_ports_only() {
        assert_eq!(normalize_url("https://a.example.com:443"), "https://a.example.com");
        assert_eq!(normalize_url("http://a.example.com:80/"), "http://a.example.com");
        assert_eq!(normalize_url("https://a.example.com:80"), "https://a.example.com:80");
        assert_eq!(normalize_url("https://10.0.0.1:6443"), "https://10.0.0.1:6443");
    }

    #[test]
    fn normalize_drops_trailing_slashes() {
        assert_eq!(normalize_url("https://a.example.com/"), "https://a.example.com");
        assert_eq!(
            normalize_url("https://a.example.com/k8s/clusters/c-1/"),
            "https://a.example.com/k8s/clusters/c-1"
        );
        assert_eq!(normalize_url("  https://a.example.com//  "), "https://a.example.com");
    }

    #[test]
    fn normalize_keeps_query_so_agent_urls_stay_distinct() {
        let a = normalize_url("https://argocd-agent-resource-proxy:9090?agentName=prod");
        let b = normalize_url("https://argocd-agent-resource-proxy:9090/?agentName=staging");
        assert_eq!(a, "https://argocd-agent-resource-proxy:9090?agentName=prod");
        assert_eq!(b, "https://argocd-agent-resource-proxy:9090?agentName=staging");
        assert_ne!(a, b);
    }

    #[test]
    fn normalize_ipv6_and_fragment() {
        assert_eq!(normalize_url("https://[::1]:6443/#frag"), "https://[::1]:6443");
    }

    #[test]
    fn normalize_keeps_non_urls_comparable() {
        assert_eq!(normalize_url("kubernetes.default.svc/"), "kubernetes.default.svc");
        assert_eq!(normalize_url(""), "");
    }

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
    fn link_linked_unlinked_orphaned() {
        let clusters =
            vec![cluster("https://10.0.0.1:6443", "prod-eks"), cluster("https://old.example.com", "old")];
        let apps = vec![app("argocd", "a", Some("https://10.0.0.1:6443"), None)];
        let d = destinations(&clusters, &apps);
        let prod = known("Prod EKS");
        let gke = known("Legacy GKE");
        let mappings = vec![
            MappingInput {
                name: "prod-eks",
                url: "HTTPS://10.0.0.1:6443/",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &prod,
            },
            MappingInput {
                name: "legacy-gke",
                url: "https://gke.example.com",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &gke,
            },
        ];
        let l = link(&d, &mappings, &known("Agent"));
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("prod-eks"));
        assert_eq!(l.linked[0].applications_count, 1);
        assert_eq!(l.linked[0].argocd_cluster_name.as_deref(), Some("prod-eks"));
        assert_eq!(l.unlinked.len(), 1);
        assert_eq!(l.unlinked[0].argocd_cluster_url, "https://old.example.com");
        assert_eq!(l.orphaned, vec!["legacy-gke".to_string()]);
        assert_eq!(l.mappings["prod-eks"].state, MappingState::Linked);
        assert_eq!(l.mappings["prod-eks"].applications_count, Some(1));
        assert_eq!(l.mappings["legacy-gke"].state, MappingState::Orphaned);
    }

    #[test]
    fn conflict_oldest_wins_then_name() {
        let d = destinations(&[cluster("https://a", "a")], &[]);
        let c = known("C");
        let mappings = vec![
            MappingInput {
                name: "young",
                url: "https://a",
                created: ts("2026-02-01T00:00:00Z"),
                cluster: &c,
            },
            MappingInput {
                name: "old-b",
                url: "https://a/",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &c,
            },
            MappingInput {
                name: "old-a",
                url: "https://A",
                created: ts("2026-01-01T00:00:00Z"),
                cluster: &c,
            },
        ];
        let l = link(&d, &mappings, &known("Agent"));
        assert_eq!(l.mappings["old-a"].state, MappingState::Linked);
        assert_eq!(l.mappings["old-b"].state, MappingState::Conflict);
        assert_eq!(l.mappings["old-b"].conflicts_with.as_deref(), Some("old-a"));
        assert_eq!(l.mappings["young"].state, MappingState::Conflict);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("old-a"));
    }

    #[test]
    fn conflict_on_a_url_argocd_does_not_know() {
        let d = destinations(&[], &[]);
        let c = known("C");
        let mappings = vec![
            MappingInput { name: "a", url: "https://x", created: ts("2026-01-01T00:00:00Z"), cluster: &c },
            MappingInput { name: "b", url: "https://x", created: ts("2026-01-02T00:00:00Z"), cluster: &c },
        ];
        let l = link(&d, &mappings, &known("Agent"));
        assert_eq!(l.mappings["a"].state, MappingState::Orphaned);
        assert_eq!(l.mappings["b"].state, MappingState::Conflict);
        assert_eq!(l.orphaned, vec!["a".to_string()]);
    }

    #[test]
    fn in_cluster_links_implicitly_to_agent_unless_mapped() {
        let clusters = vec![cluster("https://kubernetes.default.svc", "in-cluster")];
        let apps = vec![app("argocd", "g", Some("https://kubernetes.default.svc/"), None)];
        let d = destinations(&clusters, &apps);
        let agent = known("Agent");
        let l = link(&d, &[], &agent);
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.linked[0].mapping, None);
        assert_eq!(l.linked[0].cluster, agent);
        assert_eq!(l.linked[0].applications_count, 1);

        let other = known("Explicit");
        let m = [MappingInput { name: "explicit", url: IN_CLUSTER_URL, created: None, cluster: &other }];
        let l = link(&d, &m, &agent);
        assert_eq!(l.linked[0].mapping.as_deref(), Some("explicit"));
        assert_eq!(l.linked[0].cluster, other);
    }

    #[test]
    fn agent_urls_link_separately() {
        let clusters = vec![
            cluster("https://proxy:9090?agentName=prod", "prod"),
            cluster("https://proxy:9090?agentName=staging", "staging"),
        ];
        let d = destinations(&clusters, &[]);
        let c = known("Prod");
        let m = [MappingInput {
            name: "prod",
            url: "https://proxy:9090/?agentName=prod",
            created: None,
            cluster: &c,
        }];
        let l = link(&d, &m, &known("Agent"));
        assert_eq!(l.linked.len(), 1);
        assert_eq!(l.unlinked.len(), 1);
        assert_eq!(l.unlinked[0].argocd_cluster_url, "https://proxy:9090?agentName=staging");
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
