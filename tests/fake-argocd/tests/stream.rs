//! The fake's application stream: what it sends, in which framing, when it keeps quiet, and
//! how it breaks on demand. Bodies are checked against the swagger in `contract.rs`.

mod common;

use std::time::Duration;

use common::{Stream, open_stream};
use fake_argocd::{App, Endpoint, FakeArgoCd, Options, StreamFault, jwt};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);
/// The projection argomap asks for.
const NARROW: &str = "fields=result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination";
/// The projection argomap asks for with `spec.applications.health`.
const NARROW_HEALTH: &str = "fields=result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination,result.application.status.sync.status,result.application.status.health.status";

async fn fake(keepalive: Duration) -> (FakeArgoCd, String) {
    let fake = FakeArgoCd::start(Options { stream_keepalive: keepalive, ..Options::default() }).await;
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    fake.set_applications(vec![
        App::to_server("web", "https://a.example.com").in_namespace("team-b"),
        App::to_name("api", "prod"),
        App::to_server("web", "https://b.example.com"),
    ]);
    (fake, token)
}

async fn stream(fake: &FakeArgoCd, query: &str, token: &str, sse: bool) -> Stream {
    let s = open_stream(fake, query, Some(token), sse, WAIT).await.expect("the stream answers");
    assert_eq!(s.status, 200);
    s
}

