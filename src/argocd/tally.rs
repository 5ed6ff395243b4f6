//! The application list, folded while it is decoded: per destination (server URL or cluster
//! name, as Argo CD sent it) the number of applications aimed at it. One application at a
//! time exists in memory, so what a check holds follows the number of distinct destinations,
//! never the number of applications or the size of the body.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

use super::types::{Application, Cluster};

/// Distinct destinations (servers plus names) kept per list. A real Argo CD has at most a few
/// thousand clusters; past this, applications aimed at further destinations are counted as
/// unresolved, so a hostile list cannot grow the tally without bound.
pub const MAX_DESTINATIONS: usize = 20_000;
/// Clusters accepted in one cluster list, for the same reason: more fails the check.
pub const MAX_CLUSTERS: usize = 20_000;
/// Bytes of text (URLs, names, states) kept from one list. Counts alone do not bound memory:
/// one entry's strings are as long as the body allows. 2 MiB holds 15 000 clusters with
/// 140-byte URLs; an instance at this budget in both lists keeps about 10 MiB between checks
/// and twice that while it is checked, which is what the chart's memory limit is sized from
/// (BENCHMARKS.md, "Worst case").
pub const MAX_KEPT_BYTES: usize = 2 * 1024 * 1024;
/// Examples of unresolved applications kept (for the log).
const EXAMPLES: usize = 5;

/// What attribution needs of the application list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppTally {
    /// Every application in the list.
    pub total: u64,
    /// Applications per `spec.destination.server` (trimmed, as sent).
    pub by_server: HashMap<String, u64>,
    /// Applications per `spec.destination.name` (trimmed), with the first one's `namespace/name`.
    pub by_name: HashMap<String, (u64, String)>,
    /// Applications with both or neither of server and name, or past [`MAX_DESTINATIONS`].
    pub unaddressed: u64,
    /// A few `namespace/name` of those.
    pub unaddressed_examples: Vec<String>,
    /// Whether any application names a destination at all.
    pub any_destination: bool,
    /// Bytes of the keys and examples kept (bounded by [`MAX_KEPT_BYTES`]).
    pub kept_bytes: usize,
}

impl AppTally {
    /// Adds one application.
    pub fn add(&mut self, app: &Application) {
        self.total += 1;
        let dest = app.destination();
        let trimmed =
            |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let server = dest.and_then(|d| trimmed(&d.server));
        let name = dest.and_then(|d| trimmed(&d.name));
        if server.is_some() || name.is_some() {
            self.any_destination = true;
        }
        let room = |t: &Self, bytes: usize| {
            t.by_server.len() + t.by_name.len() < MAX_DESTINATIONS && t.kept_bytes + bytes <= MAX_KEPT_BYTES
        };
        match (server, name) {
            (Some(server), None) => {
                if let Some(n) = self.by_server.get_mut(&server) {
                    *n += 1;
                } else if room(self, server.len()) {
                    self.kept_bytes += server.len();
                    self.by_server.insert(server, 1);
                } else {
                    self.add_unaddressed(app.key());
                }
            }
            (None, Some(name)) => {
                if let Some((n, _)) = self.by_name.get_mut(&name) {
                    *n += 1;
                    return;
                }
                let first = app.key();
                if room(self, name.len() + first.len()) {
                    self.kept_bytes += name.len() + first.len();
                    self.by_name.insert(name, (1, first));
                } else {
                    self.add_unaddressed(first);
                }
            }
            _ => self.add_unaddressed(app.key()),
        }
    }

    /// Counts an application whose destination cannot be told.
    fn add_unaddressed(&mut self, key: String) {
        self.unaddressed += 1;
        if self.unaddressed_examples.len() < EXAMPLES {
            // Examples are for a log line: a hostile name is cut short.
            self.unaddressed_examples.push(crate::text::cap(&key));
        }
    }

    pub fn from_apps<'a>(apps: impl IntoIterator<Item = &'a Application>) -> Self {
        let mut t = AppTally::default();
        for a in apps {
            t.add(a);
        }
        t
    }
}

/// `GET /api/v1/applications` (swagger `v1alpha1ApplicationList`), folded as it is read.
/// `items` is `null` for an empty projected list on older servers.
#[derive(Deserialize, Debug, Default)]
pub struct TalliedApplications {
    #[serde(default, deserialize_with = "tally_items")]
    pub items: Option<AppTally>,
}

fn tally_items<'de, D: Deserializer<'de>>(d: D) -> Result<Option<AppTally>, D::Error> {
    fold_list(d, "a list of applications or null", |tally: &mut AppTally, app: Application| {
        tally.add(&app);
        Ok(())
    })
}

/// A list that may be `null`, folded into `Acc` one element at a time by `add`, which may
/// refuse it; no element outlives its turn.
fn fold_list<'de, D, T, Acc>(
    d: D,
    expecting: &'static str,
    add: fn(&mut Acc, T) -> Result<(), String>,
) -> Result<Option<Acc>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    Acc: Default,
{
    struct List<T, Acc> {
        expecting: &'static str,
        add: fn(&mut Acc, T) -> Result<(), String>,
    }
    impl<'de, T: Deserialize<'de>, Acc: Default> Visitor<'de> for List<T, Acc> {
        type Value = Option<Acc>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut acc = Acc::default();
            while let Some(item) = seq.next_element::<T>()? {
                (self.add)(&mut acc, item).map_err(serde::de::Error::custom)?;
            }
            Ok(Some(acc))
        }
    }
    d.deserialize_option(List { expecting, add })
}

