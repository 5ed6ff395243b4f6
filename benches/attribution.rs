//! Decode plus attribution of 10 000 applications over 500 destinations, the work of one
//! check after the bytes arrived. Run: `cargo bench --bench attribution`.

use std::hint::black_box;

use argomap::argocd::decode::decode_slice;
use argomap::argocd::tally::{BoundedClusters, TalliedApplications};
use argomap::crd::{CloudProvider, KnownCluster, KubernetesType};
use argomap::model::destinations;
use argomap::model::linkage::{self, MappingInput};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const APPS: usize = 10_000;
const DESTINATIONS: usize = 500;

/// Bodies shaped like Argo CD's (the v3.5+ projection for applications; full cluster items
/// without apiVersions).
fn bodies() -> (Vec<u8>, Vec<u8>) {
    let clusters: Vec<_> = (0..DESTINATIONS)
        .map(|i| {
            serde_json::json!({
                "server": format!("https://cluster-{i}.example.com:6443"), "name": format!("cluster-{i}"),
                "config": {"tlsClientConfig": {"insecure": false}},
                "connectionState": {"status": "Successful", "message": "", "attemptedAt": "2026-11-22T10:00:00Z"},
                "info": {"connectionState": {"status": "Successful", "message": "", "attemptedAt": "2026-11-22T10:00:00Z"},
                         "serverVersion": "1.33", "cacheInfo": {"resourcesCount": 812, "apisCount": 64}, "applicationsCount": 20}
            })
        })
        .collect();
    let apps: Vec<_> = (0..APPS)
        .map(|i| {
            // Every fifth application names its destination instead of giving the URL.
            let dest = if i % 5 == 0 {
                serde_json::json!({"name": format!("cluster-{}", i % DESTINATIONS), "namespace": "apps"})
            } else {
                serde_json::json!({"server": format!("https://cluster-{}.example.com:6443", i % DESTINATIONS), "namespace": "apps"})
            };
            serde_json::json!({"metadata": {"name": format!("app-{i}"), "namespace": "argocd"}, "spec": {"destination": dest}})
        })
        .collect();
    let c = serde_json::to_vec(&serde_json::json!({"metadata": {}, "items": clusters})).expect("clusters");
    let a = serde_json::to_vec(&serde_json::json!({"metadata": {"resourceVersion": "1"}, "items": apps}))
        .expect("apps");
    (c, a)
}

fn bench(c: &mut Criterion) {
    let (clusters_body, apps_body) = bodies();
    let cluster = KnownCluster {
        id: "0b9f6a1e-0000-4000-8000-000000000001".into(),
        name: "Known".into(),
        cloud_provider: CloudProvider::Aws,
        kind: KubernetesType::Managed,
    };
    let urls: Vec<String> =
        (0..DESTINATIONS).step_by(2).map(|i| format!("https://cluster-{i}.example.com:6443")).collect();
    let names: Vec<String> = (0..urls.len()).map(|i| format!("m-{i}")).collect();
    let mappings: Vec<MappingInput<'_>> = urls
        .iter()
        .zip(&names)
        .map(|(url, name)| MappingInput { name, url, created: None, cluster: &cluster })
        .collect();

    let mut group = c.benchmark_group("check");
    group.throughput(Throughput::Elements(APPS as u64));
    group.bench_function("decode_and_attribute_10k_apps_500_destinations", |b| {
        b.iter(|| {
            // The client's types: the cluster list bounded, the application list folded per
            // destination while it is decoded.
            let clusters: BoundedClusters = decode_slice(black_box(&clusters_body)).expect("decode clusters");
            let apps: TalliedApplications = decode_slice(black_box(&apps_body)).expect("decode apps");
            let d = destinations::destinations_from(
                clusters.items.as_deref().unwrap_or_default(),
                &apps.items.unwrap_or_default(),
            );
            black_box(linkage::link(&d, &mappings, &cluster, false))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
