//! The `DanglingDestination` Warning event on the real control plane: recorded once when a
//! destination Argo CD cannot resolve first appears, not again while it stays, and again when
//! it comes back after being resolved.

use argomap::crd::{ArgoCdInstance, REFRESH_ANNOTATION};
use fake_argocd::App;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

use crate::common::*;
use crate::served::{CHECK, FAST};

/// A server no cluster of the fake Argo CD is registered for.
const GONE: &str = "https://gone.example.com";

/// The fake's fleet, with `stray` aimed at [`GONE`] when `dangling`.
fn apps(dangling: bool) -> Vec<App> {
    let mut apps = fake_argocd::sample_apps();
    if dangling {
        apps.push(App::to_server("stray", GONE));
    }
    apps
}

/// How often a `DanglingDestination` event was recorded about instance `prod` (a repeat is a
/// series on the same Event), with the notes seen.
async fn recorded(events: &Api<Event>) -> Result<(i32, Vec<String>), String> {
    let list = events.list(&ListParams::default()).await.map_err(|e| e.to_string())?;
    let ours: Vec<&Event> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("DanglingDestination"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("prod"))
        .collect();
    let count = ours.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).sum();
    Ok((count, ours.iter().filter_map(|e| e.note.clone()).collect()))
}

/// Asks for a check now and waits until its status is written (the annotation echoed): the
/// events of every earlier check of `prod` have been published by then, since the checks of one
/// instance run one after the other and publish before they end.
async fn check_now(client: &kube::Client, ns: &str, value: &str) -> ArgoCdInstance {
    let refresh = json!({"metadata": {"annotations": {REFRESH_ANNOTATION: value}}});
    Api::<ArgoCdInstance>::namespaced(client.clone(), ns)
        .patch("prod", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .expect("refresh");
    instance_where(client, ns, "prod", CHECK, &format!("refresh {value} handled"), |i| {
        i.status.as_ref().and_then(|s| s.last_handled_refresh_at.as_deref()) == Some(value)
    })
    .await
}

fn dangles(i: &ArgoCdInstance) -> Vec<String> {
    i.status.iter().flat_map(|s| &s.dangling_destinations).map(|d| d.destination.clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dangling_destination_is_a_warning_once_and_again_when_it_comes_back() {
    let Setup { client, ns, argocd, .. } =
        setup("dangling-events", &[("prod-eks", "https://10.0.0.1:6443")], "60s").await;
    argocd.set_applications(apps(true));
    let (_op, i) = operator_connected(&client, &ns).await;
    assert_eq!(dangles(&i), vec![GONE.to_string()]);
    let events = Api::<Event>::namespaced(client.clone(), &ns);
    let (count, notes) = eventually(FAST, "a DanglingDestination event", || async {
        match recorded(&events).await? {
            (0, _) => Err("none yet".into()),
            seen => Ok(seen),
        }
    })
    .await;
    assert_eq!(count, 1, "{notes:?}");
    assert!(
        notes[0].contains(&format!("server {GONE} (no cluster registered, 1 applications)"))
            && notes[0].contains("sync windows, deletions"),
        "the note names the destination and what it breaks: {notes:?}"
    );
    let list = events.list(&ListParams::default()).await.expect("events");
    let warning = list.items.iter().find(|e| e.reason.as_deref() == Some("DanglingDestination"));
    assert_eq!(warning.and_then(|e| e.type_.as_deref()), Some("Warning"));

    // Still dangling over two more checks: no news.
    check_now(&client, &ns, "still-1").await;
    check_now(&client, &ns, "still-2").await;
    assert_eq!(recorded(&events).await.expect("events").0, 1, "still dangling is no news");

    // Resolved, then back: news again.
    argocd.set_applications(apps(false));
    let i = check_now(&client, &ns, "resolved").await;
    assert!(dangles(&i).is_empty(), "{:?}", i.status);
    argocd.set_applications(apps(true));
    let i = check_now(&client, &ns, "back").await;
    assert_eq!(dangles(&i), vec![GONE.to_string()]);
    eventually(FAST, "a second DanglingDestination", || async {
        match recorded(&events).await? {
            (2, _) => Ok(()),
            seen => Err(format!("{seen:?}")),
        }
    })
    .await;
    // The last check's events are in once another check has been handled.
    check_now(&client, &ns, "after").await;
    assert_eq!(recorded(&events).await.expect("events").0, 2);
}
