//! `GET /api/v1/stream/applications` (docs/argocd-api.md), as argocd-server v3.6 answers it:
//! * an `ADDED` event per matching application, sorted by `namespace/name`, then an event for
//!   every change made with [`crate::FakeArgoCd::set_applications`];
//! * nothing at all, not even the headers, before the first event (a server without
//!   applications keeps a new stream waiting until one appears);
//! * `Accept: text/event-stream`: each event as `data: <json> ` and three newlines, a `:`
//!   keepalive line every keepalive period, never gzipped; otherwise one JSON object a line;
//! * `fields` are generic JSON paths rooted at `result`, and with them an event whose projected
//!   bytes equal the last ones sent for that application **name** is not sent;
//! * events go through a buffer of [`BUFFER`] and are dropped for a watcher that falls behind.
//!
//! [`StreamFault`]s break open streams, or every new one, the ways a real deployment does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::Response;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::StreamFault;
use crate::data::{App, wire_app};
use crate::fields::{Selection, process_item};
use crate::server::{
    ChannelBody, NoCompress, Shared, Unauthorized, authenticate, go_http_error, grpc_for_http, now_unix,
};

/// Argo CD's watch buffer (`ARGOCD_WATCH_API_BUFFER_SIZE`).
pub(crate) const BUFFER: usize = 1000;

/// What reaches every open stream.
#[derive(Clone, Debug)]
pub(crate) enum Note {
    Event { kind: &'static str, app: Arc<App> },
    Break(StreamFault),
}

/// The events that turn `old` into `new` (keyed by namespace and name), in the order
/// Argo CD's informer would see them: additions and changes in `new`'s order, then deletions.
pub(crate) fn diff(old: &[App], new: &[App]) -> Vec<Note> {
    let key = |a: &App| (a.namespace.clone(), a.name.clone());
    let before: HashMap<_, &App> = old.iter().map(|a| (key(a), a)).collect();
    let after: HashMap<_, &App> = new.iter().map(|a| (key(a), a)).collect();
    let mut notes = Vec::new();
    for app in new {
        let kind = match before.get(&key(app)) {
            None => "ADDED",
            Some(was) if *was != app => "MODIFIED",
            Some(_) => continue,
        };
        notes.push(Note::Event { kind, app: Arc::new(app.clone()) });
    }
    for app in old.iter().filter(|a| !after.contains_key(&key(a))) {
        notes.push(Note::Event { kind: "DELETED", app: Arc::new(app.clone()) });
    }
    notes
}

/// The query filters the stream applies per event (`repo` is not applied, as in Argo CD).
struct Filter {
    name: String,
    app_namespace: String,
    projects: Vec<String>,
}

impl Filter {
    fn keeps(&self, app: &App) -> bool {
        (self.name.is_empty() || app.name == self.name)
            && (self.name.is_empty() || self.app_namespace.is_empty() || app.namespace == self.app_namespace)
            && (self.projects.is_empty() || self.projects.iter().any(|p| p == app.effective_project()))
    }
}

/// Writes events the way the server frames them, with the projection and its suppression.
struct Writer {
    sse: bool,
    selection: Option<Selection>,
    /// Last projected bytes sent per application name.
    sent: HashMap<String, String>,
}

impl Writer {
    /// The frame for one event, or `None` when its projection did not change.
    fn event(&mut self, kind: &str, app: &App) -> Option<String> {
        let mut event = json!({"result": {"type": kind, "application": wire_app(app, now_unix())}});
        if let Some(sel) = &self.selection {
            process_item(&mut Vec::new(), &mut event, sel);
        }
        let text = event.to_string();
        if self.selection.is_some() {
            if self.sent.get(&app.name) == Some(&text) {
                return None;
            }
            self.sent.insert(app.name.clone(), text.clone());
        }
        Some(self.frame(&text))
    }

    /// A `MODIFIED` event of `app` with `pad` bytes in an annotation, ignoring the projection
    /// (a hostile server's).
    fn padded(&self, app: &App, pad: usize) -> String {
        let mut wire = serde_json::to_value(wire_app(app, now_unix())).unwrap_or_default();
        wire["metadata"]["annotations"] = json!({"pad": "x".repeat(pad)});
        self.frame(&json!({"result": {"type": "MODIFIED", "application": wire}}).to_string())
    }

    fn frame(&self, json: &str) -> String {
        if self.sse { format!("data: {json} \n\n\n") } else { format!("{json}\n") }
    }

