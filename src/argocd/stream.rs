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
//!
//! This module reads one line into the index; `index` holds the index and the changes kept
//! during a relist, `lines` the body cut into lines within their caps.

mod index;
mod lines;

pub use index::{
    AppIndex, Changes, IndexFull, IndexSink, IndexedApplications, MAX_INDEX_BYTES, MAX_INDEXED_APPS,
};
pub use lines::{AppStream, FREE_LINE_BYTES};

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;

use super::error::ArgoCdError;
use super::tally::AppRef;

/// Argo CD's keepalive period on an event stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

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

#[cfg(test)]
mod tests;
