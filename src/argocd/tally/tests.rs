//! The tally's tests: counts per destination, agreement with the derived types, bounds.

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
    assert_eq!(t.server_count("https://x"), Some(2));
    assert_eq!(t.name_first("prod"), Some((1, "argocd/c")));
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
    assert_eq!(t.server_count("https://x"), Some(2), "an escape decodes");
    assert_eq!(t.name_first("prod"), Some((1, "/b")), "b's namespace is not a's");
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
        status: None,
    };
    for i in 0..MAX_DESTINATIONS + 10 {
        t.add(&app(format!("https://c{i}")));
    }
    t.add(&app("https://c0".into()));
    // The one namespace ("") takes a place among the destinations.
    assert_eq!(t.servers().count(), MAX_DESTINATIONS - 1);
    assert_eq!(t.unaddressed, 11, "past the bound, counted as unresolved");
    assert_eq!(t.server_count("https://c0"), Some(2), "a known destination still counts");
    assert_eq!(t.total, MAX_DESTINATIONS as u64 + 11);
    // Long keys: the byte budget runs out first.
    let mut t = AppTally::default();
    let long = "y".repeat(MAX_KEPT_BYTES / 8);
    for i in 0..10 {
        t.add(&app(format!("https://{i}.{long}")));
    }
    assert_eq!(t.servers().count(), 7, "seven keys of just over an eighth of the budget fit");
    assert_eq!(t.unaddressed, 3);
    assert!(t.kept_bytes <= MAX_KEPT_BYTES);
    assert!(t.unaddressed_examples.iter().all(|e| e.len() <= crate::text::MESSAGE_CAP));
}

#[test]
fn a_cluster_list_past_the_bound_is_refused() {
    let items: Vec<String> = (0..=MAX_CLUSTERS).map(|i| format!(r#"{{"server":"https://c{i}"}}"#)).collect();
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

#[test]
fn namespaces_are_bounded_like_destinations() {
    let mut t = AppTally::default();
    for i in 0..MAX_DESTINATIONS + 5 {
        t.add(&crate::fixtures::app(&format!("ns{i}"), "a", Some("https://x"), None));
    }
    // Each namespace and its one destination take two places.
    assert_eq!(t.namespaces.len(), MAX_DESTINATIONS / 2);
    assert_eq!(t.server_count("https://x"), Some(MAX_DESTINATIONS as u64 / 2));
    assert_eq!(t.unaddressed, MAX_DESTINATIONS as u64 / 2 + 5);
    assert_eq!(t.total, MAX_DESTINATIONS as u64 + 5);
}

#[test]
fn applications_are_kept_per_namespace_with_health_and_sync() {
    use crate::argocd::types::{Health, Sync};
    use crate::fixtures::{app, app_with_status};
    let t = AppTally::from_apps(&[
        app_with_status("argocd", "a", Some("https://x"), None, "Healthy", "Synced"),
        app_with_status("argocd", "b", Some("https://x"), None, "Degraded", "OutOfSync"),
        app_with_status("agent-1", "c", Some("https://x"), None, "Progressing", ""),
        app_with_status("agent-1", "d", None, Some("prod"), "Weird", "Synced"),
        app("argocd", "e", Some("https://x"), None),
    ]);
    assert_eq!(
        t.namespaces.iter().map(|n| n.namespace.as_str()).collect::<Vec<_>>(),
        vec!["argocd", "agent-1"]
    );
    let argocd = &t.namespaces[0].by_server["https://x"];
    assert_eq!(argocd.apps, 3);
    assert_eq!(argocd.health[Health::Healthy as usize], 1);
    assert_eq!(argocd.health[Health::Degraded as usize], 1);
    assert_eq!(argocd.health[Health::Unknown as usize], 1, "no status reads as Unknown");
    assert_eq!(argocd.sync[Sync::OutOfSync as usize], 1);
    assert_eq!(t.server_count("https://x"), Some(4));
    let (prod, first) = &t.namespaces[1].by_name["prod"];
    assert_eq!((prod.health[Health::Unknown as usize], prod.sync[Sync::Synced as usize]), (1, 1));
    assert_eq!(first, "agent-1/d");
    assert_eq!(t.namespaces[1].by_server["https://x"].sync[Sync::Unknown as usize], 1, "\"\" is Unknown");
}

#[test]
fn the_decoder_reads_health_and_sync() {
    use crate::argocd::types::{Health, Sync};
    let l: TalliedApplications = decode_slice(
        r#"{"items":[{"metadata":{"name":"a","namespace":"argocd"},"spec":{"destination":{"server":"https://x"}},
              "status":{"health":{"status":"Suspended","message":"paused"},"sync":{"status":"OutOfSync","revision":"abc"}}},
            {"metadata":{"name":"b","namespace":"argocd"},"spec":{"destination":{"server":"https://x"}},"status":{"health":{},"sync":null}}]}"#,
    )
    .expect("decode");
    let t = l.items.expect("items");
    let c = &t.namespaces[0].by_server["https://x"];
    assert_eq!(c.health[Health::Suspended as usize], 1);
    assert_eq!(c.health[Health::Unknown as usize], 1);
    assert_eq!(c.sync[Sync::OutOfSync as usize], 1);
    assert_eq!(c.sync[Sync::Unknown as usize], 1);
}
