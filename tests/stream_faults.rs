//! Watch mode's faults, against a small in-test server that speaks Argo CD's stream framing
//! (`data: {json} ` and three newlines, `:` keepalives) and then misbehaves on demand: a stream
//! that stalls, a line cut in half, an error chunk (401 mid-stream), a server that does not
//! route the stream. The task following it must say so in its state, relist after every
//! reconnect, and never repeat a credential. The real server's behaviour is in
//! `tests/argocd_real/watch.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use argomap::argocd::{Client, ClientConfig, Credentials, TlsSettings};
use argomap::controller::follow::{self, Followed, Hub, Spec};
use argomap::leader::Leadership;
use argomap::metrics::Metrics;
use argomap::model::stream::StreamState;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::runtime::reflector::ObjectRef;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcmdvbWFwOmFwaUtleSJ9.c2VjcmV0LXNpZ25hdHVyZQ";
const ADDED: &str = r#"data: {"result":{"application":{"metadata":{"name":"web","namespace":"argocd"},"spec":{"destination":{"server":"https://a.example.com"}}},"type":"ADDED"}} "#;

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Healthy,
    Stall,
    Truncated,
    Expired,
    NotRouted,
}

#[derive(Default)]
struct Fake {
    mode: AtomicU8,
    lists: AtomicU64,
    streams: AtomicU64,
}

impl Fake {
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Stall,
            2 => Mode::Truncated,
            3 => Mode::Expired,
            4 => Mode::NotRouted,
            _ => Mode::Healthy,
        }
    }
    fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }
}

fn frame(line: &str) -> Result<Bytes, std::io::Error> {
    Ok(Bytes::from(format!("{line}\n\n\n")))
}

async fn stream(State(fake): State<Arc<Fake>>) -> Response {
    fake.streams.fetch_add(1, Ordering::SeqCst);
    let mode = fake.mode();
    if mode == Mode::NotRouted {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "404 page not found\n",
        )
            .into_response();
    }
    let first = futures::stream::iter([frame(ADDED)]);
    let rest: futures::stream::BoxStream<'static, Result<Bytes, std::io::Error>> = match mode {
        // Keepalives every 100 ms, forever.
        Mode::Healthy => Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(Bytes::from_static(b":\n")), ()))
        })),
        Mode::Stall => Box::pin(futures::stream::pending()),
        Mode::Truncated => Box::pin(futures::stream::iter([Ok(Bytes::from(ADDED[..40].to_string()))])),
        // The message repeats the token, as a careless server might.
        Mode::Expired => Box::pin(futures::stream::iter([frame(&format!(
            r#"data: {{"error":{{"grpc_code":16,"http_code":401,"message":"invalid session: token has invalid claims: token is expired ({TOKEN})","http_status":"Unauthorized"}}}} "#
        ))])),
        Mode::NotRouted => unreachable!(),
    };
    let body = Body::from_stream(futures::StreamExt::chain(first, rest));
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

async fn list(State(fake): State<Arc<Fake>>) -> Response {
    fake.lists.fetch_add(1, Ordering::SeqCst);
    let body = r#"{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"web","namespace":"argocd"},"spec":{"destination":{"server":"https://a.example.com"}}}]}"#;
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn version() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"Version":"v3.6.1"}"#).into_response()
}

/// The fake, and a follower of it with a 1 s stall timeout.
async fn follow(mode: Mode) -> (Arc<Fake>, follow::Follower, Arc<Metrics>) {
    let fake = Arc::new(Fake::default());
    fake.set(mode);
    let app = Router::new()
        .route("/api/version", get(version))
        .route("/api/v1/applications", get(list))
        .route("/api/v1/stream/applications", get(stream))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::new(ClientConfig {
        url,
        credentials: Credentials::Token(TOKEN.to_string().into()),
        timeout: Duration::from_secs(5),
        tls: TlsSettings::default(),
        max_response_bytes: 1 << 20,
    })
    .expect("client");
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let spec = Spec {
        key: ObjectRef::new("prod").within("faults"),
        client: Arc::new(client),
        interval: Duration::from_secs(10),
        stall: Duration::from_secs(1),
        metrics: metrics.clone(),
        leadership: Leadership::always(),
    };
    let follower = follow::start(spec, &Hub::detached());
    (fake, follower, metrics)
}

/// Polls the follower until `want` says yes, within 15 s.
async fn until(f: &follow::Follower, what: &str, want: impl Fn(&Followed) -> bool) -> Followed {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = f.current();
        if want(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: still {:?}", now.state);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn reconnecting(f: &Followed) -> Option<&str> {
    match &f.state {
        StreamState::Reconnecting(m) => Some(m),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_stream_is_followed_and_keepalives_keep_it_open() {
    let (fake, f, _) = follow(Mode::Healthy).await;
    let s = until(&f, "streaming", |f| f.state.is_streaming()).await;
    assert_eq!(s.tally.by_server.get("https://a.example.com"), Some(&1));
    // Three stall timeouts of keepalives only: still the same stream.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(f.current().state.is_streaming());
    assert_eq!(fake.streams.load(Ordering::SeqCst), 1);
    assert_eq!(fake.lists.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_stream_is_dead_and_reopened_after_a_relist() {
    let (fake, f, metrics) = follow(Mode::Stall).await;
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    assert!(reconnecting(&s).is_some_and(|m| m.contains("sent nothing for 1s")), "{:?}", s.state);
    fake.set(Mode::Healthy);
    until(&f, "streaming again", |f| f.state.is_streaming()).await;
    assert!(fake.lists.load(Ordering::SeqCst) >= 2, "a relist after the reconnect");
    let text = metrics.encode().expect("metrics");
    assert!(
        text.contains(
            r#"argomap_stream_reconnects_total{instance="prod",namespace="faults",reason="Stalled"}"#
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_cut_in_half_ends_the_stream() {
    let (fake, f, _) = follow(Mode::Truncated).await;
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    assert!(reconnecting(&s).is_some_and(|m| m.contains("not an event")), "{:?}", s.state);
    fake.set(Mode::Healthy);
    until(&f, "streaming again", |f| f.state.is_streaming()).await;
    assert!(fake.lists.load(Ordering::SeqCst) >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_chunk_mid_stream_is_reported_without_the_token() {
    let (_fake, f, _) = follow(Mode::Expired).await;
    let s = until(&f, "reconnecting", |f| reconnecting(f).is_some()).await;
    let m = reconnecting(&s).unwrap_or_default();
    assert!(m.contains("HTTP 401") && m.contains("token is expired"), "{m}");
    assert!(!m.contains(TOKEN) && m.contains("[redacted]"), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_does_not_route_the_stream_is_polled() {
    let (fake, f, _) = follow(Mode::NotRouted).await;
    let s = until(&f, "unavailable", |f| matches!(f.state, StreamState::Unavailable(_))).await;
    let StreamState::Unavailable(why) = &s.state else { unreachable!() };
    assert!(why.contains("404"), "{why}");
    // Not retried before the next relist period (10 intervals).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fake.streams.load(Ordering::SeqCst), 1);
}
