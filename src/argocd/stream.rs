//! Argo CD's application stream (`GET /api/v1/stream/applications`, docs/argocd-api.md) and what
//! a watch keeps of it: per application, its destination. The map is bounded by the number of
//! applications (and bytes), never by the number of events, and a tally is computed from it
//! exactly as from a list.
//!
//! Framing (v3.6.1, seen on the real server): with `Accept: text/event-stream` every event is
//! `data: {json} ` and three newlines, and once the first event is out a `:` comment line comes
//! every 15 s, which is what tells a quiet stream from a dead one. Before its first event the
//! server sends nothing at all, not even its headers; so the stream is opened without a
//! resourceVersion and begins with an `ADDED` event per application. Plain JSON lines (the
//! default framing) are read too.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::io::StreamReader;

use super::budget::{Charge, ENTRY_COST, OverBudget, WatchBudget};
use super::decode::{Decoded, ItemSink, ListDecoder, MAX_ITEM_BYTES};
use super::error::ArgoCdError;
use super::tally::{AppFields, AppRef, AppTally};

/// Applications one index keeps. Past it the watch gives up and the instance is polled: a list
/// folds any number of applications in constant memory, an index cannot.
pub const MAX_INDEXED_APPS: usize = 100_000;
/// Bytes of names and destinations one index keeps (about 160 bytes an application at the cap).
pub const MAX_INDEX_BYTES: usize = 16 * 1024 * 1024;
/// The `fields` projection of the stream (rooted at `result`). An event's projected bytes then
/// change only when an application appears, goes, or changes name or destination, and Argo CD
/// sends nothing for the status-only updates that make up nearly all of its events.
pub const STREAM_FIELDS: &str = "result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination";
/// Argo CD's keepalive period on an event stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One application's destination, trimmed as the tally reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    server: Box<str>,
    name: Box<str>,
}

/// Application (`namespace/name`) → destination. Ordered, so a tally built from it is the
/// same whatever order the events came in. Once charged to the watch budget, it charges
/// every growth there.
#[derive(Clone, Debug, Default)]
pub struct AppIndex {
    apps: BTreeMap<Box<str>, Entry>,
    bytes: usize,
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
    fn upsert(&mut self, f: &AppFields<'_>) -> Result<bool, IndexFull> {
        let key = format!("{}/{}", f.namespace, f.name);
        let entry = Entry { server: f.server.trim().into(), name: f.destination_name.trim().into() };
        self.set_entry(key, entry)
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
    fn remove(&mut self, f: &AppFields<'_>) -> bool {
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
            t.add_fields(AppFields { namespace, name, server: &e.server, destination_name: &e.name });
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

    fn record(&mut self, f: &AppFields<'_>, deleted: bool) -> Result<(), IndexFull> {
        let key = format!("{}/{}", f.namespace, f.name);
        let entry = (!deleted)
            .then(|| Entry { server: f.server.trim().into(), name: f.destination_name.trim().into() });
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

/// What a watch event was, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "UPPERCASE")]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One line of the stream, applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A keepalive, a blank separator, or an SSE field argomap does not use.
    Idle,
    /// An event; `changed`: the index differs after it.
    Event { kind: EventKind, changed: bool },
}

/// Why a stream stopped being read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the application stream sent nothing for {}s (Argo CD sends a keepalive every 15s)", .0.as_secs())]
    Stalled(Duration),
    #[error("Argo CD ended the application stream")]
    Ended,
    #[error("{0}")]
    Request(ArgoCdError),
    #[error("the application stream sent a line that is not an event: {0}")]
    Malformed(String),
    #[error("{0}")]
    Full(IndexFull),
}

impl StreamError {
    /// A fixed word for the reconnect metric.
    pub fn category(&self) -> &'static str {
        match self {
            StreamError::Stalled(_) => "Stalled",
            StreamError::Ended => "Ended",
            StreamError::Request(e) => e.category(),
            StreamError::Malformed(_) => "Malformed",
            StreamError::Full(IndexFull::Applications) => "TooManyApplications",
            StreamError::Full(IndexFull::Budget(_)) => "WatchBudgetExceeded",
        }
    }
}

/// Every value of [`StreamError::category`] (metric labels are removed by this list).
pub const STREAM_FAILURES: &[&str] = &[
    "Stalled",
    "Ended",
    "Malformed",
    "TooManyApplications",
    "WatchBudgetExceeded",
    "AuthenticationFailed",
    "InsufficientPermissions",
    "Unreachable",
    "Timeout",
    "Tls",
    "InvalidResponse",
];

/// `{"result": event}` or, after the stream failed, `{"error": {...}}`.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(default, borrow)]
    result: Option<EventRef<'a>>,
    #[serde(default)]
    error: Option<FrameError>,
}