fn summary(event: &Value) -> (String, String, String) {
    let r = &event["result"];
    let app = &r["application"]["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (s(&r["type"]), s(&app["namespace"]), s(&app["name"]))
}

#[tokio::test]
async fn a_stream_starts_with_every_application_then_follows_changes() {
    let (fake, token) = fake(Duration::from_secs(15)).await;
    let mut s = stream(&fake, "", &token, true).await;
    assert_eq!(s.content_type, "text/event-stream");
    // The exact SSE framing of argocd-server v3.6: `data: <json> `, then blank lines.
    let first = s.line(WAIT).await.expect("first frame");
    assert!(first.starts_with("data: {\"result\":") && first.ends_with("} "), "{first:?}");
    let mut seen = vec![summary(&serde_json::from_str(&first["data: ".len()..]).expect("json"))];
    for _ in 0..2 {
        seen.push(summary(&s.event(WAIT).await.expect("ADDED")));
    }
    let added = |ns: &str, name: &str| ("ADDED".to_owned(), ns.to_owned(), name.to_owned());
    assert_eq!(seen, vec![added("argocd", "api"), added("argocd", "web"), added("team-b", "web")]);

    fake.set_applications(vec![
        App::to_server("web", "https://a.example.com").in_namespace("team-b"),
        App::to_name("api", "staging"),
        App::to_server("new", "https://c.example.com"),
    ]);
    let mut live = Vec::new();
    for _ in 0..3 {
        live.push(summary(&s.event(WAIT).await.expect("live event")));
    }
    let e = |kind: &str, name: &str| (kind.to_owned(), "argocd".to_owned(), name.to_owned());
    assert_eq!(live, vec![e("MODIFIED", "api"), e("ADDED", "new"), e("DELETED", "web")]);
    assert_eq!(fake.requests(Endpoint::ApplicationStream), 1);
    assert_eq!(fake.open_streams(), 1);
}

#[tokio::test]
async fn the_narrow_projection_suppresses_status_only_changes() {
    let (fake, token) = fake(Duration::from_secs(15)).await;
    // Default framing: one JSON object a line.
    let mut s = stream(&fake, NARROW, &token, false).await;
    assert_eq!(s.content_type, "application/json");
    let first = s.line(WAIT).await.expect("line");
    assert!(first.starts_with("{\"result\":"), "{first}");
    let event: Value = serde_json::from_str(&first).expect("json");
    assert_eq!(
        event,
        json!({"result": {"type": "ADDED", "application": {
            "metadata": {"name": "api", "namespace": "argocd"},
            "spec": {"destination": {"name": "prod", "namespace": "api"}}}}})
    );
    s.event(WAIT).await.expect("ADDED");
    s.event(WAIT).await.expect("ADDED");

    // The projected bytes include `type`, so the first MODIFIED after an ADDED goes out even
    // when only the health changed (as on the real server); the next health change sends
    // nothing, and then a move does.
    let apps = |health: &str, api_to: &str| {
        vec![
            App::to_server("web", "https://a.example.com")
                .in_namespace("team-b")
                .with_status("Synced", health),
            App::to_name("api", api_to).with_status("OutOfSync", health),
            App::to_server("web", "https://b.example.com"),
        ]
    };
    fake.set_applications(apps("Degraded", "prod"));
    let primed = [s.event(WAIT).await.expect("e"), s.event(WAIT).await.expect("e")].map(|e| summary(&e));
    let m = |ns: &str, name: &str| ("MODIFIED".to_owned(), ns.to_owned(), name.to_owned());
    assert_eq!(primed, [m("team-b", "web"), m("argocd", "api")], "in the order of the new list");
    fake.set_applications(apps("Progressing", "prod"));
    fake.set_applications(apps("Progressing", "staging"));
    let moved = s.event(WAIT).await.expect("the move");
    assert_eq!(summary(&moved), ("MODIFIED".to_owned(), "argocd".to_owned(), "api".to_owned()));
    assert_eq!(moved["result"]["application"]["spec"]["destination"]["name"], "staging");
}

#[tokio::test]
async fn health_and_sync_changes_are_sent_where_the_projection_keeps_them() {
    let (fake, token) = fake(Duration::from_secs(15)).await;
    let mut plain = stream(&fake, NARROW, &token, false).await;
    let mut health = stream(&fake, NARROW_HEALTH, &token, false).await;
    let first = health.event(WAIT).await.expect("ADDED");
    assert_eq!(
        first["result"]["application"]["status"],
        json!({"health": {"status": "Healthy"}, "sync": {"status": "Synced"}}),
        "the status keys asked for, and nothing else of status"
    );
    for _ in 0..2 {
        health.event(WAIT).await.expect("ADDED");
    }
    for _ in 0..3 {
        let e = plain.event(WAIT).await.expect("ADDED");
        assert!(e["result"]["application"].get("status").is_none(), "{e}");
    }

    // The first MODIFIED after an ADDED goes out on both (the type is projected).
    assert!(fake.set_application_status("argocd", "api", "OutOfSync", "Degraded", "Back-off pulling image"));
    let e = health.event(WAIT).await.expect("MODIFIED");
    assert_eq!(summary(&e), ("MODIFIED".to_owned(), "argocd".to_owned(), "api".to_owned()));
    assert_eq!(
        e["result"]["application"]["status"],
        json!({"health": {"status": "Degraded"}, "sync": {"status": "OutOfSync"}})
    );
    plain.event(WAIT).await.expect("MODIFIED");

    // A new message alone changes no projected byte; a new health or sync does, where kept.
    assert!(fake.set_application_status("argocd", "api", "OutOfSync", "Degraded", "Still pulling"));
    assert!(fake.set_application_status("argocd", "api", "OutOfSync", "Progressing", ""));
    let e = health.event(WAIT).await.expect("the new health");
    assert_eq!(e["result"]["application"]["status"]["health"], json!({"status": "Progressing"}));
    assert!(fake.set_application_status("argocd", "api", "Synced", "Progressing", ""));
    let e = health.event(WAIT).await.expect("the new sync");
    assert_eq!(e["result"]["application"]["status"]["sync"], json!({"status": "Synced"}));

    // Then a move: the next event on both, so nothing went out in between.
    assert!(fake.update_application("argocd", "api", |a| a.dest_name = Some("staging".to_owned())));
    for s in [&mut plain, &mut health] {
        let e = s.event(WAIT).await.expect("the move");
        assert_eq!(summary(&e), ("MODIFIED".to_owned(), "argocd".to_owned(), "api".to_owned()));
        assert_eq!(e["result"]["application"]["spec"]["destination"]["name"], "staging");
    }
    assert!(!fake.update_application("argocd", "nope", |_| {}));
    // Unprojected, every change is sent (and the message with it).
    let mut full = stream(&fake, "", &token, false).await;
    for _ in 0..3 {
        full.event(WAIT).await.expect("ADDED");
    }
    assert!(fake.set_application_status("argocd", "api", "Synced", "Progressing", "Waiting for rollout"));
    let e = full.event(WAIT).await.expect("MODIFIED");
    assert_eq!(e["result"]["application"]["status"]["health"]["message"], "Waiting for rollout");
}

#[tokio::test]
async fn nothing_is_sent_before_the_first_event() {
    let fake = FakeArgoCd::start(Options::default()).await;
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    let opening = tokio::spawn({
        let url_fake = fake.url();
        let token = token.clone();
        async move {
            common::client()
                .get(format!("{url_fake}/api/v1/stream/applications"))
                .bearer_auth(token)
                .header("accept", "text/event-stream")
                .send()
                .await
        }
    });
    // No application: the request stays unanswered until the stream is registered and one
    // appears.
    let deadline = tokio::time::Instant::now() + WAIT;
    while fake.open_streams() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream never opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!opening.is_finished(), "headers before any event");
    fake.set_applications(vec![App::to_server("first", "https://a.example.com")]);
    let resp = tokio::time::timeout(WAIT, opening).await.expect("answered").expect("task").expect("ok");
    assert_eq!(resp.status(), 200);
    let body = tokio::time::timeout(WAIT, async {
        let mut resp = resp;
        resp.chunk().await
    })
    .await
    .expect("a chunk")
    .expect("reads")
    .expect("not the end");
    assert!(String::from_utf8_lossy(&body).contains("\"name\":\"first\""));
}

#[tokio::test]
async fn keepalives_come_only_as_server_sent_events() {
    let (fake, token) = fake(Duration::from_millis(50)).await;
    let mut s = stream(&fake, NARROW, &token, true).await;
    for _ in 0..3 {
        s.event(WAIT).await.expect("ADDED");
    }
    assert_eq!(s.line(WAIT).await.as_deref(), Some(":"));
    assert_eq!(s.line(WAIT).await.as_deref(), Some(":"));
}