/// `GET /api/v1/clusters` (swagger `v1alpha1ClusterList`), at most [`MAX_CLUSTERS`] entries.
#[derive(Deserialize, Debug, Default)]
pub struct BoundedClusters {
    #[serde(default, deserialize_with = "bounded_clusters")]
    pub items: Option<Vec<Cluster>>,
}

fn bounded_clusters<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Cluster>>, D::Error> {
    let add = |(out, kept): &mut (Vec<Cluster>, usize), c: Cluster| {
        *kept += text_bytes(&c);
        if out.len() == MAX_CLUSTERS || *kept > MAX_KEPT_BYTES {
            return Err(format!(
                "the cluster list is larger than argomap accepts (at most {MAX_CLUSTERS} clusters and {} MiB of names and URLs)",
                MAX_KEPT_BYTES >> 20
            ));
        }
        out.push(c);
        Ok(())
    };
    Ok(fold_list(d, "a list of clusters or null", add)?.map(|(out, _)| out))
}

/// The bytes of text one cluster keeps.
fn text_bytes(c: &Cluster) -> usize {
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let state = |s: &Option<super::types::ConnectionState>| s.as_ref().map_or(0, |s| len(&s.status));
    len(&c.server)
        + len(&c.name)
        + state(&c.connection_state)
        + c.info.as_ref().map_or(0, |i| state(&i.connection_state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applications_fold_into_counts_per_destination() {
        let l: TalliedApplications = serde_json::from_str(
            r#"{"metadata":{},"items":[
                {"metadata":{"name":"a","namespace":"argocd"},"spec":{"destination":{"server":" https://x "}}},
                {"metadata":{"name":"b","namespace":"argocd"},"spec":{"destination":{"server":"https://x"}}},
                {"metadata":{"name":"c","namespace":"argocd"},"spec":{"destination":{"name":"prod"}}},
                {"metadata":{"name":"d","namespace":"argocd"},"spec":{"destination":{"server":"https://y","name":"y"}}},
                {"metadata":{"name":"e","namespace":"argocd"},"spec":{}}
            ]}"#,
        )
        .expect("decode");
        let t = l.items.expect("items");
        assert_eq!(t.total, 5);
        assert_eq!(t.by_server.get("https://x"), Some(&2));
        assert_eq!(t.by_name.get("prod"), Some(&(1, "argocd/c".to_string())));
        assert_eq!(t.unaddressed, 2);
        assert_eq!(t.unaddressed_examples, vec!["argocd/d", "argocd/e"]);
        assert!(t.any_destination);
        let empty: TalliedApplications = serde_json::from_str(r#"{"items":null}"#).expect("null");
        assert!(empty.items.is_none());
        let missing: TalliedApplications = serde_json::from_str(r#"{}"#).expect("missing");
        assert!(missing.items.is_none());
    }

    #[test]
    fn distinct_destinations_are_bounded() {
        let mut t = AppTally::default();
        let app = |server: String| Application {
            spec: Some(crate::argocd::types::AppSpec {
                destination: Some(crate::argocd::types::Destination { server: Some(server), name: None }),
            }),
            metadata: None,
        };
        for i in 0..MAX_DESTINATIONS + 10 {
            t.add(&app(format!("https://c{i}")));
        }
        t.add(&app("https://c0".into()));
        assert_eq!(t.by_server.len(), MAX_DESTINATIONS);
        assert_eq!(t.unaddressed, 10, "past the bound, counted as unresolved");
        assert_eq!(t.by_server["https://c0"], 2, "a known destination still counts");
        assert_eq!(t.total, MAX_DESTINATIONS as u64 + 11);
        // Long keys: the byte budget runs out first.
        let mut t = AppTally::default();
        let long = "y".repeat(MAX_KEPT_BYTES / 8);
        for i in 0..10 {
            t.add(&app(format!("https://{i}.{long}")));
        }
        assert_eq!(t.by_server.len(), 7, "seven keys of just over an eighth of the budget fit");
        assert_eq!(t.unaddressed, 3);
        assert!(t.kept_bytes <= MAX_KEPT_BYTES);
        assert!(t.unaddressed_examples.iter().all(|e| e.len() <= crate::text::MESSAGE_CAP));
    }

    #[test]
    fn a_cluster_list_past_the_bound_is_refused() {
        let items: Vec<String> =
            (0..=MAX_CLUSTERS).map(|i| format!(r#"{{"server":"https://c{i}"}}"#)).collect();
        let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
        let err = serde_json::from_str::<BoundedClusters>(&body).expect_err("too many");
        assert!(err.to_string().contains("at most 20000 clusters"), "{err}");
        // Few clusters, but with URLs long enough to hold more than the budget.
        let long = "x".repeat(MAX_KEPT_BYTES / 8);
        let items: Vec<String> = (0..9).map(|i| format!(r#"{{"server":"https://{i}.{long}"}}"#)).collect();
        let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
        assert!(serde_json::from_str::<BoundedClusters>(&body).is_err(), "9/8 of the budget in URLs");
        let ok: BoundedClusters = serde_json::from_str(r#"{"items":[{"server":"https://a"}]}"#).expect("one");
        assert_eq!(ok.items.map(|v| v.len()), Some(1));
    }
}