#[derive(Deserialize)]
struct EventRef<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    application: Option<AppRef<'a>>,
}

/// grpc-gateway's `runtimeStreamError`.
#[derive(Deserialize)]
struct FrameError {
    #[serde(default)]
    http_code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
}

/// Applies one line of the stream to `index`.
pub fn apply_line(index: &mut AppIndex, line: &str) -> Result<Line, StreamError> {
    apply_line_recording(index, None, line)
}

/// [`apply_line`], also recording an event's application in `changes` (while a relist is in
/// flight).
pub fn apply_line_recording(
    index: &mut AppIndex,
    changes: Option<&mut Changes>,
    line: &str,
) -> Result<Line, StreamError> {
    let line = line.trim_end_matches('\r');
    // SSE: `data:` carries the event; comments (`:`), blank separators and other fields
    // (`event:`, `id:`, `retry:`) carry nothing argomap reads.
    let json = match line.strip_prefix("data:") {
        Some(data) => data.strip_prefix(' ').unwrap_or(data),
        None if line.starts_with('{') => line,
        None => return Ok(Line::Idle),
    };
    if json.trim().is_empty() {
        return Ok(Line::Idle);
    }
    let frame: Frame<'_> = serde_json::from_str(json).map_err(|e| StreamError::Malformed(e.to_string()))?;
    if let Some(err) = frame.error {
        let status = reqwest::StatusCode::from_u16(err.http_code.unwrap_or(500))
            .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "message": err.message.unwrap_or_default() }).to_string();
        return Err(StreamError::Request(super::error::status_error(
            "stream_applications",
            status,
            body.as_bytes(),
        )));
    }
    let Some(EventRef { kind: Some(kind), application: Some(app) }) = frame.result else {
        return Err(StreamError::Malformed("an event without type or application".into()));
    };
    let kind = match kind.as_ref() {
        "ADDED" => EventKind::Added,
        "MODIFIED" => EventKind::Modified,
        "DELETED" => EventKind::Deleted,
        // BOOKMARK and ERROR are Kubernetes watch types Argo CD does not send; an unknown one
        // is not an application change.
        _ => return Ok(Line::Idle),
    };
    let deleted = kind == EventKind::Deleted;
    if let Some(changes) = changes {
        app.with_fields(|f| changes.record(&f, deleted)).map_err(StreamError::Full)?;
    }
    let changed = match kind {
        EventKind::Deleted => app.with_fields(|f| index.remove(&f)),
        _ => app.with_fields(|f| index.upsert(&f)).map_err(StreamError::Full)?,
    };
    Ok(Line::Event { kind, changed })
}

/// A line buffer up to this size is not charged to the watch budget (a real Argo CD's
/// projected events are a few hundred bytes); past it, the buffer is charged as it grows.
pub const FREE_LINE_BYTES: usize = 64 * 1024;

/// Lines within [`MAX_ITEM_BYTES`], the buffer charged to the watch budget once it outgrows
/// [`FREE_LINE_BYTES`] (twice: the line is copied out when complete) and dropped once a long
/// line is through, so a stream that once sent a large event does not keep its buffer.
struct ChargedLines {
    codec: LinesCodec,
    charge: Charge,
}

/// Why a line could not be read.
#[derive(Debug)]
enum LineError {
    Codec(LinesCodecError),
    Budget(OverBudget),
}

impl From<std::io::Error> for LineError {
    fn from(e: std::io::Error) -> Self {
        LineError::Codec(LinesCodecError::Io(e))
    }
}

impl ChargedLines {
    fn charge_buffer(&mut self, buf: &bytes::BytesMut) -> Result<(), LineError> {
        let held = if buf.capacity() > FREE_LINE_BYTES { 2 * buf.capacity() } else { 0 };
        self.charge.resize(held).map_err(LineError::Budget)
    }

    fn release_long_buffer(&mut self, buf: &mut bytes::BytesMut) {
        if buf.is_empty() && buf.capacity() > FREE_LINE_BYTES {
            *buf = bytes::BytesMut::new();
            self.charge.resize(0).ok();
        }
    }
}

