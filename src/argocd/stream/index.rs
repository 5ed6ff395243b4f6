//! What a watch keeps of Argo CD's applications: per application, its destination (the
//! index), and the changes the stream spoke of while a relist was in flight. Both are bounded
//! by applications and bytes, never by events, and charged to the watch budget.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::argocd::budget::{Charge, ENTRY_COST, OverBudget, WatchBudget};
use crate::argocd::decode::{Decoded, ItemSink, ListDecoder};
use crate::argocd::tally::{AppFields, AppRef, AppTally};
use crate::argocd::types::{Health, Sync};

/// Applications one index keeps. Past it the watch gives up and the instance is polled: a list
/// folds any number of applications in constant memory, an index cannot.
pub const MAX_INDEXED_APPS: usize = 100_000;
/// Bytes of names and destinations one index keeps (about 160 bytes an application at the cap).
pub const MAX_INDEX_BYTES: usize = 16 * 1024 * 1024;
/// One application's destination, trimmed as the tally reads it, and its health and sync.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    server: Box<str>,
    name: Box<str>,
    health: Health,
    sync: Sync,
}

impl Entry {
    fn of(f: &AppFields<'_>) -> Self {
        Entry {
            server: f.server.trim().into(),
            name: f.destination_name.trim().into(),
            health: f.health,
            sync: f.sync,
        }
    }
}

/// Application (`namespace/name`) → destination. Ordered, so a tally built from it is the
/// same whatever order the events came in. Once charged to the watch budget, it charges
/// every growth there.
#[derive(Clone, Debug, Default)]
pub struct AppIndex {
    apps: BTreeMap<Box<str>, Entry>,
    pub(super) bytes: usize,
    charge: Charge,
}

impl PartialEq for AppIndex {
    fn eq(&self, other: &Self) -> bool {
        self.apps == other.apps
    }
}

impl Eq for AppIndex {}

/// A watch is at its bound: its own, or the process-wide budget of every watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexFull {
    #[error(
        "Argo CD has more applications than a watch keeps (at most {MAX_INDEXED_APPS} applications and {} MiB of names)",
        MAX_INDEX_BYTES >> 20
    )]
    Applications,
    #[error("{0}")]
    Budget(OverBudget),
}

/// Heap an index (or changes) of `len` entries and `bytes` of text is charged.
fn cost(bytes: usize, len: usize) -> usize {
    bytes + len * ENTRY_COST
}

impl AppIndex {
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Charges this index to `budget` from now on (a list is built in a check slot, then
    /// charged whole).
    pub fn charge_to(&mut self, budget: &Arc<WatchBudget>) -> Result<(), IndexFull> {
        let mut charge = Charge::new(budget);
        charge.resize(cost(self.bytes, self.apps.len())).map_err(IndexFull::Budget)?;
        self.charge = charge;
        Ok(())
    }

    /// Takes over `old`'s charge (this index replaces it), charging only the difference.
    pub fn replace_charge_of(&mut self, old: &mut AppIndex) -> Result<(), IndexFull> {
        self.charge.take_over(&mut old.charge);
        self.charge.resize(cost(self.bytes, self.apps.len())).map_err(IndexFull::Budget)
    }

    /// Makes the index `bytes` of text over `len` entries, if its bounds and the budget allow.
    fn grow_to(&mut self, bytes: usize, len: usize) -> Result<(), IndexFull> {
        if bytes > MAX_INDEX_BYTES || len > MAX_INDEXED_APPS {
            return Err(IndexFull::Applications);
        }
        self.charge.resize(cost(bytes, len)).map_err(IndexFull::Budget)?;
        self.bytes = bytes;
        Ok(())
    }

    /// Sets one application's destination; whether anything changed.
    pub(super) fn upsert(&mut self, f: &AppFields<'_>) -> Result<bool, IndexFull> {
        let key = format!("{}/{}", f.namespace, f.name);
        self.set_entry(key, Entry::of(f))
    }

    fn set_entry(&mut self, key: String, entry: Entry) -> Result<bool, IndexFull> {
        let size = |k: &str, e: &Entry| k.len() + e.server.len() + e.name.len();
        let before = match self.apps.get(key.as_str()) {
            Some(old) if *old == entry => return Ok(false),
            Some(old) => Some(size(&key, old)),
            None => None,
        };
        let bytes = self.bytes - before.unwrap_or(0) + size(&key, &entry);
        let len = self.apps.len() + usize::from(before.is_none());
        self.grow_to(bytes, len)?;
        self.apps.insert(key.into(), entry);
        Ok(true)
    }

    /// Forgets one application; whether it was there.
    pub(super) fn remove(&mut self, f: &AppFields<'_>) -> bool {
        let key = format!("{}/{}", f.namespace, f.name);
        self.remove_key(&key)
    }

    fn remove_key(&mut self, key: &str) -> bool {
        match self.apps.remove(key) {
            Some(e) => {
                self.bytes -= key.len() + e.server.len() + e.name.len();
                // Shrinking is always granted.
                self.charge.resize(cost(self.bytes, self.apps.len())).ok();
                true
            }
            None => false,
        }
    }

    /// Sets one application's destination by key (a replayed change).
    fn set(&mut self, key: &str, entry: &Entry) -> Result<(), IndexFull> {
        self.set_entry(key.to_owned(), entry.clone()).map(|_| ())
    }

    /// The per-destination counts, as a list of these applications would give.
    pub fn tally(&self) -> AppTally {
        let mut t = AppTally::default();
        for (key, e) in &self.apps {
            // The key was joined with `/`; a namespace never holds one.
            let (namespace, name) = key.split_once('/').unwrap_or(("", key));
            t.add_fields(AppFields {
                namespace,
                name,
                server: &e.server,
                destination_name: &e.name,
                health: e.health,
                sync: e.sync,
            });
        }
        t
    }
}

/// The latest word of the stream on each application it spoke of while a relist was in
/// flight: replayed onto the list once it is in, since the list may be older. Each event
/// carries its application's whole projected state, so the last one per application is all a
/// replay needs: what is kept follows the applications that changed, not the lines read (a
/// server padding every line, or sending millions of them, adds nothing), within the index's
/// own bounds, charged to the watch budget like an index.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// `None`: deleted.
    apps: BTreeMap<Box<str>, Option<Entry>>,
    bytes: usize,
    charge: Charge,
}

