//! The application list, folded while it is decoded: per destination (server URL or cluster
//! name, as Argo CD sent it) the number of applications aimed at it. One application at a
//! time exists in memory, so what a check holds follows the number of distinct destinations,
//! never the number of applications or the size of the body.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

use super::decode::{Decoded, ItemSink, ListDecoder};

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
    pub by_server: foldhash::HashMap<String, u64>,
    /// Applications per `spec.destination.name` (trimmed), with the first one's `namespace/name`.
    pub by_name: foldhash::HashMap<String, (u64, String)>,
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
        fn text(s: Option<&Option<String>>) -> &str {
            s.and_then(|s| s.as_deref()).unwrap_or("")
        }
        let m = app.metadata.as_ref();
        let d = app.destination();
        self.add_fields(AppFields {
            namespace: text(m.map(|m| &m.namespace)),
            name: text(m.map(|m| &m.name)),
            server: text(d.map(|d| &d.server)),
            destination_name: text(d.map(|d| &d.name)),
        });
    }

    /// Adds one application from the fields attribution reads; allocates only for a
    /// destination not seen before (and for the few examples kept).
    pub(super) fn add_fields(&mut self, app: AppFields<'_>) {
        self.total += 1;
        let server = app.server.trim();
        let name = app.destination_name.trim();
        if !server.is_empty() || !name.is_empty() {
            self.any_destination = true;
        }
        let room = |t: &Self, bytes: usize| {
            t.by_server.len() + t.by_name.len() < MAX_DESTINATIONS && t.kept_bytes + bytes <= MAX_KEPT_BYTES
        };
        match (server.is_empty(), name.is_empty()) {
            (false, true) => {
                if let Some(n) = self.by_server.get_mut(server) {
                    *n += 1;
                } else if room(self, server.len()) {
                    self.kept_bytes += server.len();
                    self.by_server.insert(server.to_owned(), 1);
                } else {
                    self.add_unaddressed(&app);
                }
            }
            (true, false) => {
                if let Some((n, _)) = self.by_name.get_mut(name) {
                    *n += 1;
                    return;
                }
                let first = app.key();
                if room(self, name.len() + first.len()) {
                    self.kept_bytes += name.len() + first.len();
                    self.by_name.insert(name.to_owned(), (1, first));
                } else {
                    self.add_unaddressed(&app);
                }
            }
            _ => self.add_unaddressed(&app),
        }
    }

    /// Counts an application whose destination cannot be told.
    fn add_unaddressed(&mut self, app: &AppFields<'_>) {
        self.unaddressed += 1;
        if self.unaddressed_examples.len() < EXAMPLES {
            // Examples are for a log line: a hostile name is cut short.
            self.unaddressed_examples.push(crate::text::cap(&app.key()));
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

/// The four strings of one application that attribution reads (`""` when absent or null).
pub(super) struct AppFields<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub server: &'a str,
    pub destination_name: &'a str,
}

impl AppFields<'_> {
    /// `namespace/name`, for log lines about a single application.
    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// `GET /api/v1/applications` (swagger `v1alpha1ApplicationList`), folded as it is read.
/// `items` is `null` for an empty projected list on older servers.
#[derive(Debug, Default)]
pub struct TalliedApplications {
    pub items: Option<AppTally>,
}

impl Decoded for TalliedApplications {
    type Decoder = ListDecoder<AppSink>;
}

/// Folds each application into the tally as soon as it is decoded.
#[derive(Default)]
pub struct AppSink(AppTally);

impl ItemSink for AppSink {
    type Item<'de> = AppRef<'de>;
    type Output = TalliedApplications;
    fn add(&mut self, app: AppRef<'_>) -> Result<(), String> {
        app.with_fields(|f| self.0.add_fields(f));
        Ok(())
    }
    fn finish(self, items_seen: bool) -> TalliedApplications {
        TalliedApplications { items: items_seen.then_some(self.0) }
    }
}

// One application as decoded from the body: its strings borrowed from the bytes received
// (copied only when they hold escapes), so that folding a list costs no allocation per
// application. The owned `types::Application` is for tests and fixtures.

#[derive(Deserialize, Default)]
pub struct AppRef<'a> {
    #[serde(default, borrow)]
    metadata: Option<MetaRef<'a>>,
    #[serde(default, borrow)]
    spec: Option<SpecRef<'a>>,
}

fn text<'t>(t: Option<&'t Text<'_>>) -> &'t str {
    t.map_or("", |t| &t.0)
}

impl AppRef<'_> {
    /// Hands the four strings attribution reads to `f` (`""` when absent or null).
    pub(super) fn with_fields<R>(&self, f: impl FnOnce(AppFields<'_>) -> R) -> R {
        let (m, d) = (self.metadata.as_ref(), self.spec.as_ref().and_then(|s| s.destination.as_ref()));
        f(AppFields {
            namespace: text(m.map(|m| &m.namespace)),
            name: text(m.map(|m| &m.name)),
            server: text(d.map(|d| &d.server)),
            destination_name: text(d.map(|d| &d.name)),
        })
    }
}

#[derive(Deserialize, Default)]
struct MetaRef<'a> {
    #[serde(default, borrow)]
    name: Text<'a>,
    #[serde(default, borrow)]
    namespace: Text<'a>,
}

#[derive(Deserialize, Default)]
struct SpecRef<'a> {
    #[serde(default, borrow)]
    destination: Option<DestinationRef<'a>>,
}

#[derive(Deserialize, Default)]
struct DestinationRef<'a> {
    #[serde(default, borrow)]
    server: Text<'a>,
    #[serde(default, borrow)]
    name: Text<'a>,
}

