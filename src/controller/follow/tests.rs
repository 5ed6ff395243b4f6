use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::ObjectRef;
use tokio_util::sync::CancellationToken;

use super::round::{buffered, cannot_stream};
use super::streaming::replayed;
use super::task::Streaks;
use super::{Shared, TaskConfig, start};
use crate::argocd::budget::WatchBudget;
use crate::argocd::stream::{
    AppIndex, Changes, IndexedApplications, StreamError, apply_line, apply_line_recording,
};
use crate::argocd::{self, ArgoCdError};
use crate::controller::slots::{Lane, Slots};
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::model::stream::StreamState;

fn event(kind: &str, name: &str, server: &str) -> String {
    format!(
        r#"data: {{"result":{{"type":"{kind}","application":{{"metadata":{{"name":"{name}","namespace":"argocd"}},"spec":{{"destination":{{"server":"{server}"}}}}}}}}}} "#
    )
}

/// What the stream said while a relist was in flight: `lines`, recorded.
fn recorded(lines: &[String]) -> Changes {
    let (mut scratch, mut changes) = (AppIndex::default(), Changes::default());
    for line in lines {
        apply_line_recording(&mut scratch, Some(&mut changes), line).expect("event");
    }
    changes
}

/// The index a list gives when taken after `events` (applied to `before`).
fn listed_after(before: &[(&str, &str)], events: &[String]) -> IndexedApplications {
    let mut index = AppIndex::default();
    for (name, server) in before {
        apply_line(&mut index, &event("ADDED", name, server)).expect("event");
    }
    for e in events {
        apply_line(&mut index, e).expect("event");
    }
    IndexedApplications { index: Some(index) }
}

#[test]
fn a_relist_replays_what_the_stream_said_while_it_was_in_flight() {
    let before = [("a", "https://x"), ("b", "https://x"), ("c", "https://y")];
    // Read from the stream while the list was in flight.
    let lines = vec![
        event("MODIFIED", "a", "https://y"),
        event("DELETED", "b", "https://x"),
        event("ADDED", "d", "https://z"),
        event("MODIFIED", "a", "https://z"),
    ];
    let whole = listed_after(&before, &lines).index.expect("index");
    // Whether the list was taken before, between or after those events, and even when it
    // caught an event the stream dropped, the result is the stream's latest word.
    for taken_after in 0..=lines.len() {
        let listed = listed_after(&before, &lines[..taken_after]);
        assert_eq!(
            replayed(listed, &recorded(&lines)).expect("replayed"),
            whole,
            "list taken after {taken_after} events"
        );
    }
    let healed = listed_after(&[("a", "https://x"), ("c", "https://moved")], &[]);
    let got = replayed(healed, &Changes::default()).expect("replayed");
    assert_eq!(got.tally().server_count("https://moved"), Some(1), "a dropped change healed");
    assert!(matches!(
        replayed(IndexedApplications { index: None }, &recorded(&lines)),
        Err(StreamError::Full(_))
    ));
}

#[test]
fn what_a_relist_replays_follows_the_applications_not_the_lines() {
    // A server padding every line to a megabyte, and repeating them: what is held for the
    // replay is one small entry per application.
    let padding = "x".repeat(1 << 20);
    let padded = |n: usize| {
        format!(
            r#"data: {{"result":{{"type":"MODIFIED","application":{{"metadata":{{"name":"app-{}","namespace":"argocd","annotations":{{"pad":"{padding}"}}}},"spec":{{"destination":{{"server":"https://s{n}"}}}}}}}}}} "#,
            n % 3
        )
    };
    let lines: Vec<String> = (0..200).map(padded).collect();
    let changes = recorded(&lines);
    assert_eq!(changes.len(), 3);
    assert!(changes.bytes() < 100, "{} bytes held for 200 MB of lines", changes.bytes());
    // The last word on each application is what the replay applies.
    let index = replayed(listed_after(&[], &[]), &changes).expect("replayed");
    let tally = index.tally();
    assert_eq!((tally.server_count("https://s197"), tally.total), (Some(1), 3));
}

