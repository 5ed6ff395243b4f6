//! Kubernetes Events on transitions only: what changed between the status an object had and
//! the one argomap writes. Pure; the controller publishes the result (reporter `argomap`).

use std::collections::{BTreeMap, BTreeSet};

use super::stream::APPLICATION_STREAM;
use crate::crd::{
    ArgoCdInstanceStatus, ClusterMappingStatus, ConnectionState, DanglingDestination, DestinationKind,
    MappingState, Reason,
};

/// At most this many destinations are named in one `UnlinkedClusterDetected` event.
pub const MAX_UNLINKED_NAMED: usize = 10;

/// At most this many destinations are named in one `DanglingDestination` event.
pub const MAX_DANGLING_NAMED: usize = 10;

/// Kubernetes' two event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One event. kube's recorder folds events with the same object, reason and action into a
/// series that keeps the first note, so a check emits at most one event per reason, and
/// `ConnectionFailed` carries the failure reason as its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub type_: EventType,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
}

fn normal(reason: &'static str, note: String) -> Transition {
    Transition { type_: EventType::Normal, reason, action: "Check", note }
}

fn warning(reason: &'static str, note: String) -> Transition {
    Transition { type_: EventType::Warning, reason, action: "Check", note }
}

/// Events about an ArgoCdInstance: connection transitions, destinations newly unlinked and
/// destinations newly dangling.
pub fn instance(prev: Option<&ArgoCdInstanceStatus>, next: &ArgoCdInstanceStatus) -> Vec<Transition> {
    let mut out = Vec::new();
    let before = prev.and_then(|p| p.connection.as_ref());
    if let Some(now) = &next.connection {
        let was = before.map(|c| (c.status, c.reason));
        match now.status {
            ConnectionState::Connected if was.map(|w| w.0) != Some(ConnectionState::Connected) => {
                let version = now.argocd_version.as_deref().unwrap_or("unknown version");
                out.push(normal("Connected", format!("connected to Argo CD {version}")));
            }
            ConnectionState::Error
                if now.reason != Reason::Suspended && was != Some((now.status, now.reason)) =>
            {
                let mut t = warning("ConnectionFailed", format!("{}: {}", now.reason, now.message));
                t.action = now.reason.as_str();
                out.push(t);
            }
            _ => {}
        }
    }
    let known: BTreeSet<&str> = prev
        .map(|p| p.unlinked_clusters.iter().map(|u| u.argocd_cluster_url.as_str()).collect())
        .unwrap_or_default();
    let fresh: Vec<_> =
        next.unlinked_clusters.iter().filter(|u| !known.contains(u.argocd_cluster_url.as_str())).collect();
    if !fresh.is_empty() {
        let mut named: Vec<String> = fresh
            .iter()
            .take(MAX_UNLINKED_NAMED)
            .map(|u| format!("{} ({} applications)", u.argocd_cluster_url, u.applications_count))
            .collect();
        if fresh.len() > MAX_UNLINKED_NAMED {
            named.push(format!("and {} more; see status.unlinkedClusters", fresh.len() - MAX_UNLINKED_NAMED));
        }
        out.push(warning(
            "UnlinkedClusterDetected",
            format!("destinations no ClusterMapping maps: {}", named.join(", ")),
        ));
    }
    out.extend(dangling(prev, next));
    out.extend(duplicate_profiles(prev, next));
    out.extend(stream(prev, next));
    out
}

