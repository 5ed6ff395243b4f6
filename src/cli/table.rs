//! The destinations table `argomap check` prints.

use super::check::Report;
use crate::crd::{ConnectionState, MappingState};
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
    let mut rows = vec![
        ["DESTINATION", "NAME", "APPS", "STATE", "MAPPING", "CLUSTER", "ARGOCD-STATE"].map(String::from),
    ];
    for l in &s.linked_clusters {
        rows.push([
            l.argocd_cluster_url.clone(),
            l.argocd_cluster_name.clone().unwrap_or_default(),
            l.applications_count.to_string(),
            "linked".into(),
            l.mapping.clone().unwrap_or_else(|| "(agent cluster)".into()),
            l.cluster.name.clone(),
            l.argocd_connection_state.clone().unwrap_or_default(),
        ]);
    }
    for u in &s.unlinked_clusters {
        rows.push([
            u.argocd_cluster_url.clone(),
            u.argocd_cluster_name.clone().unwrap_or_default(),
            u.applications_count.to_string(),
            "unlinked".into(),
            String::new(),
            String::new(),
            u.argocd_connection_state.clone().unwrap_or_default(),
        ]);
    }
    if rows.len() > 1 {
        let widths: Vec<usize> =
            (0..7).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
    }
    for (name, m) in &report.cluster_mappings {
        if let Some(state) = m.state.filter(|s| *s != MappingState::Linked) {
            let why = m.conditions.first().map(|c| c.message.as_str()).unwrap_or("");
            out.push_str(&format!("ClusterMapping {name}: {} ({why})\n", state.as_str()));
        }
    }
    if let Some(sum) = &s.summary {
        out.push_str(&format!(
            "{} linked, {} unlinked, {} orphaned mappings, {} applications ({} unresolved)\n",
            sum.linked_clusters,
            sum.unlinked_clusters,
            sum.orphaned_mappings,
            sum.applications,
            sum.unresolved_applications
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
