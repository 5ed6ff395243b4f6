//! The destinations table `argomap check` prints.

use super::check::Report;
use crate::crd::{ConnectionState, DestinationDetails, DestinationKind, MappingState};
use crate::model::conditions::{self, Status};

/// The destinations table of `argomap check`.
pub fn table(report: &Report) -> String {
    let s = &report.status;
    let mut out = String::new();
    if let Some(c) = &s.connection {
        let version = c.argocd_version.as_deref().unwrap_or("unknown version");
        let state = match c.status {
            ConnectionState::Connected => "connected".to_string(),
            ConnectionState::Error => format!("error ({}): {}", c.reason, c.message),
        };
        out.push_str(&format!("Argo CD {version}: {state}\n"));
        if let Some(exp) = &c.credentials_expire_at {
            out.push_str(&format!("Token expires at {}\n", exp.0));
        }
    }
    // Health and sync columns only when the instance reads them (`spec.applications.health`).
    let health = s
        .linked_clusters
        .iter()
        .map(|l| &l.details)
        .chain(s.unlinked_clusters.iter().map(|u| &u.details))
        .any(|d| d.applications_by_status.is_some());
    let mut header =
        ["DESTINATION", "NAME", "APPS", "STATE", "MAPPING", "CLUSTER", "ARGOCD-STATE", "IDENTITY"]
            .map(String::from)
            .to_vec();
    if health {
        header.extend(["HEALTH", "SYNC"].map(String::from));
    }
    let mut rows = vec![header];
    let extra = |d: &DestinationDetails| {
        let mut cells = vec![identity(d)];
        if health {
            let (h, s) = by_status(d);
            cells.extend([h, s]);
        }
        cells
    };
    for l in &s.linked_clusters {
        let mut row = vec![
            l.argocd_cluster_url.clone(),
            l.argocd_cluster_name.clone().unwrap_or_default(),
            l.applications_count.to_string(),
            state("linked", &l.details),
            match (&l.mapping, &l.details.automatic) {
                (Some(m), _) => m.clone(),
                (None, Some(a)) => {
                    format!("(automatic: {}/{})", a.cluster_profile_ref.namespace, a.cluster_profile_ref.name)
                }
                (None, None) => "(agent cluster)".into(),
            },
            l.cluster.name.clone(),
            l.argocd_connection_state.clone().unwrap_or_default(),
        ];
        row.extend(extra(&l.details));
        rows.push(row);
    }
    for u in &s.unlinked_clusters {
        let mut row = vec![
            u.argocd_cluster_url.clone(),
            u.argocd_cluster_name.clone().unwrap_or_default(),
            u.applications_count.to_string(),
            state("unlinked", &u.details),
            String::new(),
            String::new(),
            u.argocd_connection_state.clone().unwrap_or_default(),
        ];
        row.extend(extra(&u.details));
        rows.push(row);
    }
    if rows.len() > 1 {
        let columns = rows[0].len();
        let widths: Vec<usize> =
            (0..columns).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    for l in s
        .linked_clusters
        .iter()
        .map(|l| (&l.argocd_cluster_url, &l.details))
        .chain(s.unlinked_clusters.iter().map(|u| (&u.argocd_cluster_url, &u.details)))
    {
        if let (url, DestinationDetails { argocd_agent: Some(a), .. }) = l {
            let connection = a.connection.as_deref().unwrap_or("no connection reported");
            out.push_str(&format!("argocd-agent {} ({url}): {connection}\n", a.name));
        }
    }
    for u in &s.unlinked_clusters {
        let Some(m) = &u.details.suggested_mapping else { continue };
        let profile = m
            .cluster_profile_ref
            .as_ref()
            .map(|r| format!("ClusterProfile {}/{}", r.namespace, r.name))
            .unwrap_or_else(|| "no single ClusterProfile".into());
        let note = if m.note.is_empty() { String::new() } else { format!(" ({})", m.note) };
        out.push_str(&format!(
            "Suggested for {}: {profile}, named by {}={}{note}\n",
            u.argocd_cluster_url, m.identity.key, m.identity.value
        ));
    }
    for d in &s.dangling_destinations {
        let what = match (d.kind, d.registered) {
            (DestinationKind::Server, _) => "no cluster is registered for this server",
            (DestinationKind::Name, false) => "no cluster has this name",
            (DestinationKind::Name, true) => "several clusters have this name",
        };
        out.push_str(&format!(
            "Dangling destination {}: {what}; {} applications cannot be synced or deleted cleanly\n",
            d.destination, d.applications_count
        ));
    }
    for (name, m) in &report.cluster_mappings {
        if let Some(state) = m.state.filter(|s| *s != MappingState::Linked) {
            let why = m.conditions.first().map(|c| c.message.as_str()).unwrap_or("");
            out.push_str(&format!("ClusterMapping {name}: {} ({why})\n", state.as_str()));
        }
    }
    if let Some(sum) = &s.summary {
        out.push_str(&format!(
            "{} linked, {} unlinked, {} orphaned mappings, {} applications ({} unresolved), {} dangling destinations\n",
            sum.linked_clusters,
            sum.unlinked_clusters,
            sum.orphaned_mappings,
            sum.applications,
            sum.unresolved_applications,
            sum.dangling_destinations
        ));
    }
    let visibility = [conditions::CLUSTERS_VISIBLE, conditions::APPLICATIONS_VISIBLE];
    for c in s.conditions.iter().filter(|c| visibility.contains(&c.type_.as_str()) && Status::False.of(c)) {
        out.push_str(&format!("Warning: {}\n", c.message));
    }
    if s.truncated {
        out.push_str("(lists cut by --limit; the counts above are exact)\n");
    }
    out
}

/// `linked` or `unlinked`, marked when dangling.
fn state(base: &str, d: &DestinationDetails) -> String {
    if d.dangling { format!("{base}, dangling") } else { base.to_string() }
}

/// The most specific identity as `key=value`, with how many more there are.
fn identity(d: &DestinationDetails) -> String {
    match d.identity.split_first() {
        None => String::new(),
        Some((first, [])) => format!("{}={}", first.key, first.value),
        Some((first, rest)) => format!("{}={} (+{})", first.key, first.value, rest.len()),
    }
}

/// The non-zero counts by health and by sync, e.g. `3 Healthy, 1 Degraded`.
fn by_status(d: &DestinationDetails) -> (String, String) {
    let Some(c) = &d.applications_by_status else { return Default::default() };
    let join = |pairs: &[(&str, u64)]| {
        let parts: Vec<String> =
            pairs.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{n} {k}")).collect();
        parts.join(", ")
    };
    let h = &c.health;
    let s = &c.sync;
    (
        join(&[
            ("Healthy", h.healthy),
            ("Progressing", h.progressing),
            ("Degraded", h.degraded),
            ("Suspended", h.suspended),
            ("Missing", h.missing),
            ("Unknown", h.unknown),
        ]),
        join(&[("Synced", s.synced), ("OutOfSync", s.out_of_sync), ("Unknown", s.unknown)]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        AgentStatus, ArgoCdInstanceStatus, DanglingDestination, HealthCounts, IdentityLabel, StatusCounts,
        Summary, SyncCounts, UnlinkedCluster,
    };

    fn unlinked(url: &str, details: DestinationDetails) -> UnlinkedCluster {
        UnlinkedCluster {
            argocd_cluster_url: url.into(),
            argocd_cluster_name: None,
            applications_count: 2,
            argocd_connection_state: None,
            details,
        }
    }

    #[test]
    fn identity_agent_and_dangling_destinations_show() {
        let agent = DestinationDetails {
            identity: vec![IdentityLabel {
                key: "argocd-agent.argoproj-labs.io/agent-name".into(),
                value: "edge".into(),
            }],
            argocd_agent: Some(AgentStatus {
                name: "edge".into(),
                connection: Some("Agent: 'edge' is connected with principal".into()),
            }),
            ..Default::default()
        };
        let profile = DestinationDetails {
            identity: vec![
                IdentityLabel {
                    key: "argocd.argoproj.io/cluster-profile-origin".into(),
                    value: "fleet-prod".into(),
                },
                IdentityLabel { key: "multicluster.x-k8s.io/inventory-member-id".into(), value: "m1".into() },
            ],
            ..Default::default()
        };
        let gone = DestinationDetails { dangling: true, ..Default::default() };
        let status = ArgoCdInstanceStatus {
            unlinked_clusters: vec![
                unlinked("https://proxy:9090?agentName=edge", agent),
                unlinked("https://prod", profile),
                unlinked("https://gone", gone),
            ],
            dangling_destinations: vec![
                DanglingDestination {
                    destination: "https://gone".into(),
                    kind: DestinationKind::Server,
                    registered: false,
                    applications_count: 2,
                },
                DanglingDestination {
                    destination: "dup".into(),
                    kind: DestinationKind::Name,
                    registered: true,
                    applications_count: 1,
                },
            ],
            summary: Some(Summary { dangling_destinations: 2, ..Default::default() }),
            ..Default::default()
        };
        let t = table(&Report::of_status(status));
        assert!(t.lines().next().is_some_and(|h| h.ends_with("IDENTITY")), "{t}");
        assert!(t.contains("argocd-agent.argoproj-labs.io/agent-name=edge"), "{t}");
        assert!(t.contains("argocd.argoproj.io/cluster-profile-origin=fleet-prod (+1)"), "{t}");
        assert!(t.contains("unlinked, dangling"), "{t}");
        assert!(t.contains("argocd-agent edge (https://proxy:9090?agentName=edge): Agent: 'edge' is connected with principal"), "{t}");
        assert!(
            t.contains(
                "Dangling destination https://gone: no cluster is registered for this server; 2 applications"
            ),
            "{t}"
        );
        assert!(
            t.contains("Dangling destination dup: several clusters have this name; 1 applications"),
            "{t}"
        );
        assert!(t.contains("2 dangling destinations"), "{t}");
        assert!(!t.contains("HEALTH"), "no health columns unless read: {t}");
    }

    #[test]
    fn automatic_links_and_suggestions_show() {
        use crate::crd::{AutomaticLink, KnownCluster, LinkedCluster, ProfileRef, SuggestedMapping};
        let r = ProfileRef { namespace: "fleet".into(), name: "a".into() };
        let id = IdentityLabel { key: "multicluster.x-k8s.io/inventory-member-id".into(), value: "m".into() };
        let status = ArgoCdInstanceStatus {
            linked_clusters: vec![LinkedCluster {
                argocd_cluster_url: "https://a".into(),
                argocd_cluster_name: None,
                mapping: None,
                cluster: KnownCluster {
                    id: "x".into(),
                    name: "A".into(),
                    cloud_provider: crate::crd::CloudProvider::Aws,
                    kind: Default::default(),
                },
                applications_count: 1,
                argocd_connection_state: None,
                also_deployed_by: Vec::new(),
                also_deployed_by_count: 0,
                details: DestinationDetails {
                    automatic: Some(AutomaticLink {
                        identity: id.clone(),
                        cluster_profile_ref: r.clone(),
                        note: String::new(),
                        duplicates: Vec::new(),
                    }),
                    ..Default::default()
                },
            }],
            unlinked_clusters: vec![unlinked(
                "https://b",
                DestinationDetails {
                    suggested_mapping: Some(SuggestedMapping {
                        identity: id,
                        cluster_profile_ref: Some(r),
                        profile_gives_cluster: false,
                        note: "the profile lacks x".into(),
                        duplicates: Vec::new(),
                    }),
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        let t = table(&Report::of_status(status));
        assert!(t.contains("(automatic: fleet/a)"), "{t}");
        assert!(
            t.contains("Suggested for https://b: ClusterProfile fleet/a, named by multicluster.x-k8s.io/inventory-member-id=m (the profile lacks x)"),
            "{t}"
        );
    }

    #[test]
    fn health_and_sync_columns_when_read() {
        let counts = StatusCounts {
            health: HealthCounts { healthy: 3, degraded: 1, ..Default::default() },
            sync: SyncCounts { synced: 2, out_of_sync: 2, ..Default::default() },
        };
        let status = ArgoCdInstanceStatus {
            unlinked_clusters: vec![
                unlinked(
                    "https://a",
                    DestinationDetails { applications_by_status: Some(counts), ..Default::default() },
                ),
                unlinked(
                    "https://b",
                    DestinationDetails {
                        applications_by_status: Some(StatusCounts::default()),
                        ..Default::default()
                    },
                ),
            ],
            ..Default::default()
        };
        let t = table(&Report::of_status(status));
        assert!(
            t.lines().next().is_some_and(|h| h.contains("IDENTITY  HEALTH") && h.ends_with("SYNC")),
            "{t}"
        );
        assert!(t.contains("3 Healthy, 1 Degraded  2 Synced, 2 OutOfSync"), "{t}");
    }
}