    /// `runtimeStreamError`, framed as an event.
    fn error(&self, status: StatusCode, message: &str) -> String {
        let body = json!({"error": {
            "grpc_code": grpc_for_http(status).0,
            "http_code": status.as_u16(),
            "message": message,
            "http_status": status.canonical_reason().unwrap_or_default(),
        }});
        self.frame(&body.to_string())
    }
}

/// The stream's handler: authenticates, then answers once the first event is written.
pub(crate) async fn applications(shared: &Shared, req: Request) -> Response {
    let sse = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/event-stream")));
    let query = crate::server::Query::parse(req.uri().query());
    let mut writer = Writer { sse, selection: Selection::parse(query.get("fields")), sent: HashMap::new() };
    if let Err(Unauthorized(why)) = authenticate(shared, req.headers()).require() {
        let message = match why {
            None => "no session information".to_owned(),
            Some(why) => format!("invalid session: {why}"),
        };
        return respond(
            StatusCode::UNAUTHORIZED,
            sse,
            Body::from(writer.error(StatusCode::UNAUTHORIZED, &message)),
        );
    }
    let legacy: Vec<String> = query.all("project").into_iter().map(str::to_owned).collect();
    let filter = Filter {
        name: query.first("name").to_owned(),
        app_namespace: query.first("appNamespace").to_owned(),
        projects: if legacy.is_empty() {
            query.all("projects").into_iter().map(str::to_owned).collect()
        } else {
            legacy
        },
    };
    let authorization =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();

    // Subscribed under the same lock as the snapshot: no change falls between the two.
    let (mut notes, mut apps, fault) = {
        let state = shared.lock();
        (shared.subscribe(), state.apps.clone(), state.stream_fault.clone())
    };
    apps.retain(|a| filter.keeps(a));
    apps.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    match fault {
        // A buffering proxy: not one byte, not even the headers.
        Some(StreamFault::Unanswered) => return std::future::pending().await,
        Some(StreamFault::NotRouted) => return go_http_error(StatusCode::NOT_FOUND, "404 page not found"),
        _ => {}
    }
    let keepalive = shared.keepalive();
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        for app in &apps {
            if let Some(frame) = writer.event("ADDED", app)
                && tx.send(Bytes::from(frame)).await.is_err()
            {
                return;
            }
        }
        let mut broken = fault;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            if let Some(StreamFault::Flood { lines, pad }) = broken {
                broken = None;
                for n in 0..lines {
                    let Some(app) = apps.get(n % apps.len().max(1)) else { break };
                    if tx.send(Bytes::from(writer.padded(app, pad))).await.is_err() {
                        return;
                    }
                }
                continue;
            }
            if let Some(fault) = broken.take() {
                let last = match fault {
                    StreamFault::NotRouted => return,
                    StreamFault::Flood { .. } => continue,
                    StreamFault::Stall | StreamFault::Unanswered => {
                        // Silent, and open until the client hangs up.
                        tx.closed().await;
                        return;
                    }
                    StreamFault::CutLine => {
                        let line =
                            writer.event("MODIFIED", &App::to_server("cut", "https://cut.example.com"));
                        let line = line.unwrap_or_default();
                        line[..line.len() / 2].to_owned()
                    }
                    StreamFault::Error(code) => {
                        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                        let message = if status == StatusCode::UNAUTHORIZED {
                            format!("invalid session: {}", crate::server::TOKEN_EXPIRED)
                        } else {
                            grpc_for_http(status).1
                        };
                        writer.error(status, &message)
                    }
                    StreamFault::EchoError => writer.error(
                        StatusCode::UNAUTHORIZED,
                        &format!("invalid session for Authorization {authorization:?}"),
                    ),
                };
                let _ = tx.send(Bytes::from(last)).await;
                return;
            }
            let frame = tokio::select! {
                note = notes.recv() => match note {
                    Ok(Note::Event { kind, app }) if filter.keeps(&app) => writer.event(kind, &app),
                    Ok(Note::Event { .. }) => None,
                    Ok(Note::Break(fault)) => {
                        broken = Some(fault);
                        None
                    }
                    // Argo CD drops what a slow watcher could not take.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticks.tick(), if sse => Some(":\n".to_owned()),
                () = tx.closed() => return,
            };
            if let Some(frame) = frame
                && tx.send(Bytes::from(frame)).await.is_err()
            {
                return;
            }
        }
    });
    // Nothing goes out before the first event: the headers wait for it.
    let Some(first) = rx.recv().await else {
        return std::future::pending().await;
    };
    respond(StatusCode::OK, sse, Body::new(ChannelBody::after(first, rx)))
}

fn respond(status: StatusCode, sse: bool, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let ct = if sse { "text/event-stream" } else { "application/json" };
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.extensions_mut().insert(NoCompress);
    resp
}

/// How often an open SSE stream sends a keepalive when nothing else happens.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);