#[tokio::test]
async fn a_rejected_token_gets_a_stream_error() {
    let (fake, _) = fake(Duration::from_secs(15)).await;
    let expired = jwt("argomap:apiKey", Some(1));
    fake.add_token(&expired);
    for (token, message) in [
        (None, "no session information"),
        (Some(expired.as_str()), "invalid session: token has invalid claims: token is expired"),
    ] {
        let mut s = open_stream(&fake, "", token, true, WAIT).await.expect("answers");
        assert_eq!((s.status, s.content_type.as_str()), (401, "text/event-stream"));
        let e = s.event(WAIT).await.expect("error chunk");
        assert_eq!(
            e,
            json!({"error": {"grpc_code": 16, "http_code": 401, "message": message, "http_status": "Unauthorized"}})
        );
        assert!(s.line(WAIT).await.is_none(), "the response ends");
    }
}

#[tokio::test]
async fn open_streams_break_on_demand() {
    let (fake, token) = fake(Duration::from_millis(50)).await;
    let opened = || async {
        let mut s = stream(&fake, NARROW, &token, true).await;
        for _ in 0..3 {
            s.event(WAIT).await.expect("ADDED");
        }
        s
    };

    let mut s = opened().await;
    fake.break_streams(StreamFault::Error(401));
    let e = s.event(WAIT).await.expect("error chunk");
    assert_eq!(e["error"]["http_code"], 401);
    assert_eq!(e["error"]["message"], "invalid session: token has invalid claims: token is expired");
    assert!(s.line(WAIT).await.is_none(), "the response ends after the error");

    let mut s = opened().await;
    fake.break_streams(StreamFault::CutLine);
    let mut cut = s.line(WAIT).await.expect("half a line");
    while cut == ":" {
        cut = s.line(WAIT).await.expect("half a line");
    }
    assert!(cut.starts_with("data: {") && serde_json::from_str::<Value>(&cut[6..]).is_err(), "{cut}");
    assert!(s.line(WAIT).await.is_none());

    let mut s = opened().await;
    fake.break_streams(StreamFault::EchoError);
    let e = s.event(WAIT).await.expect("error chunk");
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&token), "the hostile server repeats the credentials: {message}");

    // A stall: silence (no keepalive either), the connection open.
    let mut s = opened().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while fake.open_streams() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "the earlier streams never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.break_streams(StreamFault::Stall);
    // Keepalives already on their way are read off (how many depends on the machine's speed);
    // then nothing comes. A server still sending every 50 ms never leaves a 300 ms gap.
    let deadline = tokio::time::Instant::now() + WAIT;
    while s.line(Duration::from_millis(300)).await.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "still sending after the stall");
    }
    assert_eq!(fake.open_streams(), 1, "open, but silent");
    drop(s);
}

#[tokio::test]
async fn new_streams_break_as_set() {
    let (fake, token) = fake(Duration::from_millis(50)).await;
    fake.set_stream_fault(Some(StreamFault::Unanswered));
    assert!(
        open_stream(&fake, NARROW, Some(&token), true, Duration::from_millis(500)).await.is_none(),
        "a buffering proxy sends no headers"
    );
    fake.set_stream_fault(Some(StreamFault::NotRouted));
    let s = open_stream(&fake, NARROW, Some(&token), true, WAIT).await.expect("answers");
    assert_eq!((s.status, s.content_type.as_str()), (404, "text/plain; charset=utf-8"));
    fake.set_stream_fault(Some(StreamFault::Error(503)));
    let mut s = stream(&fake, NARROW, &token, true).await;
    for _ in 0..3 {
        s.event(WAIT).await.expect("ADDED");
    }
    let e = s.event(WAIT).await.expect("error chunk");
    assert_eq!((e["error"]["http_code"].as_u64(), e["error"]["grpc_code"].as_u64()), (Some(503), Some(14)));
    fake.set_stream_fault(None);
    let mut s = stream(&fake, NARROW, &token, true).await;
    for _ in 0..3 {
        s.event(WAIT).await.expect("ADDED");
    }
    assert_eq!(s.line(WAIT).await.as_deref(), Some(":"), "healthy again");
}

#[tokio::test]
async fn bytes_are_counted_per_endpoint_as_sent() {
    let (fake, token) = fake(Duration::from_secs(15)).await;
    // The list's JSON length, read with or without `Accept-Encoding: gzip`.
    let list = |gzip: bool| {
        let (url, token) = (format!("{}/api/v1/applications", fake.url()), token.clone());
        async move {
            let resp = common::client_with(gzip, None).get(url).bearer_auth(token).send().await;
            resp.expect("list").bytes().await.expect("body").len() as u64
        }
    };
    let json = list(false).await;
    assert_eq!(fake.bytes_sent(Endpoint::Applications), json);
    // Gzipped: what crossed the wire, smaller than the JSON.
    assert_eq!(list(true).await, json, "the same list, inflated");
    let second = fake.bytes_sent(Endpoint::Applications) - json;
    assert!(second > 0 && second < json, "{second} of {json}");
}
