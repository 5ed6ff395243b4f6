//! What a token lets argomap see of Argo CD: whether the cluster list is whole
//! (`ClustersVisible`) and the application list can be trusted (`ApplicationsVisible`), read
//! from what was listed and from `can-i`. `status` puts these conditions in the instance
//! status; `evaluate` asks [`clusters_hidden`] before calling a mapping orphaned.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{APPLICATIONS_VISIBLE, CLUSTERS_VISIBLE, Conditions, Status, reason};
use super::destinations::Destinations;

/// Destinations named in one condition message, at most.
const NAMED_DESTINATIONS: usize = 5;

/// Whether Argo CD keeps (part of) its cluster list from the token: exactly when
/// ClustersVisible is False. A mapping is then never called orphaned on the list's word.
pub fn clusters_hidden(d: &Destinations, can_get_clusters: Option<bool>) -> bool {
    let gap = d.by_url.values().any(|x| !x.listed) || d.unresolved > 0;
    match can_get_clusters {
        Some(false) => d.cluster_list_empty || gap,
        None => d.cluster_list_empty && d.apps_name_destinations,
        Some(true) => false,
    }
}

/// Whether the cluster list shows every destination. Argo CD drops the clusters a token may
/// not get and still answers 200, so an empty list, or applications aimed at clusters the list
/// lacks, are read with `can-i clusters get *`: a "no" means the list is partial or hidden.
pub(super) fn clusters_visible(
    c: &Conditions<'_>,
    d: &Destinations,
    can_get_clusters: Option<bool>,
) -> Condition {
    let unlisted: Vec<&str> = d.by_url.values().filter(|x| !x.listed).map(|x| x.url.as_str()).collect();
    let named = |urls: &[&str]| {
        let shown: Vec<&str> = urls.iter().take(NAMED_DESTINATIONS).copied().collect();
        let more = urls.len().saturating_sub(NAMED_DESTINATIONS);
        if more > 0 { format!("{} and {more} more", shown.join(", ")) } else { shown.join(", ") }
    };
    let gap = !unlisted.is_empty() || d.unresolved > 0;
    let (status, reason, message) = match can_get_clusters {
        Some(false) if d.cluster_list_empty => (
            Status::False,
            reason::MISSING_CLUSTERS_GET,
            if d.apps_name_destinations {
                "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i); destinations come from applications only".to_string()
            } else {
                "Argo CD lists no clusters to this token, which lacks `clusters, get` (confirmed by can-i)".to_string()
            },
        ),
        Some(false) if gap => {
            let mut parts = Vec::new();
            if !unlisted.is_empty() {
                parts.push(format!(
                    "{} destination(s) of applications are missing from it: {}",
                    unlisted.len(),
                    named(&unlisted)
                ));
            }
            if d.unresolved > 0 {
                parts.push(format!(
                    "{} application(s) could not be attributed (unresolvedApplications)",
                    d.unresolved
                ));
            }
            (
                Status::False,
                reason::MISSING_CLUSTERS_GET,
                format!(
                    "the token may get only some clusters (can-i clusters get * says no), so Argo CD's cluster list is partial: {}",
                    parts.join("; ")
                ),
            )
        }
        Some(true) if d.cluster_list_empty && d.apps_name_destinations => (
            Status::True,
            reason::NO_CLUSTERS_REGISTERED,
            "Argo CD lists no clusters although applications name destinations".to_string(),
        ),
        None if d.cluster_list_empty && d.apps_name_destinations => (
            Status::False,
            reason::MISSING_CLUSTERS_GET,
            "Argo CD lists no clusters although applications name destinations: the token probably lacks `clusters, get` (unconfirmed: can-i could not be asked); destinations come from applications only".to_string(),
        ),
        _ => (Status::True, reason::CLUSTERS_LISTED, String::new()),
    };
    c.make(CLUSTERS_VISIBLE, status, reason, message)
}

/// Whether the application list can be trusted: an empty list is read with
/// `can-i applications get *`, and a "no" means the counts are not Argo CD's.
pub(super) fn applications_visible(
    c: &Conditions<'_>,
    d: &Destinations,
    can_get_applications: Option<bool>,
) -> Condition {
    let (status, reason, message) = if can_get_applications == Some(false) && d.applications == 0 {
        (
            Status::False,
            reason::MISSING_APPLICATIONS_GET,
            "Argo CD lists no applications to this token, which lacks `applications, get` (confirmed by can-i): application counts are unknown".to_string(),
        )
    } else {
        (Status::True, reason::APPLICATIONS_LISTED, String::new())
    };
    c.make(APPLICATIONS_VISIBLE, status, reason, message)
}