impl tokio_util::codec::Decoder for ChargedLines {
    type Item = String;
    type Error = LineError;

    fn decode(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<String>, LineError> {
        self.charge_buffer(buf)?;
        let line = self.codec.decode(buf).map_err(LineError::Codec)?;
        self.release_long_buffer(buf);
        Ok(line)
    }

    fn decode_eof(&mut self, buf: &mut bytes::BytesMut) -> Result<Option<String>, LineError> {
        self.charge_buffer(buf)?;
        let line = self.codec.decode_eof(buf).map_err(LineError::Codec)?;
        self.release_long_buffer(buf);
        Ok(line)
    }
}

/// An open stream, read line by line within [`MAX_ITEM_BYTES`] a line.
pub struct AppStream {
    lines: FramedRead<
        StreamReader<BoxStream<'static, std::io::Result<bytes::Bytes>>, bytes::Bytes>,
        ChargedLines,
    >,
    /// Bytes seen at all: a stream that never sends one is likely held by a buffering proxy.
    pub any_bytes: bool,
}

impl AppStream {
    pub(super) fn new(resp: reqwest::Response) -> Self {
        let body: BoxStream<'static, std::io::Result<bytes::Bytes>> =
            resp.bytes_stream().map(|r| r.map_err(std::io::Error::other)).boxed();
        let codec = ChargedLines {
            codec: LinesCodec::new_with_max_length(MAX_ITEM_BYTES),
            charge: Charge::default(),
        };
        AppStream { lines: FramedRead::new(StreamReader::new(body), codec), any_bytes: false }
    }

    /// Charges the line buffer to `budget` from now on.
    pub fn charge_to(&mut self, budget: &Arc<WatchBudget>) {
        self.lines.decoder_mut().charge = Charge::new(budget);
    }

