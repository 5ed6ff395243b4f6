//! The application list, folded while it is decoded: per destination (server URL or cluster
//! name, as Argo CD sent it) the number of applications aimed at it. One application at a
//! time exists in memory, so what a check holds follows the number of distinct destinations,
//! never the number of applications or the size of the body.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, Visitor};

use super::decode::{Decoded, ItemSink, ListDecoder};

use super::types::{Application, Cluster, Health, Sync};

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
/// Longest connection message kept of a cluster.
pub const CONNECTION_MESSAGE_CAP: usize = 256;
/// Examples of unresolved applications kept (for the log).
const EXAMPLES: usize = 5;

/// Applications aimed at one destination, with their health and sync when Argo CD sent them
/// (`spec.applications.health`; without it every application counts as `Unknown`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    pub apps: u64,
    /// Per [`Health`] variant, in declaration order.
    pub health: [u64; 6],
    /// Per [`Sync`] variant, in declaration order.
    pub sync: [u64; 3],
}

impl Count {
    fn add(&mut self, health: Health, sync: Sync) {
        self.apps += 1;
        self.health[health as usize] += 1;
        self.sync[sync as usize] += 1;
    }

    /// Adds `other`'s applications.
    pub fn merge(&mut self, other: &Count) {
        self.apps += other.apps;
        self.health.iter_mut().zip(other.health).for_each(|(a, b)| *a += b);
        self.sync.iter_mut().zip(other.sync).for_each(|(a, b)| *a += b);
    }
}

/// The applications of one namespace (of the Argo CD's cluster), per destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceTally {
    pub namespace: String,
    /// Per `spec.destination.server` (trimmed, as sent).
    pub by_server: foldhash::HashMap<String, Count>,
    /// Per `spec.destination.name` (trimmed), with the first one's `namespace/name`.
    pub by_name: foldhash::HashMap<String, (Count, String)>,
}