/// Destinations whose identity newly names several ClusterProfiles (the Cluster Inventory API's
/// rule: the oldest wins, the others are warned; a tie of the oldest links none).
fn duplicate_profiles(
    prev: Option<&ArgoCdInstanceStatus>,
    next: &ArgoCdInstanceStatus,
) -> Option<Transition> {
    fn named(s: &ArgoCdInstanceStatus) -> BTreeMap<&str, (&str, &[String])> {
        let linked = s.linked_clusters.iter().filter_map(|l| {
            let a = l.details.automatic.as_ref()?;
            Some((l.argocd_cluster_url.as_str(), (a.identity.value.as_str(), a.duplicates.as_slice())))
        });
        let suggested = s.unlinked_clusters.iter().filter_map(|u| {
            let m = u.details.suggested_mapping.as_ref()?;
            Some((u.argocd_cluster_url.as_str(), (m.identity.value.as_str(), m.duplicates.as_slice())))
        });
        linked.chain(suggested).filter(|(_, (_, d))| !d.is_empty()).collect()
    }
    let before = prev.map(named).unwrap_or_default();
    let fresh: Vec<String> = named(next)
        .into_iter()
        .filter(|(url, now)| before.get(url) != Some(now))
        .map(|(url, (identity, duplicates))| format!("{url} ({identity}: {})", duplicates.join(", ")))
        .collect();
    if fresh.is_empty() {
        return None;
    }
    let mut listed: Vec<String> = fresh.iter().take(MAX_DANGLING_NAMED).cloned().collect();
    if fresh.len() > MAX_DANGLING_NAMED {
        listed.push(format!("and {} more", fresh.len() - MAX_DANGLING_NAMED));
    }
    Some(warning(
        "DuplicateClusterProfiles",
        format!(
            "one identity names several ClusterProfiles; the oldest is used, a tie of the oldest links none: {}",
            listed.join("; ")
        ),
    ))
}

/// Destinations that entered `status.danglingDestinations` with this status (a destination is
/// its text and kind: a server URL and a cluster name that read alike are two). One that
/// stays dangling is no news; one that is resolved and later dangles again is news again.
fn dangling(prev: Option<&ArgoCdInstanceStatus>, next: &ArgoCdInstanceStatus) -> Option<Transition> {
    fn key(d: &DanglingDestination) -> (&str, bool) {
        (d.destination.as_str(), d.kind == DestinationKind::Name)
    }
    let known: BTreeSet<(&str, bool)> =
        prev.map(|p| p.dangling_destinations.iter().map(key).collect()).unwrap_or_default();
    let fresh: Vec<&DanglingDestination> =
        next.dangling_destinations.iter().filter(|d| !known.contains(&key(d))).collect();
    if fresh.is_empty() {
        return None;
    }
    let mut named: Vec<String> = fresh.iter().take(MAX_DANGLING_NAMED).map(|d| describe(d)).collect();
    if fresh.len() > MAX_DANGLING_NAMED {
        named.push(format!("and {} more; see status.danglingDestinations", fresh.len() - MAX_DANGLING_NAMED));
    }
    Some(warning(
        "DanglingDestination",
        format!(
            "applications aim at destinations Argo CD cannot resolve, so Argo CD's own operations on them (sync windows, deletions) fail: {}",
            named.join(", ")
        ),
    ))
}

/// One dangling destination as an event names it: what it is, why Argo CD cannot resolve it,
/// and how many applications aim at it.
fn describe(d: &DanglingDestination) -> String {
    let (kind, why) = match (d.kind, d.registered) {
        (DestinationKind::Server, _) => ("server", "no cluster registered"),
        (DestinationKind::Name, false) => ("cluster name", "no cluster of that name"),
        (DestinationKind::Name, true) => ("cluster name", "several clusters of that name"),
    };
    format!("{kind} {} ({why}, {} applications)", d.destination, d.applications_count)
}

/// Watch mode's news: the application stream opened (at first, or again after polling took
/// over), or polling took over because the stream cannot be used. A routine reconnect is no
/// news (the reconnect metric counts those), so a flapping proxy does not flood the events.
fn stream(prev: Option<&ArgoCdInstanceStatus>, next: &ArgoCdInstanceStatus) -> Option<Transition> {
    let reason = |s: &ArgoCdInstanceStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == APPLICATION_STREAM)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    let (now, message) = reason(next)?;
    let was = prev.and_then(reason).map(|(r, _)| r);
    if was.as_deref() == Some(now.as_str()) {
        return None;
    }
    match now.as_str() {
        "Streaming" if was.as_deref() != Some("Reconnecting") => {
            Some(normal("ApplicationStreamOpened", message))
        }
        "StreamUnavailable" => Some(warning("ApplicationStreamUnavailable", message)),
        "TooManyApplications" => Some(warning("TooManyApplicationsToWatch", message)),
        "WatchBudgetExceeded" => Some(warning("WatchBudgetExceeded", message)),
        _ => None,
    }
}