    /// The next line, waiting at most `stall`.
    pub async fn next_line(&mut self, stall: Duration) -> Result<String, StreamError> {
        match tokio::time::timeout(stall, self.lines.next()).await {
            Err(_) => Err(StreamError::Stalled(stall)),
            Ok(None) => Err(StreamError::Ended),
            Ok(Some(Ok(line))) => {
                self.any_bytes = true;
                Ok(line)
            }
            Ok(Some(Err(LineError::Codec(LinesCodecError::MaxLineLengthExceeded)))) => {
                Err(StreamError::Malformed(format!("an event larger than {} KiB", MAX_ITEM_BYTES >> 10)))
            }
            Ok(Some(Err(LineError::Codec(LinesCodecError::Io(e))))) => {
                Err(StreamError::Malformed(format!("reading the stream: {e}")))
            }
            Ok(Some(Err(LineError::Budget(e)))) => Err(StreamError::Full(IndexFull::Budget(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argocd::decode::decode_slice;

    fn event(kind: &str, ns: &str, name: &str, dest: &str) -> String {
        format!(
            r#"data: {{"result":{{"type":"{kind}","application":{{"metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"destination":{dest}}}}}}}}}"#
        )
    }

    #[test]
    fn events_keep_one_destination_per_application() {
        let mut index = AppIndex::default();
        let added = |i: &mut AppIndex, name: &str, dest: &str| {
            apply_line(i, &event("ADDED", "argocd", name, dest)).expect("event")
        };
        assert_eq!(
            added(&mut index, "a", r#"{"server":"https://x/"}"#),
            Line::Event { kind: EventKind::Added, changed: true }
        );
        added(&mut index, "b", r#"{"name":"prod"}"#);
        added(&mut index, "c", r#"{"server":"https://x","name":"x"}"#);
        // The same state again (a relist, or a server without suppression): nothing changes.
        assert_eq!(
            apply_line(&mut index, &event("MODIFIED", "argocd", "a", r#"{"server":"https://x/"}"#))
                .expect("e"),
            Line::Event { kind: EventKind::Modified, changed: false }
        );
        let t = index.tally();
        assert_eq!((t.total, t.unaddressed), (3, 1));
        assert_eq!(t.by_server.get("https://x/"), Some(&1));
        assert_eq!(t.by_name.get("prod"), Some(&(1, "argocd/b".to_string())));
        // Moved, then deleted: the tally follows.
        apply_line(&mut index, &event("MODIFIED", "argocd", "a", r#"{"name":"prod"}"#)).expect("e");
        assert_eq!(index.tally().by_name.get("prod").map(|v| v.0), Some(2));
        assert_eq!(
            apply_line(&mut index, &event("DELETED", "argocd", "b", r#"{"name":"prod"}"#)).expect("e"),
            Line::Event { kind: EventKind::Deleted, changed: true }
        );
        assert_eq!(
            apply_line(&mut index, &event("DELETED", "argocd", "gone", "{}")).expect("e"),
            Line::Event { kind: EventKind::Deleted, changed: false }
        );
        assert_eq!(index.len(), 2);
        assert!(index.tally().by_server.is_empty());
    }

    #[test]
    fn the_same_name_in_two_namespaces_is_two_applications() {
        let mut index = AppIndex::default();
        apply_line(&mut index, &event("ADDED", "team-a", "web", r#"{"name":"prod"}"#)).expect("e");
        apply_line(&mut index, &event("ADDED", "team-b", "web", r#"{"name":"prod"}"#)).expect("e");
        apply_line(&mut index, &event("DELETED", "team-a", "web", r#"{"name":"prod"}"#)).expect("e");
        assert_eq!(index.tally().by_name.get("prod"), Some(&(1, "team-b/web".to_string())));
    }

    #[test]
    fn every_failure_category_is_listed() {
        use strum::VariantArray;
        for kind in crate::argocd::ErrorKind::VARIANTS {
            assert!(STREAM_FAILURES.contains(&<&str>::from(kind)), "{kind:?}");
        }
        let own = [
            StreamError::Stalled(KEEPALIVE),
            StreamError::Ended,
            StreamError::Malformed(String::new()),
            StreamError::Full(IndexFull::Applications),
            StreamError::Full(IndexFull::Budget(OverBudget { limit: 1 })),
        ];
        for e in own {
            assert!(STREAM_FAILURES.contains(&e.category()), "{e}");
        }
    }

    #[test]
    fn framing_lines_and_keepalives() {
        let mut index = AppIndex::default();
        for idle in [":", "", "\r", "event: message", "id: 7", "retry: 1000", "data:", "data: "] {
            assert_eq!(apply_line(&mut index, idle).expect("idle"), Line::Idle, "{idle:?}");
        }
        // Plain JSON lines (the default framing), with or without the SSE space.
        let plain = &event("ADDED", "argocd", "a", r#"{"server":"https://x"}"#)["data: ".len()..];
        assert!(matches!(apply_line(&mut index, plain), Ok(Line::Event { changed: true, .. })));
        let tight = format!("data:{plain}\r");
        assert!(matches!(apply_line(&mut index, &tight), Ok(Line::Event { changed: false, .. })));
        // Kinds Argo CD does not send are not application changes.
        let bookmark = r#"data: {"result":{"type":"BOOKMARK","application":{}}}"#;
        assert_eq!(apply_line(&mut index, bookmark).expect("bookmark"), Line::Idle);
        // An application whose projection dropped its destination has none (unaddressed).
        let bare =
            r#"{"result":{"type":"ADDED","application":{"metadata":{"name":"b","namespace":"argocd"}}}}"#;
        apply_line(&mut index, bare).expect("bare");
        assert_eq!(index.tally().unaddressed, 1);
    }

    #[test]
    fn broken_lines_and_error_chunks_end_the_stream() {
        let mut index = AppIndex::default();
        for bad in [
            r#"data: {"result":{"type":"ADDED","application":{"metadata":{"name":"a""#,
            r#"data: {"result":{"type":"ADDED"}}"#,
            r#"data: {"result":{"application":{}}}"#,
            r#"data: [1,2]"#,
            r#"{"result":{"type":"ADDED","application":{"metadata":{"name":7}}}}"#,
        ] {
            assert!(matches!(apply_line(&mut index, bad), Err(StreamError::Malformed(_))), "{bad}");
        }
        let expired = r#"data: {"error":{"grpc_code":16,"http_code":401,"message":"invalid session: token has invalid claims: token is expired","http_status":"Unauthorized"}}"#;
        match apply_line(&mut index, expired) {
            Err(StreamError::Request(e)) => {
                assert!(e.is_unauthenticated(), "{e}");
                assert!(e.to_string().contains("token is expired"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
        let unavailable = r#"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing"}}"#;
        match apply_line(&mut index, unavailable) {
            Err(e @ StreamError::Request(_)) => assert_eq!(e.category(), "Unreachable"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(index.is_empty());
    }

    #[test]
    fn the_index_is_bounded_by_applications_and_bytes() {
        let mut index = AppIndex::default();
        let app = |i: usize| format!(r#"{{"server":"https://c{}"}}"#, i % 7);
        for i in 0..MAX_INDEXED_APPS {
            apply_line(&mut index, &event("ADDED", "argocd", &format!("a{i}"), &app(i))).expect("fits");
        }
        let past = apply_line(&mut index, &event("ADDED", "argocd", "one-more", &app(0)));
        assert!(matches!(past, Err(StreamError::Full(_))), "{past:?}");
        // Changing one that is there still works; its count stays exact.
        apply_line(&mut index, &event("MODIFIED", "argocd", "a0", &app(1))).expect("update");
        assert_eq!(index.tally().total, MAX_INDEXED_APPS as u64);
        // Long strings: the byte budget runs out first.
        let mut index = AppIndex::default();
        let long = "n".repeat(MAX_INDEX_BYTES / 4);
        let mut kept = 0;
        for i in 0..8 {
            match apply_line(&mut index, &event("ADDED", "argocd", &format!("{i}{long}"), "{}")) {
                Ok(_) => kept += 1,
                Err(e) => assert!(matches!(e, StreamError::Full(_)), "{e}"),
            }
        }
        assert_eq!(kept, 3, "three keys of a quarter of the budget (plus a few bytes) fit");
        assert!(index.bytes <= MAX_INDEX_BYTES);
    }

    #[test]
    fn a_charged_index_charges_every_growth_and_gives_back_what_it_drops() {
        let budget = WatchBudget::new(1024);
        let mut index = AppIndex::default();
        apply_line(&mut index, &event("ADDED", "argocd", "a", r#"{"server":"https://x"}"#)).expect("e");
        index.charge_to(&budget).expect("fits");
        let one = budget.used();
        assert_eq!(one, "argocd/a".len() + "https://x".len() + ENTRY_COST);
        let mut added = 1;
        let refused = loop {
            match apply_line(&mut index, &event("ADDED", "argocd", &format!("b{added}"), "{}")) {
                Ok(_) => added += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(refused, StreamError::Full(IndexFull::Budget(_))), "{refused}");
        assert!(budget.used() <= 1024 && added > 5, "{} charged, {added} entries", budget.used());
        assert_eq!(index.len(), added, "the refused entry is not kept");
        apply_line(&mut index, &event("DELETED", "argocd", "b1", "{}")).expect("e");
        assert!(budget.used() < 1024 - ENTRY_COST);
        // A relist's index takes over the charge: only the difference is asked for.
        let mut fresh = AppIndex::default();
        apply_line(&mut fresh, &event("ADDED", "argocd", "a", r#"{"server":"https://x"}"#)).expect("e");
        fresh.replace_charge_of(&mut index).expect("smaller");
        assert_eq!(budget.used(), one);
        drop(index);
        assert_eq!(budget.used(), one);
        drop(fresh);
        assert_eq!(budget.used(), 0);
        // Changes kept during a relist are charged too.
        let mut changes = Changes::charged_to(&budget);
        let mut scratch = AppIndex::default();
        apply_line_recording(&mut scratch, Some(&mut changes), &event("ADDED", "argocd", "c", "{}"))
            .expect("e");
        assert_eq!(budget.used(), "argocd/c".len() + ENTRY_COST);
        drop(changes);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_list_builds_the_same_index_as_events() {
        let listed: IndexedApplications = decode_slice(
            r#"{"metadata":{"resourceVersion":"918273"},"items":[
                {"metadata":{"name":"a","namespace":"argocd"},"spec":{"destination":{"server":"https://x"}}},
                {"metadata":{"name":"b","namespace":"team"},"spec":{"destination":{"name":"prod"}}}
            ]}"#,
        )
        .expect("list");
        let mut events = AppIndex::default();
        apply_line(&mut events, &event("ADDED", "team", "b", r#"{"name":"prod"}"#)).expect("e");
        apply_line(&mut events, &event("ADDED", "argocd", "a", r#"{"server":"https://x"}"#)).expect("e");
        assert_eq!(listed.index.as_ref(), Some(&events));
        let empty: IndexedApplications = decode_slice(r#"{"metadata":{},"items":null}"#).expect("null");
        assert_eq!(empty.index.map(|i| i.len()), Some(0));
    }
}
