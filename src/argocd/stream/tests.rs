//! The stream's tests: events onto the index, framing, failures, bounds and the budget.

use super::*;
use crate::argocd::budget::{ENTRY_COST, OverBudget, WatchBudget};
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
        apply_line(&mut index, &event("MODIFIED", "argocd", "a", r#"{"server":"https://x/"}"#)).expect("e"),
        Line::Event { kind: EventKind::Modified, changed: false }
    );
    let t = index.tally();
    assert_eq!((t.total, t.unaddressed), (3, 1));
    assert_eq!(t.server_count("https://x/"), Some(1));
    assert_eq!(t.name_first("prod"), Some((1, "argocd/b")));
    // Moved, then deleted: the tally follows.
    apply_line(&mut index, &event("MODIFIED", "argocd", "a", r#"{"name":"prod"}"#)).expect("e");
    assert_eq!(index.tally().name_count("prod"), Some(2));
    assert_eq!(
        apply_line(&mut index, &event("DELETED", "argocd", "b", r#"{"name":"prod"}"#)).expect("e"),
        Line::Event { kind: EventKind::Deleted, changed: true }
    );
    assert_eq!(
        apply_line(&mut index, &event("DELETED", "argocd", "gone", "{}")).expect("e"),
        Line::Event { kind: EventKind::Deleted, changed: false }
    );
    assert_eq!(index.len(), 2);
    assert!(index.tally().servers().next().is_none());
}

#[test]
fn the_same_name_in_two_namespaces_is_two_applications() {
    let mut index = AppIndex::default();
    apply_line(&mut index, &event("ADDED", "team-a", "web", r#"{"name":"prod"}"#)).expect("e");
    apply_line(&mut index, &event("ADDED", "team-b", "web", r#"{"name":"prod"}"#)).expect("e");
    apply_line(&mut index, &event("DELETED", "team-a", "web", r#"{"name":"prod"}"#)).expect("e");
    assert_eq!(index.tally().name_first("prod"), Some((1, "team-b/web")));
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
    let bare = r#"{"result":{"type":"ADDED","application":{"metadata":{"name":"b","namespace":"argocd"}}}}"#;
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
    apply_line_recording(&mut scratch, Some(&mut changes), &event("ADDED", "argocd", "c", "{}")).expect("e");
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
