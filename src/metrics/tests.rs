//! The metrics' tests: label caps, and series removed with what they describe.

use super::*;
use crate::crd::UnlinkedCluster;

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
    m.linkage("ns", "i", &l);
    assert!(m.encode().expect("encode").contains("destination=\"https://b\""));
    let l = Linkage { unlinked: vec![unlinked("https://a", 2)], ..Default::default() };
    m.linkage("ns", "i", &l);
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
    m.linkage("ns", "i", &Linkage { unlinked: many, ..Default::default() });
    let text = m.encode().expect("encode");
    let series = text.lines().filter(|l| l.starts_with("argomap_destination_applications{")).count();
    assert_eq!(series, 2, "{text}");
    assert!(text.contains("destination=\"https://c49\"") && text.contains("destination=\"https://c48\""));
    assert!(
        text.contains("argomap_destinations{instance=\"i\",namespace=\"ns\",state=\"unlinked\"} 50"),
        "counts stay exact"
    );

    // After a relist: only instances that still exist keep series.
    m.linkage("ns", "other", &Linkage::default());
    m.forget_instances_except(|_, name| name == "other");
    let text = m.encode().expect("encode");
    assert!(!text.contains("instance=\"i\"") && text.contains("instance=\"other\""), "{text}");

    let off = Metrics::with_destination_limit(0).expect("metrics");
    off.linkage("ns", "i", &Linkage { unlinked: vec![unlinked("https://a", 1)], ..Default::default() });
    assert!(!off.encode().expect("encode").contains("argomap_destination_applications{"));
}
