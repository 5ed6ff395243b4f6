//! Destinations and attribution: which clusters an Argo CD deploys to, and how many of its
//! applications go to each. Pure.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::url::normalize_url;
use crate::argocd::identity::{self, Recognised};
use crate::argocd::tally::{AppTally, CONNECTION_MESSAGE_CAP, Count};
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
    /// The same applications by health and sync (all `Unknown` unless health was read).
    pub by_status: Count,
    /// Whether Argo CD's cluster list contains it.
    pub listed: bool,
    /// What its registrar says it is (recognised labels, then annotations).
    pub identity: Recognised,
    /// The argocd-agent agent it stands for on a principal.
    pub agent: Option<Agent>,
}

/// An agent's cluster on an argocd-agent principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    pub name: String,
    /// Argo CD's message on the agent's connection (`Agent: '<name>' is connected with
    /// principal`), as the principal wrote it.
    pub connection: Option<String>,
}

/// A destination applications aim at that Argo CD cannot resolve: a server no cluster is
/// registered for, or a name that matches no cluster or several. Such applications break
/// Argo CD's own operations (sync windows, deletions).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dangling {
    /// The normalised URL, or the cluster name as written.
    pub destination: String,
    /// Whether `destination` is a cluster name (else a server URL).
    pub by_name: bool,
    /// Whether a cluster of that name is registered (then several are: the name is ambiguous).
    pub registered: bool,
    pub applications: u64,
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
    /// Destinations Argo CD cannot resolve, sorted (unlisted URLs and unresolved names).
    pub dangling: Vec<Dangling>,
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
///
/// On an argocd-agent principal, an agent's applications are attributed as the agent routes
/// them: those in a namespace named after an agent go to that agent's cluster (namespace
/// mapping, managed and autonomous agents: the principal ignores their `spec.destination`),
/// unless their destination is itself an agent's cluster (destination mapping).
pub fn destinations_from(clusters: &[Cluster], apps: &AppTally) -> Destinations {
    let mut out = Destinations { cluster_list_empty: clusters.is_empty(), ..Default::default() };
    let mut by_name: HashMap<&str, Vec<String>> = HashMap::new();
    // Agent name → its cluster's URL (`None` when two clusters claim one agent).
    let mut agents: HashMap<&str, Option<String>> = HashMap::new();
    for c in clusters {
        let Some(server) = non_empty(&c.server) else { continue };
        let url = destination_url(server);
        let name = non_empty(&c.name).map(|n| printable(n, NAME_CAP));
        if let Some(name) = non_empty(&c.name) {
            by_name.entry(name).or_default().push(url.clone());
        }
        let agent = identity::agent_name(&c.labels, server);
        if let Some(agent) = agent {
            agents.entry(agent).and_modify(|u| *u = None).or_insert_with(|| Some(url.clone()));
        }
        let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo::new(url, true));
        entry.name = entry.name.take().or(name);
        entry.connection_state =
            entry.connection_state.take().or(c.connection_status().map(|s| printable(s, STATE_CAP)));
        for (k, v) in c.labels.iter().chain(c.annotations.iter()) {
            entry.identity.insert(k, v);
        }
        if entry.agent.is_none() {
            entry.agent = agent.map(|a| Agent {
                name: printable(a, NAME_CAP),
                connection: c.connection_message().map(|m| printable(m, CONNECTION_MESSAGE_CAP)),
            });
        }
    }
    let agent_urls: HashSet<&str> = agents.values().flatten().map(String::as_str).collect();

    out.applications = apps.total;
    out.apps_name_destinations = apps.any_destination;
    out.unresolved = apps.unaddressed;
    out.unresolved_examples = apps.unaddressed_examples.iter().map(|e| printable(e, NAME_CAP)).collect();
    let mut counts: HashMap<String, Count> = HashMap::new();
    // Unresolved names: (count, first application, whether registered at all).
    let mut unresolved_names: BTreeMap<&str, (Count, &str, bool)> = BTreeMap::new();
    for ns in &apps.namespaces {
        // The agent this namespace's applications go to, when it is an agent's namespace.
        let agent = agents.get(ns.namespace.as_str()).cloned().flatten();
        // An application goes where its destination resolves, unless it lives in an agent's
        // namespace and its destination is no agent's cluster.
        let route = |resolved: Option<&String>| -> Option<String> {
            match (resolved, &agent) {
                (Some(url), _) if agent_urls.contains(url.as_str()) => Some(url.clone()),
                (_, Some(a)) => Some(a.clone()),
                (resolved, None) => resolved.cloned(),
            }
        };
        for (server, n) in &ns.by_server {
            let url = destination_url(server);
            if let Some(to) = route(Some(&url)) {
                counts.entry(to).or_default().merge(n);
            }
        }
        for (name, (n, first)) in &ns.by_name {
            let matches = by_name.get(name.as_str()).map(Vec::as_slice).unwrap_or_default();
            let resolved = match matches {
                [only] => Some(only),
                _ => None,
            };
            match route(resolved) {
                Some(to) => counts.entry(to).or_default().merge(n),
                None => {
                    let e = unresolved_names.entry(name.as_str()).or_insert((
                        Count::default(),
                        first.as_str(),
                        !matches.is_empty(),
                    ));
                    e.0.merge(n);
                    e.1 = e.1.min(first.as_str());
                }
            }
        }
    }
    for (url, n) in counts {
        let entry = out.by_url.entry(url.clone()).or_insert_with(|| DestinationInfo::new(url, false));
        entry.applications += n.apps;
        entry.by_status.merge(&n);
    }
    for (name, (n, first, registered)) in unresolved_names {
        out.unresolved += n.apps;
        if out.unresolved_examples.len() < UNRESOLVED_EXAMPLES {
            out.unresolved_examples.push(printable(first, NAME_CAP));
        }
        out.dangling.push(Dangling {
            destination: printable(name, NAME_CAP),
            by_name: true,
            registered,
            applications: n.apps,
        });
    }
    for d in out.by_url.values().filter(|d| !d.listed && d.applications > 0) {
        out.dangling.push(Dangling {
            destination: d.url.clone(),
            by_name: false,
            registered: false,
            applications: d.applications,
        });
    }
    out.dangling.sort();
    out
}

impl DestinationInfo {
    fn new(url: String, listed: bool) -> Self {
        DestinationInfo {
            url,
            name: None,
            connection_state: None,
            applications: 0,
            by_status: Count::default(),
            listed,
            identity: Recognised::default(),
            agent: None,
        }
    }
}

#[cfg(test)]
mod tests;