/// A string of the body, borrowed unless it holds escapes; `null` reads as `""` (as the
/// owned types' `None` does).
#[derive(Default)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Text::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Text::default())
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                d.deserialize_str(self)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_option(V)
    }
}

/// `GET /api/v1/clusters` (swagger `v1alpha1ClusterList`), at most [`MAX_CLUSTERS`] entries.
#[derive(Debug, Default)]
pub struct BoundedClusters {
    pub items: Option<Vec<Cluster>>,
}

impl Decoded for BoundedClusters {
    type Decoder = ListDecoder<ClusterSink>;
}

/// Keeps the clusters, within [`MAX_CLUSTERS`] and [`MAX_KEPT_BYTES`] of text.
#[derive(Default)]
pub struct ClusterSink {
    clusters: Vec<Cluster>,
    kept: usize,
}

impl ItemSink for ClusterSink {
    type Item<'de> = Cluster;
    type Output = BoundedClusters;
    fn add(&mut self, c: Cluster) -> Result<(), String> {
        self.kept += text_bytes(&c);
        if self.clusters.len() == MAX_CLUSTERS || self.kept > MAX_KEPT_BYTES {
            return Err(format!(
                "the cluster list is larger than argomap accepts (at most {MAX_CLUSTERS} clusters and {} MiB of names and URLs)",
                MAX_KEPT_BYTES >> 20
            ));
        }
        self.clusters.push(c);
        Ok(())
    }
    fn finish(self, items_seen: bool) -> BoundedClusters {
        BoundedClusters { items: items_seen.then_some(self.clusters) }
    }
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
    use crate::argocd::decode::decode_slice;

    #[test]
    fn applications_fold_into_counts_per_destination() {
        let l: TalliedApplications = decode_slice(
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
        let empty: TalliedApplications = decode_slice(r#"{"items":null}"#).expect("null");
        assert!(empty.items.is_none());
        let missing: TalliedApplications = decode_slice(r#"{}"#).expect("missing");
        assert!(missing.items.is_none());
    }

    #[test]
    fn the_decoder_reads_what_derived_types_read() {
        // Nulls everywhere Argo CD may send them, unknown fields at every level, escapes, a
        // string field on the second application absent where the first had it.
        let l: TalliedApplications = decode_slice(
            r#"{"metadata":{"resourceVersion":"7"},"kind":"x","items":[
                {"metadata":{"name":"a","namespace":"team-a","labels":{"k":"v"}},
                 "spec":{"project":"p","destination":{"server":"https://\u0078","namespace":"n"},"sources":[{"a":[1,2]}]},
                 "status":{"sync":{"status":"Synced"}}},
                {"metadata":{"name":"b"},"spec":{"destination":{"name":"prod","server":null}}},
                {"metadata":null,"spec":null},
                {"spec":{"destination":null}},
                {"metadata":{"name":"d","namespace":"ns"},"spec":{"destination":{"server":"https://x"}}},
                {}
            ]}"#,
        )
        .expect("decode");
        let t = l.items.expect("items");
        assert_eq!(t.total, 6);
        assert_eq!(t.by_server.get("https://x"), Some(&2), "an escape decodes");
        assert_eq!(t.by_name.get("prod"), Some(&(1, "/b".to_string())), "b's namespace is not a's");
        assert_eq!(t.unaddressed, 3);
        assert_eq!(t.unaddressed_examples, vec!["/", "/", "/"]);
    }

    #[test]
    fn the_decoder_agrees_with_the_derived_types() {
        let body = r#"{"items":[
            {"metadata":{"name":"a","namespace":"argocd"},"spec":{"destination":{"server":" https://a/ "}}},
            {"metadata":{"name":"b","namespace":"team"},"spec":{"destination":{"name":"prod"}}},
            {"metadata":{"name":"c","namespace":"team"},"spec":{"destination":{"name":"prod"}}},
            {"metadata":{"name":"d","namespace":"argocd"},"spec":{"destination":{"name":" ","server":""}}},
            {"metadata":{"name":"e"},"spec":{"destination":{"name":"x","server":"https://x"}}},
            {"metadata":{"namespace":"f"},"spec":{}}
        ]}"#;
        let derived: crate::argocd::types::ApplicationList = serde_json::from_str(body).expect("derived");
        let folded: TalliedApplications = decode_slice(body).expect("folded");
        assert_eq!(folded.items, Some(AppTally::from_apps(derived.items.as_deref().unwrap_or_default())));
    }

    #[test]
    fn the_decoder_refuses_what_is_no_application_list() {
        for bad in [
            r#"{"items":[null]}"#,
            r#"{"items":[{"metadata":{"name":7}}]}"#,
            r#"{"items":[{"spec":{"destination":{"server":["https://x"]}}}]}"#,
            r#"{"items":{"a":1}}"#,
            r#"{"items":[{"metadata":{"name":"a"}}"#,
            r#"[]"#,
        ] {
            assert!(decode_slice::<TalliedApplications>(bad).is_err(), "{bad}");
        }
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
        let err = decode_slice::<BoundedClusters>(&body).expect_err("too many");
        assert!(err.to_string().contains("at most 20000 clusters"), "{err}");
        // Few clusters, but with URLs long enough to hold more than the budget.
        let long = "x".repeat(MAX_KEPT_BYTES / 8);
        let items: Vec<String> = (0..9).map(|i| format!(r#"{{"server":"https://{i}.{long}"}}"#)).collect();
        let body = format!(r#"{{"items":[{}]}}"#, items.join(","));
        assert!(decode_slice::<BoundedClusters>(&body).is_err(), "9/8 of the budget in URLs");
        let ok: BoundedClusters = decode_slice(r#"{"items":[{"server":"https://a"}]}"#).expect("one");
        assert_eq!(ok.items.map(|v| v.len()), Some(1));
    }
}
