//! The cluster suite: argomap against a real kube-apiserver + etcd (`make cluster-test`).
//! Every test has its own namespace, its own fake Argo CD and its own `argomap run` process
//! watching only that namespace. Synchronised by polling with deadlines.

mod attribution;
mod common;
mod dangling;
mod fleet;
mod gitops;
mod greedy_clients;
mod leader;
mod metrics;
mod profiles;
mod rbac;
mod read_api;
mod scaffold;
mod security;
mod served;
mod watch;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use argomap::crd::{ArgoCdInstance, ClusterMapping, REFRESH_ANNOTATION};
use common::*;
use fake_argocd::{App, Endpoint, Fault};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

/// A change that makes a valid spec invalid.
type Mutation = Box<dyn Fn(&mut serde_json::Value)>;

const FAST: Duration = Duration::from_secs(5);
const CHECK: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread")]
async fn schema_and_cel_reject_invalid_specs_naming_the_field() {
    let client = client().await;
    let ns = namespace(&client, "schema").await;
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let dry = PostParams { dry_run: true, ..Default::default() };
    let valid = instance_json("ok", "https://argocd.example.com/argocd", "60s");
    let i: ArgoCdInstance = serde_json::from_value(valid.clone()).expect("instance");
    instances.create(&dry, &i).await.expect("a valid instance is accepted");
    let mut login = valid.clone();
    login["spec"]["credentials"] =
        json!({"secretRef": {"name": "s"}, "usernameKey": "u", "passwordKey": "p"});
    instances
        .create(&dry, &serde_json::from_value(login).expect("i"))
        .await
        .expect("username/password accepted");

    let cases: Vec<(&str, Mutation, &str)> = vec![
        ("url scheme", Box::new(|v| v["spec"]["url"] = json!("ftp://argocd.example.com")), "spec.url"),
        (
            "user info",
            Box::new(|v| v["spec"]["url"] = json!("https://admin:pw@argocd.example.com")),
            "spec.url",
        ),
        (
            "a query: the URL's writer would choose the path asked for",
            Box::new(|v| {
                v["spec"]["url"] = json!("http://argocd.example.com:8080/internal/admin/secret-path?")
            }),
            "spec.url",
        ),
        ("a fragment", Box::new(|v| v["spec"]["url"] = json!("https://argocd.example.com/#x")), "spec.url"),
        ("interval 5s", Box::new(|v| v["spec"]["interval"] = json!("5s")), "spec.interval"),
        ("interval garbage", Box::new(|v| v["spec"]["interval"] = json!("soon")), "spec.interval"),
        (
            "bad uuid",
            Box::new(|v| v["spec"]["agentCluster"]["id"] = json!("not-a-uuid")),
            "spec.agentCluster.id",
        ),
        (
            "bad organization",
            Box::new(|v| v["spec"]["organizationId"] = json!("org-1")),
            "spec.organizationId",
        ),
        (
            "tokenKey with usernameKey",
            Box::new(|v| {
                v["spec"]["credentials"] = json!({"secretRef": {"name": "s"}, "tokenKey": "t", "usernameKey": "u", "passwordKey": "p"})
            }),
            "spec.credentials",
        ),
        (
            "usernameKey alone",
            Box::new(|v| v["spec"]["credentials"] = json!({"secretRef": {"name": "s"}, "usernameKey": "u"})),
            "spec.credentials",
        ),
    ];
    for (what, mutate, field) in cases {
        let mut v = valid.clone();
        mutate(&mut v);
        let i: ArgoCdInstance = serde_json::from_value(v).expect(what);
        let err = instances.create(&dry, &i).await.expect_err(what);
        assert!(err.to_string().contains(field), "{what}: the error should name {field}: {err}");
    }

    // Untyped, for values the Rust types cannot hold (an unknown enum member).
    let raw: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &kube::api::ApiResource::erase::<ArgoCdInstance>(&()));
    let mut v = valid.clone();
    v["spec"]["agentCluster"]["cloudProvider"] = json!("MARS");
    let obj: kube::api::DynamicObject = serde_json::from_value(v).expect("dynamic");
    let err = raw.create(&dry, &obj).await.expect_err("unknown cloud provider");
    assert!(err.to_string().contains("spec.agentCluster.cloudProvider"), "{err}");

    let mappings = Api::<ClusterMapping>::namespaced(client.clone(), &ns);
    let m = mapping_json("m", "ok", "https://proxy:9090?agentName=prod");
    mappings
        .create(&dry, &serde_json::from_value(m).expect("m"))
        .await
        .expect("an argocd-agent URL is accepted");
    let m = mapping_json("m", "ok", "kubernetes.default.svc");
    let err = mappings.create(&dry, &serde_json::from_value(m).expect("m")).await.expect_err("no scheme");
    assert!(err.to_string().contains("spec.argocdClusterUrl"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_reports_links_orphans_and_conflicts() {
    let mappings = [
        ("prod-eks", "https://10.0.0.1:6443/"),
        // Same URL, later name: loses the tie even when created in the same second.
        ("prod-eks-copy", "https://10.0.0.1:6443"),
        ("legacy-gke", "https://gke.example.com"),
    ];
    let Setup { client, ns, argocd, .. } = setup("links", &mappings, "60s").await;
    let (_op, i) = operator_connected(&client, &ns).await;
    let s = i.status.clone().expect("status");
    let summary = s.summary.clone().expect("summary");
    assert_eq!(
        (summary.linked_clusters, summary.unlinked_clusters, summary.orphaned_mappings, summary.applications),
        (2, 1, 1, 3)
    );
    assert_eq!(s.linked_clusters[0].argocd_cluster_url, "https://10.0.0.1:6443");
    assert_eq!(s.linked_clusters[0].mapping.as_deref(), Some("prod-eks"));
    assert_eq!(s.linked_clusters[0].applications_count, 2);
    assert_eq!(s.linked_clusters[1].argocd_cluster_url, "https://kubernetes.default.svc");
    assert_eq!(s.linked_clusters[1].cluster.name, "Production EU");
    assert_eq!(s.unlinked_clusters[0].argocd_cluster_url, "https://old.example.com");
    assert_eq!(s.orphaned_mappings, vec!["legacy-gke".to_string()]);
    assert_eq!(s.observed_generation, Some(1));
    let conditions: BTreeMap<_, _> =
        s.conditions.iter().map(|c| (c.type_.as_str(), (c.status.as_str(), c.observed_generation))).collect();
    assert_eq!(conditions["Ready"], ("True", Some(1)));
    assert_eq!(conditions["Connected"], ("True", Some(1)));
    assert_eq!(conditions["ClustersVisible"], ("True", Some(1)));
    assert_eq!(s.connection.as_ref().and_then(|c| c.argocd_version.clone()).as_deref(), Some("v3.6.1"));

    mapping_where(&client, &ns, "prod-eks", "Linked", FAST).await;
    mapping_where(&client, &ns, "prod-eks-copy", "Conflict", FAST).await;
    mapping_where(&client, &ns, "legacy-gke", "Orphaned", FAST).await;
    let m =
        Api::<ClusterMapping>::namespaced(client.clone(), &ns).get("prod-eks-copy").await.expect("mapping");
    let ms = m.status.expect("status");
    assert_eq!(ms.conflicts_with.as_deref(), Some("prod-eks"));
    assert_eq!(ms.observed_generation, Some(1));
    assert_eq!(ms.conditions[0].reason, "Conflict");

    // A mapping whose instance does not exist.
    create_mapping(&client, &ns, mapping_json("nowhere", "no-such-instance", "https://x.example.com")).await;
    mapping_where(&client, &ns, "nowhere", "InstanceNotFound", FAST).await;

    // Deleting the instance leaves its mappings pointing at nothing.
    Api::<ArgoCdInstance>::namespaced(client.clone(), &ns)
        .delete("prod", &DeleteParams::default())
        .await
        .expect("delete");
    mapping_where(&client, &ns, "prod-eks", "InstanceNotFound", FAST).await;
    mapping_where(&client, &ns, "legacy-gke", "InstanceNotFound", FAST).await;
    drop(argocd);
}

#[tokio::test(flavor = "multi_thread")]
async fn mapping_changes_refresh_and_suspend_take_effect_at_once() {
    let Setup { client, ns, argocd, .. } = setup("react", &[], "60s").await;
    let _op = operator_connected(&client, &ns).await;
    let linked = |n: u64| {
        move |i: &ArgoCdInstance| {
            i.status.as_ref().and_then(|s| s.summary.as_ref()).is_some_and(|s| s.linked_clusters == n)
        }
    };
    let checks_before = argocd.requests(Endpoint::Clusters);

    // Create, edit, delete a mapping: each shows within 5 s, without asking Argo CD again.
    create_mapping(&client, &ns, mapping_json("old", "prod", "https://old.example.com")).await;
    instance_where(&client, &ns, "prod", FAST, "mapping created", linked(2)).await;
    mapping_where(&client, &ns, "old", "Linked", FAST).await;
    let mappings = Api::<ClusterMapping>::namespaced(client.clone(), &ns);
    let edit = json!({"spec": {"argocdClusterUrl": "https://elsewhere.example.com"}});
    mappings.patch("old", &PatchParams::default(), &Patch::Merge(&edit)).await.expect("edit");
    mapping_where(&client, &ns, "old", "Orphaned", FAST).await;
    instance_where(&client, &ns, "prod", FAST, "mapping edited", linked(1)).await;
    mappings.delete("old", &DeleteParams::default()).await.expect("delete");
    instance_where(&client, &ns, "prod", FAST, "mapping deleted", |i| {
        i.status.as_ref().is_some_and(|s| s.orphaned_mappings.is_empty())
    })
    .await;
    assert_eq!(argocd.requests(Endpoint::Clusters), checks_before, "mapping changes do not poll Argo CD");

    // The refresh annotation checks at once and is echoed.
    argocd.set_applications(vec![App::to_server("new", "https://new.example.com")]);
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "r-1"}}});
    instances.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("annotate");
    let i = instance_where(&client, &ns, "prod", FAST, "refresh handled", |i| {
        i.status.as_ref().is_some_and(|s| s.last_handled_refresh_at.as_deref() == Some("r-1"))
    })
    .await;
    let s = i.status.expect("status");
    assert!(s.unlinked_clusters.iter().any(|u| u.argocd_cluster_url == "https://new.example.com"));

    // suspend: true stops polling, even when a refresh is asked for.
    let suspend = json!({"spec": {"suspend": true}});
    instances.patch("prod", &PatchParams::default(), &Patch::Merge(&suspend)).await.expect("suspend");
    instance_where(&client, &ns, "prod", FAST, "suspended", |i| reason(i).as_deref() == Some("Suspended"))
        .await;
    let polled = argocd.requests(Endpoint::Clusters);
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: "r-2"}}});
    instances.patch("prod", &PatchParams::default(), &Patch::Merge(&refresh)).await.expect("annotate");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(argocd.requests(Endpoint::Clusters), polled, "a suspended instance is not polled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_credentials_apply_without_restart() {
    let client = client().await;
    let ns = namespace(&client, "rotate").await;
    let (argocd, token) = fake().await;
    token_secret(&client, &ns, "argocd-readonly", &fake_argocd::jwt("someone-else:apiKey", None)).await;
    create_instance(&client, &ns, instance_json("prod", &argocd.url(), "60s")).await;
    let _op = Operator::start(&ns);
    let start = Instant::now();
    let i = instance_where(&client, &ns, "prod", Duration::from_secs(10), "AuthenticationFailed", |i| {
        reason(i).as_deref() == Some("AuthenticationFailed")
    })
    .await;
    let message = i.status.and_then(|s| s.connection).map(|c| c.message).unwrap_or_default();
    assert!(
        !message.contains("someone-else") && !message.contains(&token),
        "no token in the message: {message}"
    );

    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let rotate = json!({"stringData": {"token": token}});
    secrets.patch("argocd-readonly", &PatchParams::default(), &Patch::Merge(&rotate)).await.expect("rotate");
    instance_where(&client, &ns, "prod", Duration::from_secs(10), "connected after rotation", connected)
        .await;
    assert!(start.elapsed() < Duration::from_secs(20));

    // A missing key names the key.
    let wrong_key =
        json!({"spec": {"credentials": {"secretRef": {"name": "argocd-readonly"}, "tokenKey": "apiToken"}}});
    Api::<ArgoCdInstance>::namespaced(client.clone(), &ns)
        .patch("prod", &PatchParams::default(), &Patch::Merge(&wrong_key))
        .await
        .expect("patch");
    let i = instance_where(&client, &ns, "prod", FAST, "CredentialsNotFound", |i| {
        reason(i).as_deref() == Some("CredentialsNotFound")
    })
    .await;
    let c = i.status.and_then(|s| s.connection).expect("connection");
    assert_eq!(c.message, "Secret argocd-readonly has no key \"apiToken\"");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_steady_state_writes_nothing_and_polls_on_the_interval() {
    let mappings = [("prod-eks", "https://10.0.0.1:6443"), ("legacy", "https://gke.example.com")];
    let Setup { client, ns, argocd, .. } = setup("steady", &mappings, "10s").await;
    let _op = operator_connected(&client, &ns).await;
    mapping_where(&client, &ns, "prod-eks", "Linked", FAST).await;
    mapping_where(&client, &ns, "legacy", "Orphaned", FAST).await;

    let mappings = Api::<ClusterMapping>::namespaced(client.clone(), &ns);
    let versions = |list: Vec<ClusterMapping>| -> BTreeMap<String, String> {
        list.into_iter().map(|m| (m.name_any(), m.resource_version().unwrap_or_default())).collect()
    };
    let before = versions(mappings.list(&ListParams::default()).await.expect("list").items);

    // Count every write to the instance over three intervals.
    let instances = Api::<ArgoCdInstance>::namespaced(client.clone(), &ns);
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = writes.clone();
    let watch = tokio::spawn(async move {
        let cfg = watcher::Config::default().fields("metadata.name=prod");
        let mut stream = watcher::watcher(instances, cfg).touched_objects().boxed();
        let mut seen = None;
        while let Ok(Some(i)) = stream.try_next().await {
            if seen.is_some() && seen != i.resource_version() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            seen = i.resource_version();
        }
    });
    let checks_before = argocd.requests(Endpoint::Clusters);
    let window = Duration::from_secs(33);
    let start = Instant::now();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    watch.abort();
    let checks = argocd.requests(Endpoint::Clusters) - checks_before;
    let written = writes.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=4).contains(&checks), "a 10 s interval (±10%) over 33 s polls about 3 times, not {checks}");
    assert!(written <= checks, "at most one status write per check: {written} writes for {checks} checks");
    assert_eq!(argocd.requests(Endpoint::Version), 1, "the version is asked once per connection");
    let after = versions(mappings.list(&ListParams::default()).await.expect("list").items);
    assert_eq!(before, after, "ClusterMapping statuses are not rewritten in a steady state");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_prints_the_design_columns() {
    let Setup { client, ns, argocd, .. } =
        setup("columns", &[("prod-eks", "https://10.0.0.1:6443")], "60s").await;
    let _op = operator_connected(&client, &ns).await;
    mapping_where(&client, &ns, "prod-eks", "Linked", FAST).await;

    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig_path())
            .args(args)
            .args(["-n", &ns])
            .output()
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let header = |text: &str| {
        text.lines().next().unwrap_or("").split_whitespace().map(String::from).collect::<Vec<_>>()
    };
    let out = kubectl(&["get", "argocdinstances"]);
    assert_eq!(header(&out), ["NAME", "URL", "STATUS", "LINKED", "UNLINKED", "APPS", "LAST-CHECKED", "AGE"]);
    let row: Vec<&str> = out.lines().nth(1).expect("row").split_whitespace().collect();
    assert_eq!(&row[..6], ["prod", argocd.url().as_str(), "connected", "2", "1", "3"]);
    let out = kubectl(&["get", "aci", "-o", "wide"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "URL",
            "STATUS",
            "LINKED",
            "UNLINKED",
            "APPS",
            "LAST-CHECKED",
            "AGE",
            "VERSION",
            "REASON",
            "DANGLING",
            "SHARED",
            "MODE",
            "STREAM"
        ]
    );
    assert!(out.contains("v3.6.1") && out.contains("Connected"), "{out}");
    // The schema's default mode.
    assert!(out.contains("Poll"), "{out}");
    let out = kubectl(&["get", "clm"]);
    assert_eq!(header(&out), ["NAME", "INSTANCE", "ARGOCD-URL", "CLUSTER", "STATE", "APPS", "AGE"]);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.contains("Linked") && l.contains("https://10.0.0.1:6443")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn events_are_recorded_on_transitions_only() {
    let mappings = [("prod-eks", "https://10.0.0.1:6443"), ("legacy", "https://gke.example.com")];
    let Setup { client, ns, argocd, .. } = setup("events", &mappings, "10s").await;
    let _op = operator_connected(&client, &ns).await;

    let events = Api::<Event>::namespaced(client.clone(), &ns);
    let reasons = |want: &'static [&'static str]| {
        let events = events.clone();
        move || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
                let got: Vec<(String, String, i32)> = list
                    .items
                    .iter()
                    .map(|e| {
                        let count = e.series.as_ref().map(|s| s.count).unwrap_or(1);
                        (
                            e.reason.clone().unwrap_or_default(),
                            e.regarding.as_ref().and_then(|r| r.name.clone()).unwrap_or_default(),
                            count,
                        )
                    })
                    .collect();
                if want.iter().all(|w| got.iter().any(|g| g.0 == *w)) {
                    Ok(got)
                } else {
                    Err(format!("{got:?}"))
                }
            }
        }
    };
    let got = eventually(
        FAST,
        "first events",
        reasons(&["Connected", "UnlinkedClusterDetected", "MappingLinked", "MappingOrphaned"]),
    )
    .await;
    assert!(got.iter().all(|(_, _, count)| *count == 1), "each transition once: {got:?}");
    assert!(got.iter().all(|(r, _, _)| r.as_str() != "ConnectionFailed"), "{got:?}");
    let orphaned = got.iter().find(|g| g.0 == "MappingOrphaned").expect("orphaned");
    assert_eq!(orphaned.1, "legacy");
    // The first check waits for the ClusterMappings: a mapped URL is never reported unlinked.
    let list = events.list(&ListParams::default()).await.expect("events");
    for e in list.items.iter().filter(|e| e.reason.as_deref() == Some("UnlinkedClusterDetected")) {
        let note = e.note.clone().unwrap_or_default();
        assert!(!note.contains("https://10.0.0.1:6443"), "a mapped destination reported unlinked: {note}");
    }

    // A failure is one event; its recovery another.
    argocd.set_fault(Some(Fault::TokenExpired));
    instance_where(&client, &ns, "prod", CHECK, "failure seen", |i| {
        reason(i).as_deref() == Some("AuthenticationFailed")
    })
    .await;
    eventually(FAST, "ConnectionFailed event", reasons(&["ConnectionFailed"])).await;
    argocd.set_fault(None);
    instance_where(&client, &ns, "prod", CHECK, "recovered", connected).await;
    let got = eventually(FAST, "reconnected event", || {
        let events = events.clone();
        async move {
            let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
            let connected = list
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("Connected"))
                .map(|e| e.series.as_ref().map(|s| s.count).unwrap_or(1))
                .sum::<i32>();
            if connected == 2 {
                Ok(list.items.len())
            } else {
                Err(format!("Connected seen {connected} times"))
            }
        }
    })
    .await;
    assert!(got >= 5, "{got}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_instance_ref_updates_the_old_and_the_new_instance_at_once() {
    let Setup { client, ns, argocd, .. } =
        setup("reref", &[("prod-eks", "https://10.0.0.1:6443")], "60s").await;
    create_instance(&client, &ns, instance_json("second", &argocd.url(), "60s")).await;
    let _op = Operator::start(&ns);
    let holds = |i: &ArgoCdInstance| {
        i.status
            .as_ref()
            .is_some_and(|s| s.linked_clusters.iter().any(|l| l.mapping.as_deref() == Some("prod-eks")))
    };
    instance_where(&client, &ns, "prod", CHECK, "prod links prod-eks", holds).await;
    instance_where(&client, &ns, "second", CHECK, "second connected", connected).await;

    // Both checked, so the next timed checks are a minute away: what follows is the reaction.
    let moved = json!({"spec": {"instanceRef": {"name": "second"}}});
    Api::<ClusterMapping>::namespaced(client.clone(), &ns)
        .patch("prod-eks", &PatchParams::default(), &Patch::Merge(&moved))
        .await
        .expect("move the mapping");
    instance_where(&client, &ns, "second", FAST, "second links prod-eks", holds).await;
    instance_where(&client, &ns, "prod", FAST, "prod lets prod-eks go", |i| connected(i) && !holds(i)).await;
}