/// The event of a ClusterMapping whose state changed to Linked, Orphaned or Conflict.
pub fn mapping(prev: Option<&ClusterMappingStatus>, next: &ClusterMappingStatus) -> Option<Transition> {
    let state = next.state?;
    if prev.and_then(|p| p.state) == Some(state) {
        return None;
    }
    let note = next.conditions.first().map(|c| c.message.clone()).unwrap_or_default();
    match state {
        MappingState::Linked => Some(normal("MappingLinked", note)),
        MappingState::Orphaned => Some(warning("MappingOrphaned", note)),
        MappingState::Conflict => Some(warning("MappingConflict", note)),
        MappingState::Unresolved => Some(warning("MappingUnresolved", note)),
        MappingState::InstanceNotFound | MappingState::Pending | MappingState::Unverified => None,
    }
}

/// The credentials (Secret content or TLS material) of a connected instance changed.
pub fn credentials_changed() -> Transition {
    normal("CredentialsChanged", "the credentials or TLS settings changed; checking with the new ones".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{ConnectionStatus, UnlinkedCluster};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn status(state: ConnectionState, reason: Reason, unlinked: &[&str]) -> ArgoCdInstanceStatus {
        ArgoCdInstanceStatus {
            connection: Some(ConnectionStatus {
                status: state,
                reason,
                message: "m".into(),
                last_checked_at: None,
                last_successful_check_at: None,
                argocd_version: Some("v3.5.1".into()),
                credentials_expire_at: None,
            }),
            unlinked_clusters: unlinked
                .iter()
                .map(|u| UnlinkedCluster {
                    argocd_cluster_url: u.to_string(),
                    argocd_cluster_name: None,
                    applications_count: 1,
                    argocd_connection_state: None,
                    details: Default::default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn reasons(t: &[Transition]) -> Vec<&str> {
        t.iter().map(|t| t.reason).collect()
    }

    #[test]
    fn connection_transitions_only() {
        let ok = status(ConnectionState::Connected, Reason::Connected, &[]);
        let auth = status(ConnectionState::Error, Reason::AuthenticationFailed, &[]);
        let timeout = status(ConnectionState::Error, Reason::Timeout, &[]);
        assert_eq!(reasons(&instance(None, &ok)), vec!["Connected"]);
        assert!(instance(Some(&ok), &ok).is_empty(), "no event for an unchanged state");
        assert_eq!(reasons(&instance(Some(&ok), &auth)), vec!["ConnectionFailed"]);
        assert!(instance(Some(&auth), &auth).is_empty());
        assert_eq!(
            reasons(&instance(Some(&auth), &timeout)),
            vec!["ConnectionFailed"],
            "a new reason is news"
        );
        assert_eq!(reasons(&instance(Some(&auth), &ok)), vec!["Connected"]);
        let suspended = status(ConnectionState::Error, Reason::Suspended, &[]);
        assert!(instance(Some(&ok), &suspended).is_empty());
        let t = &instance(Some(&ok), &auth)[0];
        assert_eq!((t.note.as_str(), t.action), ("AuthenticationFailed: m", "AuthenticationFailed"));
    }

    #[test]
    fn new_unlinked_destinations_only_and_capped() {
        let ok = |u: &[&str]| status(ConnectionState::Connected, Reason::Connected, u);
        let t = instance(Some(&ok(&["https://a"])), &ok(&["https://a", "https://b", "https://c"]));
        assert_eq!(reasons(&t), vec!["UnlinkedClusterDetected"]);
        assert_eq!(
            t[0].note,
            "destinations no ClusterMapping maps: https://b (1 applications), https://c (1 applications)"
        );
        assert!(instance(Some(&ok(&["https://a"])), &ok(&["https://a"])).is_empty());
        let many: Vec<String> = (0..25).map(|i| format!("https://c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let t = instance(Some(&ok(&[])), &ok(&many));
        assert_eq!(t.len(), 1);
        assert!(t[0].note.ends_with("and 15 more; see status.unlinkedClusters"), "{}", t[0].note);
    }

    #[test]
    fn stream_openings_and_fallbacks_only() {
        use crate::model::stream::{StreamState, stream_condition};
        let at = |state: StreamState| {
            let mut s = status(ConnectionState::Connected, Reason::Connected, &[]);
            s.conditions = vec![stream_condition(&[], Some(1), jiff::Timestamp::UNIX_EPOCH, &state, 10)];
            s
        };
        let poll = status(ConnectionState::Connected, Reason::Connected, &[]);
        let connecting = at(StreamState::Connecting);
        let streaming = at(StreamState::Streaming);
        let reconnecting = at(StreamState::Reconnecting("the stream ended".into()));
        let unavailable = at(StreamState::Unavailable("HTTP 404".into()));
        let full = at(StreamState::TooManyApplications("too many".into()));
        let one = |prev: Option<&ArgoCdInstanceStatus>, next: &ArgoCdInstanceStatus| {
            instance(prev, next).into_iter().map(|t| (t.reason, t.type_)).collect::<Vec<_>>()
        };
        assert!(one(Some(&poll), &connecting).is_empty());
        assert_eq!(one(Some(&connecting), &streaming), vec![("ApplicationStreamOpened", EventType::Normal)]);
        assert!(one(Some(&streaming), &streaming).is_empty(), "steady");
        assert!(one(Some(&streaming), &reconnecting).is_empty(), "a routine reconnect is no news");
        assert!(one(Some(&reconnecting), &streaming).is_empty());
        assert_eq!(
            one(Some(&reconnecting), &unavailable),
            vec![("ApplicationStreamUnavailable", EventType::Warning)]
        );
        assert_eq!(one(Some(&unavailable), &streaming), vec![("ApplicationStreamOpened", EventType::Normal)]);
        assert_eq!(one(Some(&streaming), &full), vec![("TooManyApplicationsToWatch", EventType::Warning)]);
        let over = at(StreamState::OverBudget("no room".into()));
        assert_eq!(one(Some(&streaming), &over), vec![("WatchBudgetExceeded", EventType::Warning)]);
        assert_eq!(one(Some(&over), &streaming), vec![("ApplicationStreamOpened", EventType::Normal)]);
        assert!(one(Some(&streaming), &poll).is_empty(), "back to Poll by spec");
        let note = &instance(Some(&streaming), &unavailable)[0].note;
        assert!(note.contains("HTTP 404"), "{note}");
    }

    fn dangling(entries: &[(&str, DestinationKind, bool)]) -> ArgoCdInstanceStatus {
        let mut s = status(ConnectionState::Connected, Reason::Connected, &[]);
        s.dangling_destinations = entries
            .iter()
            .map(|(d, kind, registered)| DanglingDestination {
                destination: d.to_string(),
                kind: *kind,
                registered: *registered,
                applications_count: 2,
            })
            .collect();
        s
    }

    /// The `DanglingDestination` events of one transition, as (type, note).
    fn dangling_events(
        prev: Option<&ArgoCdInstanceStatus>,
        next: &ArgoCdInstanceStatus,
    ) -> Vec<(EventType, String)> {
        instance(prev, next)
            .into_iter()
            .filter(|t| t.reason == "DanglingDestination")
            .map(|t| (t.type_, t.note))
            .collect()
    }

    #[test]
    fn dangling_destinations_are_news_at_first_sight_and_again_after_being_resolved() {
        use DestinationKind::{Name, Server};
        let none = dangling(&[]);
        let one = dangling(&[("https://gone.example.com", Server, false)]);
        let two = dangling(&[("https://gone.example.com", Server, false), ("prod", Name, true)]);
        let first = dangling_events(Some(&none), &one);
        assert_eq!(first.len(), 1, "first sight: {first:?}");
        assert_eq!(first[0].0, EventType::Warning);
        assert_eq!(
            first[0].1,
            "applications aim at destinations Argo CD cannot resolve, so Argo CD's own operations on \
             them (sync windows, deletions) fail: server https://gone.example.com (no cluster \
             registered, 2 applications)"
        );
        assert_eq!(dangling_events(None, &one).len(), 1, "the first status of an instance");
        assert!(dangling_events(Some(&one), &one).is_empty(), "still dangling: no news");
        let added = dangling_events(Some(&one), &two);
        assert_eq!(added.len(), 1, "{added:?}");
        assert!(
            added[0].1.ends_with(": cluster name prod (several clusters of that name, 2 applications)"),
            "only the new one is named: {}",
            added[0].1
        );
        assert!(dangling_events(Some(&two), &one).is_empty(), "one resolved: no news");
        assert!(dangling_events(Some(&one), &none).is_empty(), "all resolved: no news");
        assert_eq!(dangling_events(Some(&none), &one).len(), 1, "dangling again: news again");
        assert!(dangling_events(Some(&none), &none).is_empty());
        // A name and a server that read alike are two destinations.
        let as_name = dangling(&[("https://gone.example.com", Name, false)]);
        let t = dangling_events(Some(&one), &as_name);
        assert_eq!(t.len(), 1);
        assert!(
            t[0].1.contains("cluster name https://gone.example.com (no cluster of that name"),
            "{}",
            t[0].1
        );
        // A failed check keeps the previous lists, so nothing is news.
        let mut failed = one.clone();
        failed.connection = status(ConnectionState::Error, Reason::Timeout, &[]).connection;
        assert!(dangling_events(Some(&one), &failed).is_empty());
    }

    #[test]
    fn many_new_dangling_destinations_are_one_capped_event() {
        let many: Vec<String> = (0..25).map(|i| format!("https://d{i:02}.example.com")).collect();
        let entries: Vec<(&str, DestinationKind, bool)> =
            many.iter().map(|d| (d.as_str(), DestinationKind::Server, false)).collect();
        let t = dangling_events(Some(&dangling(&entries[..3])), &dangling(&entries));
        assert_eq!(t.len(), 1);
        let note = &t[0].1;
        assert!(!note.contains("d02.example.com") && note.contains("d03.example.com"), "{note}");
        assert_eq!(note.matches(" applications)").count(), MAX_DANGLING_NAMED, "{note}");
        assert!(note.ends_with(", and 12 more; see status.danglingDestinations"), "{note}");
    }

    fn mstatus(state: MappingState) -> ClusterMappingStatus {
        ClusterMappingStatus {
            state: Some(state),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: state.as_str().into(),
                message: "why".into(),
                observed_generation: None,
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn mapping_state_changes() {
        let linked = mstatus(MappingState::Linked);
        let orphaned = mstatus(MappingState::Orphaned);
        let conflict = mstatus(MappingState::Conflict);
        assert_eq!(mapping(None, &linked).map(|t| t.reason), Some("MappingLinked"));
        assert_eq!(mapping(Some(&linked), &linked), None);
        assert_eq!(mapping(Some(&linked), &orphaned).map(|t| t.reason), Some("MappingOrphaned"));
        assert_eq!(
            mapping(Some(&linked), &conflict).map(|t| (t.reason, t.type_)),
            Some(("MappingConflict", EventType::Warning))
        );
        assert_eq!(mapping(None, &mstatus(MappingState::Pending)), None);
    }

    #[test]
    fn duplicate_profiles_are_warned_when_first_named_and_when_they_change() {
        use crate::crd::{AutomaticLink, DestinationDetails, IdentityLabel, ProfileRef, SuggestedMapping};
        let with = |duplicates: &[&str]| {
            let mut s = status(ConnectionState::Connected, Reason::Connected, &["https://u"]);
            let identity =
                IdentityLabel { key: "multicluster.x-k8s.io/inventory-member-id".into(), value: "m".into() };
            let dups: Vec<String> = duplicates.iter().map(|d| d.to_string()).collect();
            s.unlinked_clusters[0].details = DestinationDetails {
                suggested_mapping: Some(SuggestedMapping {
                    identity: identity.clone(),
                    cluster_profile_ref: None,
                    profile_gives_cluster: false,
                    note: String::new(),
                    duplicates: dups.clone(),
                }),
                ..Default::default()
            };
            let mut linked = crate::fixtures::linked("https://l");
            linked.details.automatic = Some(AutomaticLink {
                identity,
                cluster_profile_ref: ProfileRef { namespace: "a".into(), name: "x".into() },
                note: String::new(),
                duplicates: dups,
            });
            s.linked_clusters = vec![linked];
            s
        };
        let reasons = |prev: &ArgoCdInstanceStatus, next: &ArgoCdInstanceStatus| {
            instance(Some(prev), next)
                .into_iter()
                .filter(|t| t.reason == "DuplicateClusterProfiles")
                .collect::<Vec<_>>()
        };
        let none = with(&[]);
        let two = with(&["b/x", "c/x"]);
        let t = reasons(&none, &two);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].type_, EventType::Warning);
        assert!(
            t[0].note.contains("https://l (m: b/x, c/x)") && t[0].note.contains("https://u (m: b/x, c/x)"),
            "{}",
            t[0].note
        );
        assert!(reasons(&two, &two).is_empty(), "steady");
        assert_eq!(reasons(&two, &with(&["b/x"])).len(), 1, "changed");
        assert!(reasons(&two, &none).is_empty(), "resolved is no warning");
    }
}