#[test]
fn a_deletion_after_a_change_is_replayed_as_a_deletion() {
    let lines = vec![event("MODIFIED", "a", "https://y"), event("DELETED", "a", "https://y")];
    let listed = listed_after(&[("a", "https://x"), ("b", "https://x")], &[]);
    let index = replayed(listed, &recorded(&lines)).expect("replayed");
    assert_eq!(index.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_lists_only_in_a_check_slot() {
    use fake_argocd::{App, Endpoint, FakeArgoCd};
    let fake = FakeArgoCd::start(Default::default()).await;
    fake.set_applications(vec![App::to_server("web", "https://x")]);
    let token = fake_argocd::jwt("argomap:apiKey", None);
    fake.add_token(&token);
    let client = argocd::Client::new(
        argocd::ClientConfig::new(
            fake.url(),
            argocd::Credentials::Token(token.into()),
            Duration::from_secs(5),
        )
        .with_max_response_bytes(1 << 20),
    )
    .expect("client");
    let slots = Arc::new(Slots::new(1, CancellationToken::new()));
    let (notify, _) = futures::channel::mpsc::unbounded();
    let shared = Shared::new(notify, slots.clone(), WatchBudget::new(1 << 20), CancellationToken::new());
    // Every slot a new instance's list may take is held (a leader change's first checks).
    let held = slots.acquire("faults", Lane::Proven).await.expect("slot");
    let config = TaskConfig {
        key: ObjectRef::new("prod").within("faults"),
        client: Arc::new(client),
        interval: Duration::from_secs(10),
        stall: Duration::from_secs(5),
        metrics: Arc::new(Metrics::new().expect("metrics")),
        leadership: Leadership::always(),
    };
    let follower = start(config, &shared);
    let waiting = follower.settled(Duration::from_millis(500)).await;
    assert_eq!(waiting.state, StreamState::Connecting);
    assert_eq!(fake.requests(Endpoint::Applications), 0, "no list without a slot");
    drop(held);
    let followed = follower.settled(Duration::from_secs(10)).await;
    assert!(followed.state.is_streaming(), "{:?}", followed.state);
    assert_eq!(fake.requests(Endpoint::Applications), 1);
}

#[test]
fn only_answers_that_cannot_change_soon_mean_no_stream() {
    let e = |status| ArgoCdError::UnexpectedStatus { endpoint: "s", status, message: String::new() };
    assert!(cannot_stream(&e(404)));
    assert!(cannot_stream(&ArgoCdError::NotJson {
        endpoint: "s",
        status: 200,
        content_type: "text/html".into()
    }));
    assert!(!cannot_stream(&e(400)));
    assert!(!cannot_stream(&ArgoCdError::ServerError { endpoint: "s", status: 503, message: String::new() }));
    assert!(!cannot_stream(&ArgoCdError::Unauthenticated { endpoint: "s", message: String::new() }));
}

#[test]
fn streams_silent_twice_in_a_row_mean_a_buffering_proxy() {
    let mut streaks = Streaks::default();
    assert!(!streaks.silent_stream(), "one silent stream is a failure like any");
    assert!(streaks.silent_stream(), "the second in a row: a proxy buffers the stream");
    assert!(!streaks.silent_stream(), "then the count starts again");
    // A healthy stream between two silent ones breaks the streak, and the failures' too.
    streaks.failures = 3;
    streaks.reset();
    assert_eq!(streaks, Streaks::default());
    assert!(!streaks.silent_stream());
    assert!(streaks.silent_stream());
    assert_eq!(
        buffered(Duration::from_secs(45)),
        StreamState::Unavailable(
            "2 streams in a row sent not one byte within 45s; a proxy before Argo CD may be buffering the stream"
                .into()
        )
    );
}
