//! The metrics' tests: label caps, and series removed with what they describe.

use super::*;
use crate::crd::{CloudProvider, HealthCounts, KubernetesType, LinkedCluster, SyncCounts, UnlinkedCluster};
use crate::fixtures::{CLUSTER_ID, known};

#[test]
fn destination_labels_are_capped_in_bytes_and_stay_distinct() {
    let short = "https://10.0.0.1:6443";
    assert_eq!(destination_label(short), short);
    let exact = format!("https://{}", "a".repeat(DESTINATION_LABEL_MAX - 8));
    assert_eq!(destination_label(&exact), exact, "up to the cap, as is");
    let long_a = format!("https://{}/a", "é".repeat(1000));
    let long_b = format!("https://{}/b", "é".repeat(1000));
    let (a, b) = (destination_label(&long_a), destination_label(&long_b));
    assert!(a.len() <= DESTINATION_LABEL_MAX, "{}", a.len());
    assert!(a.starts_with("https://é"));
    assert_ne!(a, b, "same start, different URLs, different labels");
    assert_eq!(a, destination_label(&long_a), "stable");
}

fn unlinked(url: &str, apps: u64) -> UnlinkedCluster {
    UnlinkedCluster {
        argocd_cluster_url: url.into(),
        argocd_cluster_name: None,
        applications_count: apps,
        argocd_connection_state: None,
        details: Default::default(),
    }
}

#[test]
fn vanished_destinations_and_deleted_instances_lose_their_series() {
    let m = Metrics::new().expect("metrics");
    let l =
        Linkage { unlinked: vec![unlinked("https://a", 2), unlinked("https://b", 1)], ..Default::default() };
    m.linkage("ns", "i", &l, 0);
    assert!(m.encode().expect("encode").contains("destination=\"https://b\""));
    let l = Linkage { unlinked: vec![unlinked("https://a", 2)], ..Default::default() };
    m.linkage("ns", "i", &l, 0);
    let text = m.encode().expect("encode");
    assert!(text.contains("destination=\"https://a\""));
    assert!(!text.contains("destination=\"https://b\""));
    m.check_failed("ns", "i", Reason::Timeout, jiff::Timestamp::UNIX_EPOCH);
    m.forget_instance("ns", "i");
    let text = m.encode().expect("encode");
    assert!(!text.contains("instance=\"i\""), "{text}");
    assert!(text.contains("argomap_build_info"));
}

#[test]
fn destination_series_are_capped_per_instance_keeping_the_largest() {
    let m = Metrics::with_destination_limit(2).expect("metrics");
    let many: Vec<_> = (0..50).map(|i| unlinked(&format!("https://c{i:02}"), i)).collect();
    m.linkage("ns", "i", &Linkage { unlinked: many, ..Default::default() }, 0);
    let text = m.encode().expect("encode");
    let series = text.lines().filter(|l| l.starts_with("argomap_destination_applications{")).count();
    assert_eq!(series, 2, "{text}");
    assert!(text.contains("destination=\"https://c49\"") && text.contains("destination=\"https://c48\""));
    assert!(
        text.contains("argomap_destinations{instance=\"i\",namespace=\"ns\",state=\"unlinked\"} 50"),
        "counts stay exact"
    );

    // After a relist: only instances that still exist keep series.
    m.linkage("ns", "other", &Linkage::default(), 0);
    m.forget_instances_except(|_, name| name == "other");
    let text = m.encode().expect("encode");
    assert!(!text.contains("instance=\"i\"") && text.contains("instance=\"other\""), "{text}");

    let off = Metrics::with_destination_limit(0).expect("metrics");
    let mut a = unlinked("https://a", 1);
    a.details.applications_by_status = Some(counts(1, 0));
    off.linkage("ns", "i", &Linkage { unlinked: vec![a], ..Default::default() }, 0);
    let text = off.encode().expect("encode");
    for family in PER_DESTINATION {
        assert_eq!(lines(&text, family).len(), 0, "{family} is off with the limit at 0:\n{text}");
    }
}

/// The families with a series per destination, all within `--destination-metrics-limit`.
const PER_DESTINATION: [&str; 4] = [
    "argomap_destination_applications",
    "argomap_destination_info",
    "argomap_destination_applications_by_health",
    "argomap_destination_applications_by_sync",
];

/// The sample lines of one family (`family{...} value`).
fn lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.strip_prefix(family).is_some_and(|rest| rest.starts_with('{'))).collect()
}

fn linked(url: &str, apps: u64, cluster: KnownCluster) -> LinkedCluster {
    LinkedCluster {
        argocd_cluster_url: url.into(),
        argocd_cluster_name: Some(format!("argo-{apps}")),
        mapping: Some("m".into()),
        cluster,
        applications_count: apps,
        argocd_connection_state: None,
        also_deployed_by: Vec::new(),
        also_deployed_by_count: 0,
        details: Default::default(),
    }
}