impl PartialEq for Changes {
    fn eq(&self, other: &Self) -> bool {
        self.apps == other.apps
    }
}

impl Eq for Changes {}

impl Changes {
    /// Changes charged to `budget`.
    pub fn charged_to(budget: &Arc<WatchBudget>) -> Self {
        Changes { charge: Charge::new(budget), ..Changes::default() }
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Bytes of names and destinations held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn record(&mut self, f: &AppFields<'_>, deleted: bool) -> Result<(), IndexFull> {
        let key = format!("{}/{}", f.namespace, f.name);
        let entry = (!deleted).then(|| Entry::of(f));
        let size =
            |k: &str, e: &Option<Entry>| k.len() + e.as_ref().map_or(0, |e| e.server.len() + e.name.len());
        let before = self.apps.get(key.as_str()).map(|e| size(&key, e));
        let grown = self.bytes - before.unwrap_or(0) + size(&key, &entry);
        let len = self.apps.len() + usize::from(before.is_none());
        if grown > MAX_INDEX_BYTES || len > MAX_INDEXED_APPS {
            return Err(IndexFull::Applications);
        }
        self.charge.resize(cost(grown, len)).map_err(IndexFull::Budget)?;
        self.bytes = grown;
        self.apps.insert(key.into(), entry);
        Ok(())
    }

    /// `index` with these changes applied on top.
    pub fn replay_onto(&self, index: &mut AppIndex) -> Result<(), IndexFull> {
        for (key, entry) in &self.apps {
            match entry {
                Some(e) => index.set(key, e)?,
                None => {
                    index.remove_key(key);
                }
            }
        }
        Ok(())
    }
}

/// `GET /api/v1/applications` read into an index.
#[derive(Debug, Default)]
pub struct IndexedApplications {
    /// `None` when the list did not fit the index.
    pub index: Option<AppIndex>,
}

impl Decoded for IndexedApplications {
    type Decoder = ListDecoder<IndexSink>;
}

/// Builds the index item by item; past its bound it only reads on (the list stays valid).
#[derive(Default)]
pub struct IndexSink {
    index: AppIndex,
    full: bool,
}

impl ItemSink for IndexSink {
    type Item<'de> = AppRef<'de>;
    type Output = IndexedApplications;
    fn add(&mut self, app: AppRef<'_>) -> Result<(), String> {
        if !self.full {
            self.full = app.with_fields(|f| self.index.upsert(&f)).is_err();
            if self.full {
                self.index = AppIndex::default();
            }
        }
        Ok(())
    }
    fn finish(self, _items_seen: bool) -> IndexedApplications {
        IndexedApplications { index: (!self.full).then_some(self.index) }
    }
}