/// What attribution needs of the application list. Kept per application namespace: an
/// argocd-agent principal keeps a managed agent's applications in a namespace named after the
/// agent, and routes them there whatever their destination says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppTally {
    /// Every application in the list.
    pub total: u64,
    /// Per application namespace, in the order first seen.
    pub namespaces: Vec<NamespaceTally>,
    /// Namespace → its index in `namespaces`.
    index: foldhash::HashMap<String, usize>,
    /// The namespace of the last application (lists come grouped by namespace).
    last: Option<usize>,
    /// Destinations kept over all namespaces (bounded by [`MAX_DESTINATIONS`]).
    destinations: usize,
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
        let st = app.status.as_ref();
        self.add_fields(AppFields {
            namespace: text(m.map(|m| &m.namespace)),
            name: text(m.map(|m| &m.name)),
            server: text(d.map(|d| &d.server)),
            destination_name: text(d.map(|d| &d.name)),
            health: Health::from_wire(text(st.and_then(|s| s.health.as_ref()).map(|h| &h.status))),
            sync: Sync::from_wire(text(st.and_then(|s| s.sync.as_ref()).map(|h| &h.status))),
        });
    }

    /// Applications aimed at `server` (as sent), over every namespace.
    pub fn server_count(&self, server: &str) -> Option<u64> {
        let counts: Vec<u64> =
            self.namespaces.iter().filter_map(|n| n.by_server.get(server)).map(|c| c.apps).collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// Applications aimed at cluster name `name`, over every namespace.
    pub fn name_count(&self, name: &str) -> Option<u64> {
        let counts: Vec<u64> =
            self.namespaces.iter().filter_map(|n| n.by_name.get(name)).map(|c| c.0.apps).collect();
        (!counts.is_empty()).then(|| counts.iter().sum())
    }

    /// Applications aimed at cluster name `name`, and the first one's `namespace/name` (the
    /// least over namespaces).
    pub fn name_first(&self, name: &str) -> Option<(u64, &str)> {
        let found: Vec<&(Count, String)> =
            self.namespaces.iter().filter_map(|n| n.by_name.get(name)).collect();
        let first = found.iter().map(|(_, f)| f.as_str()).min()?;
        Some((found.iter().map(|(c, _)| c.apps).sum(), first))
    }

    /// Every destination server named, once per namespace naming it.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().flat_map(|n| n.by_server.keys().map(String::as_str))
    }

    /// Every destination name named, once per namespace naming it.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().flat_map(|n| n.by_name.keys().map(String::as_str))
    }

    /// The tally of `namespace`, made when first seen (if there is room for it).
    fn namespace(&mut self, namespace: &str) -> Option<usize> {
        if let Some(i) = self.last.filter(|i| self.namespaces[*i].namespace == namespace) {
            return Some(i);
        }
        let i = match self.index.get(namespace) {
            Some(i) => *i,
            None => {
                if self.kept_bytes + namespace.len() > MAX_KEPT_BYTES || self.destinations >= MAX_DESTINATIONS
                {
                    return None;
                }
                self.kept_bytes += namespace.len();
                // A namespace counts against the destinations' bound too: a hostile list of
                // one application per namespace grows nothing past it.
                self.destinations += 1;
                self.namespaces
                    .push(NamespaceTally { namespace: namespace.to_owned(), ..Default::default() });
                self.index.insert(namespace.to_owned(), self.namespaces.len() - 1);
                self.namespaces.len() - 1
            }
        };
        self.last = Some(i);
        Some(i)
    }

    /// Adds one application from the fields attribution reads; allocates only for a
    /// destination or namespace not seen before (and for the few examples kept).
    pub(super) fn add_fields(&mut self, app: AppFields<'_>) {
        self.total += 1;
        let server = app.server.trim();
        let name = app.destination_name.trim();
        if !server.is_empty() || !name.is_empty() {
            self.any_destination = true;
        }
        let (health, sync) = (app.health, app.sync);
        if server.is_empty() == name.is_empty() {
            return self.add_unaddressed(&app);
        }
        let Some(ns) = self.namespace(app.namespace) else { return self.add_unaddressed(&app) };
        let room = |t: &Self, bytes: usize| {
            t.destinations < MAX_DESTINATIONS && t.kept_bytes + bytes <= MAX_KEPT_BYTES
        };
        if name.is_empty() {
            if let Some(n) = self.namespaces[ns].by_server.get_mut(server) {
                n.add(health, sync);
            } else if room(self, server.len()) {
                self.kept_bytes += server.len();
                self.destinations += 1;
                let mut c = Count::default();
                c.add(health, sync);
                self.namespaces[ns].by_server.insert(server.to_owned(), c);
            } else {
                self.add_unaddressed(&app);
            }
            return;
        }
        if let Some((n, _)) = self.namespaces[ns].by_name.get_mut(name) {
            n.add(health, sync);
            return;
        }
        let first = app.key();
        if room(self, name.len() + first.len()) {
            self.kept_bytes += name.len() + first.len();
            self.destinations += 1;
            let mut c = Count::default();
            c.add(health, sync);
            self.namespaces[ns].by_name.insert(name.to_owned(), (c, first));
        } else {
            self.add_unaddressed(&app);
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

/// The strings of one application that attribution reads (`""` when absent or null), and its
/// health and sync.
pub(super) struct AppFields<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub server: &'a str,
    pub destination_name: &'a str,
    pub health: Health,
    pub sync: Sync,
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
    #[serde(default, borrow)]
    status: Option<StatusRef<'a>>,
}

fn text<'t>(t: Option<&'t Text<'_>>) -> &'t str {
    t.map_or("", |t| &t.0)
}

impl AppRef<'_> {
    /// Hands the four strings attribution reads to `f` (`""` when absent or null).
    pub(super) fn with_fields<R>(&self, f: impl FnOnce(AppFields<'_>) -> R) -> R {
        let (m, d) = (self.metadata.as_ref(), self.spec.as_ref().and_then(|s| s.destination.as_ref()));
        let st = self.status.as_ref();
        f(AppFields {
            namespace: text(m.map(|m| &m.namespace)),
            name: text(m.map(|m| &m.name)),
            server: text(d.map(|d| &d.server)),
            destination_name: text(d.map(|d| &d.name)),
            health: Health::from_wire(text(st.and_then(|s| s.health.as_ref()).map(|h| &h.status))),
            sync: Sync::from_wire(text(st.and_then(|s| s.sync.as_ref()).map(|h| &h.status))),
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
struct StatusRef<'a> {
    #[serde(default, borrow)]
    health: Option<StatusFieldRef<'a>>,
    #[serde(default, borrow)]
    sync: Option<StatusFieldRef<'a>>,
}

#[derive(Deserialize, Default)]
struct StatusFieldRef<'a> {
    #[serde(default, borrow)]
    status: Text<'a>,
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
    fn add(&mut self, mut c: Cluster) -> Result<(), String> {
        // A connection message is Argo CD's free text (an error, an agent's state): kept short.
        for state in [c.connection_state.as_mut(), c.info.as_mut().and_then(|i| i.connection_state.as_mut())]
            .into_iter()
            .flatten()
        {
            state.message = state.message.take().map(|m| crate::text::printable(&m, CONNECTION_MESSAGE_CAP));
        }
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
    let state = |s: &Option<super::types::ConnectionState>| {
        s.as_ref().map_or(0, |s| len(&s.status) + len(&s.message))
    };
    len(&c.server)
        + len(&c.name)
        + c.labels.bytes()
        + c.annotations.bytes()
        + state(&c.connection_state)
        + c.info.as_ref().map_or(0, |i| state(&i.connection_state))
}

#[cfg(test)]
mod tests;