/// Counts by status: `healthy` Healthy and Synced, `degraded` Degraded and OutOfSync.
fn counts(healthy: u64, degraded: u64) -> StatusCounts {
    StatusCounts {
        health: HealthCounts { healthy, degraded, ..Default::default() },
        sync: SyncCounts { synced: healthy, out_of_sync: degraded, ..Default::default() },
    }
}

#[test]
fn destination_info_names_the_state_and_the_linked_cluster() {
    let m = Metrics::new().expect("metrics");
    let gcp = KnownCluster {
        cloud_provider: CloudProvider::Gcp,
        kind: KubernetesType::SelfManaged,
        ..known("Prod GKE")
    };
    let mut mapped_but_dangling = linked("https://gone.example.com", 3, known("Gone"));
    mapped_but_dangling.argocd_cluster_name = None;
    mapped_but_dangling.details.dangling = true;
    let mut stray = unlinked("https://stray.example.com", 1);
    stray.details.dangling = true;
    let l = Linkage {
        linked: vec![linked("https://10.0.0.1:6443", 5, gcp), mapped_but_dangling],
        unlinked: vec![unlinked("https://old.example.com", 0), stray],
        ..Default::default()
    };
    m.linkage("ns", "i", &l, 2);
    let text = m.encode().expect("encode");
    let info = |dest: &str, argo: &str, state: &str, cluster: Option<(&str, &str, &str)>| {
        let (name, kind, provider) = cluster.unwrap_or_default();
        let id = if cluster.is_some() { CLUSTER_ID } else { "" };
        format!(
            "argomap_destination_info{{argocd_cluster_name=\"{argo}\",cloud_provider=\"{provider}\",cluster_id=\"{id}\",cluster_name=\"{name}\",cluster_type=\"{kind}\",destination=\"{dest}\",instance=\"i\",namespace=\"ns\",state=\"{state}\"}} 1"
        )
    };
    let mut got = lines(&text, "argomap_destination_info");
    got.sort();
    let mut want = vec![
        info("https://10.0.0.1:6443", "argo-5", "linked", Some(("Prod GKE", "SELF_MANAGED", "GCP"))),
        // Dangling wins over linked; the link keeps its cluster labels.
        info("https://gone.example.com", "", "dangling", Some(("Gone", "MANAGED", "AWS"))),
        info("https://old.example.com", "", "unlinked", None),
        info("https://stray.example.com", "", "dangling", None),
    ];
    want.sort();
    assert_eq!(got, want, "{text}");
    assert!(text.contains("argomap_dangling_destinations{instance=\"i\",namespace=\"ns\"} 2"), "{text}");
    assert!(
        lines(&text, "argomap_destination_applications_by_health").is_empty(),
        "no counts by status without spec.applications.health"
    );
}

#[test]
fn label_values_from_outside_are_printable_and_bounded() {
    let m = Metrics::new().expect("metrics");
    let long = format!("Prod\n{}\u{202E}", "é".repeat(400));
    let mut l = linked("https://10.0.0.1:6443", 1, known(&long));
    l.argocd_cluster_name = Some(long.clone());
    m.linkage("ns", "i", &Linkage { linked: vec![l], ..Default::default() }, 0);
    let text = m.encode().expect("encode");
    let line = lines(&text, "argomap_destination_info");
    assert_eq!(line.len(), 1, "{text}");
    for label in ["argocd_cluster_name", "cluster_name"] {
        let value = line[0]
            .split(['{', ','])
            .find_map(|kv| kv.strip_prefix(&format!("{label}=\"")))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {label}: {}", line[0]));
        assert!(value.len() <= NAME_LABEL_MAX, "{label}: {} bytes", value.len());
        assert!(value.starts_with("Prod") && value.ends_with('…'), "{label}: {value}");
        assert!(!value.contains('\\') && !value.contains('\u{202E}'), "{label}: {value}");
    }
}

#[test]
fn counts_by_health_and_sync_come_with_the_opt_in_and_go_with_it() {
    let m = Metrics::new().expect("metrics");
    let mut a = unlinked("https://a", 3);
    a.details.applications_by_status = Some(counts(2, 1));
    let mut b = unlinked("https://b", 1);
    b.details.applications_by_status = Some(counts(1, 0));
    m.linkage("ns", "i", &Linkage { unlinked: vec![a.clone(), b], ..Default::default() }, 0);
    let text = m.encode().expect("encode");
    // Every fixed value, zeros included, so that a series does not vanish at 0.
    assert_eq!(lines(&text, "argomap_destination_applications_by_health").len(), 2 * HEALTH.len());
    assert_eq!(lines(&text, "argomap_destination_applications_by_sync").len(), 2 * SYNC.len());
    for (family, label, value, n) in [
        ("argomap_destination_applications_by_health", "health", "Healthy", 2),
        ("argomap_destination_applications_by_health", "health", "Degraded", 1),
        ("argomap_destination_applications_by_health", "health", "Missing", 0),
        ("argomap_destination_applications_by_sync", "sync", "Synced", 2),
        ("argomap_destination_applications_by_sync", "sync", "OutOfSync", 1),
        ("argomap_destination_applications_by_sync", "sync", "Unknown", 0),
    ] {
        let found = lines(&text, family).into_iter().any(|l| {
            l.contains("destination=\"https://a\"")
                && l.contains(&format!("{label}=\"{value}\""))
                && l.ends_with(&format!(" {n}"))
        });
        assert!(found, "{family} {value} {n}:\n{text}");
    }

    // The destination b vanishes: its counts go, a's stay.
    m.linkage("ns", "i", &Linkage { unlinked: vec![a.clone()], ..Default::default() }, 0);
    let text = m.encode().expect("encode");
    assert_eq!(lines(&text, "argomap_destination_applications_by_health").len(), HEALTH.len());
    assert!(!text.contains("destination=\"https://b\""), "{text}");

    // Health turned off (the linkage has no counts by status): every count goes.
    a.details.applications_by_status = None;
    m.linkage("ns", "i", &Linkage { unlinked: vec![a], ..Default::default() }, 0);
    let text = m.encode().expect("encode");
    assert!(lines(&text, "argomap_destination_applications_by_health").is_empty(), "{text}");
    assert!(lines(&text, "argomap_destination_applications_by_sync").is_empty(), "{text}");
    assert_eq!(lines(&text, "argomap_destination_info").len(), 1, "the other families stay");
}

#[test]
fn every_per_destination_family_keeps_the_same_largest_destinations() {
    let m = Metrics::with_destination_limit(2).expect("metrics");
    let many: Vec<_> = (0..50)
        .map(|i| {
            let mut u = unlinked(&format!("https://c{i:02}"), i);
            u.details.applications_by_status = Some(counts(i, 0));
            u
        })
        .collect();
    m.linkage("ns", "i", &Linkage { unlinked: many, ..Default::default() }, 7);
    let text = m.encode().expect("encode");
    for family in PER_DESTINATION {
        let kept: BTreeSet<&str> = lines(&text, family)
            .iter()
            .filter_map(|l| l.split("destination=\"").nth(1)?.split('"').next())
            .collect();
        assert_eq!(kept, BTreeSet::from(["https://c48", "https://c49"]), "{family}:\n{text}");
    }
    assert!(text.contains("argomap_dangling_destinations{instance=\"i\",namespace=\"ns\"} 7"));
}

#[test]
fn a_deleted_instance_loses_its_info_dangling_and_status_series() {
    let m = Metrics::new().expect("metrics");
    let mut a = unlinked("https://a", 1);
    a.details.applications_by_status = Some(counts(1, 0));
    a.details.dangling = true;
    let l =
        Linkage { linked: vec![linked("https://b", 1, known("B"))], unlinked: vec![a], ..Default::default() };
    m.linkage("ns", "i", &l, 1);
    m.linkage("ns", "kept", &l, 1);
    m.forget_instance("ns", "i");
    let text = m.encode().expect("encode");
    assert!(!text.contains("instance=\"i\""), "{text}");
    for family in PER_DESTINATION.iter().chain(&["argomap_dangling_destinations"]) {
        assert!(!lines(&text, family).is_empty(), "{family} of the other instance stays:\n{text}");
    }
}

#[test]
fn fixed_label_values_are_the_status_field_names_and_the_crd_spellings() {
    let all = StatusCounts {
        health: HealthCounts {
            healthy: 1,
            progressing: 1,
            degraded: 1,
            suspended: 1,
            missing: 1,
            unknown: 1,
        },
        sync: SyncCounts { synced: 1, out_of_sync: 1, unknown: 1 },
    };
    let json = serde_json::to_value(&all).expect("json");
    let keys = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
    };
    let strings = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(keys(&json["health"]), strings(&HEALTH));
    assert_eq!(keys(&json["sync"]), strings(&SYNC));
    assert_eq!(health_counts(&all).map(|(h, _)| h), HEALTH);
    assert_eq!(sync_counts(&counts(0, 4)), [("Synced", 0), ("OutOfSync", 4), ("Unknown", 0)]);
    assert_eq!(serialized(&KubernetesType::PartiallyManaged), "PARTIALLY_MANAGED");
    assert_eq!(serialized(&CloudProvider::OnPremise), "ON_PREMISE");
}
