//! The Argo CD health checks of `contrib/argocd/` run by the real `argocd` binary
//! (`argocd admin settings resource-overrides health`, offline with `--argocd-cm-path`) over
//! a status fixture for every state argomap writes. The statuses come from argomap's own pure
//! model (`evaluate`, `awaiting_first_check`, `mark_stale`, `minimal`), so they cannot drift from what it writes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use argomap::crd::{ArgoCdInstance, ClusterMapping, Reason};
use argomap::model::destinations::destinations;
use argomap::model::evaluate::{Observed, Outcome, evaluate, instance_not_found};
use argomap::model::{staleness, status};
use argomap_test_support::fixtures;
use jiff::{SignedDuration, Timestamp};
use pretty_assertions::assert_eq;
use serde::Serialize;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The multi-call binary of the version under test built by `tests/controlplane/build.sh argocd`.
fn argocd() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("tests/controlplane/build.sh"))
        .args(["--print-bin-dir", "argocd"])
        .env("ARGOMAP_ARGOCD_VERSION", crate::server::version())
        .output()
        .expect("build.sh");
    let dir = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let bin = PathBuf::from(dir).join("argocd");
    assert!(bin.exists(), "{} is missing: run `bash tests/controlplane/build.sh argocd`", bin.display());
    bin
}

/// What `argocd` says of `obj` with the shipped argocd-cm: (STATUS, MESSAGE).
fn health(argocd: &PathBuf, obj: &impl Serialize) -> (String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("resource.json");
    std::fs::write(&path, serde_json::to_vec(obj).expect("json")).expect("write");
    let out = Command::new(argocd)
        .args(["admin", "settings", "resource-overrides", "health"])
        .arg(&path)
        .arg("--argocd-cm-path")
        .arg(repo().join("contrib/argocd/argocd-cm.yaml"))
        .output()
        .expect("argocd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "argocd failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
            .trim()
            .to_string()
    };
    (field("STATUS:"), field("MESSAGE:"))
}

fn now() -> Timestamp {
    "2026-11-22T10:00:00Z".parse().expect("ts")
}

/// Instance `platform/prod` at generation 2.
fn instance() -> ArgoCdInstance {
    let mut i = fixtures::instance("platform", "prod");
    i.metadata.generation = Some(2);
    i
}

fn mapping(name: &str, url: &str, created: &str) -> ClusterMapping {
    let mut m = fixtures::mapping("platform", name, "prod", url);
    m.metadata.creation_timestamp = Some(fixtures::time(created));
    m
}

/// A check that saw two clusters and two applications aimed at the first.
fn observed(can_get_clusters: Option<bool>, listed: bool) -> Outcome {
    let clusters = if listed {
        vec![fixtures::cluster("https://10.0.0.1:6443", "prod-eks"), fixtures::cluster("https://old", "old")]
    } else {
        vec![]
    };
    let apps = vec![
        fixtures::app("argocd", "a", Some("https://10.0.0.1:6443"), None),
        fixtures::app("argocd", "b", Some("https://10.0.0.1:6443"), None),
    ];
    Outcome::Observed {
        observed: Arc::new(Observed {
            destinations: destinations(&clusters, &apps),
            version: Some("v3.6.1".into()),
            credentials_expire_at: None,
            can_get_clusters,
            can_get_applications: None,
        }),
        fresh: true,
    }
}

/// `instance` with the status `outcome` gives it.
fn with_status(mut i: ArgoCdInstance, mappings: &[&ClusterMapping], outcome: &Outcome) -> ArgoCdInstance {
    i.status = Some(evaluate(&i, mappings, outcome, &Default::default(), now()).instance);
    i
}

fn failed(reason: Reason, message: &str) -> Outcome {
    Outcome::Failed { reason, message: message.into(), fresh: true }
}

#[test]
fn the_shipped_argocd_cm_holds_the_lua_files() {
    let cm: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("contrib/argocd/argocd-cm.yaml")).expect("argocd-cm.yaml"),
    )
    .expect("yaml");
    for kind in ["ArgoCdInstance", "ClusterMapping"] {
        let key = format!("resource.customizations.health.argomap.io_{kind}");
        let lua = std::fs::read_to_string(repo().join(format!("contrib/argocd/argomap.io_{kind}.lua")))
            .expect("lua");
        assert_eq!(cm["data"][key.as_str()].as_str(), Some(lua.as_str()), "{key}");
    }
}

#[test]
fn instance_health_for_every_state() {
    let argocd = argocd();
    let connected = with_status(instance(), &[], &observed(None, true));
    let mut behind = connected.clone();
    behind.metadata.generation = Some(3);
    let mut stale = connected.clone();
    let stale_status = stale.status.as_mut().expect("status");
    assert!(staleness::mark_stale(
        stale_status,
        SignedDuration::from_mins(3),
        "2026-11-22T10:05:00Z".parse().expect("ts")
    ));
    let mut too_large = connected.clone();
    too_large.status = Some(status::minimal(
        connected.status.as_ref().expect("status"),
        "etcdserver: request is too large",
        now(),
    ));
    let mut suspended = instance();
    suspended.spec.suspend = true;
    let suspended = with_status(suspended, &[], &Outcome::Suspended);
    // A mapping changed before the first check finished: the controller re-evaluates "no check yet".
    let pending = with_status(
        instance(),
        &[],
        &Outcome::Failed { reason: Reason::Pending, message: String::new(), fresh: false },
    );

    // What argomap writes on first sight, before the check.
    let mut first_seen = instance();
    first_seen.status = Some(status::awaiting_first_check(Some(2), now()));
    let mut cases: Vec<(&str, ArgoCdInstance, (&str, String))> = vec![
        ("no status", instance(), ("Progressing", "Waiting for argomap's first check".into())),
        ("first seen", first_seen, ("Progressing", "Waiting for argomap's first check".into())),
        ("pending", pending, ("Progressing", "Waiting for argomap's first check".into())),
        ("generation not observed", behind, ("Progressing", "Waiting for argomap to check generation 3".into())),
        ("connected", connected, ("Healthy", "0 linked, 2 unlinked, 0 orphaned".into())),
        ("suspended", suspended, ("Suspended", "checks are suspended (spec.suspend: true)".into())),
        (
            "stale",
            stale,
            ("Degraded", "Stale: the last successful check was at 2026-11-22T10:00:00Z, more than PT3M ago: what this status shows may no longer be true".into()),
        ),
        (
            "status too large",
            too_large,
            ("Degraded", "StatusTooLarge: the Kubernetes API refused the status as too large (etcdserver: request is too large); the lists are left out, the counts in summary are exact".into()),
        ),
    ];
    let failures = [
        (Reason::AuthenticationFailed, "Argo CD refused the token (HTTP 401)"),
        (Reason::InsufficientPermissions, "the account may not get applications (HTTP 403)"),
        (Reason::Unreachable, "connection refused"),
        (Reason::Timeout, "no answer within 10s"),
        (Reason::TlsError, "certificate not trusted"),
        (Reason::InvalidResponse, "answered HTML, not JSON"),
        (Reason::CredentialsNotFound, "Secret prod-creds has no key token"),
        (Reason::CredentialsNotOptedIn, "Secret prod-creds is not labelled argomap.io/credentials=true"),
        (Reason::KubernetesApiError, "secrets is forbidden"),
    ];
    for (reason, message) in failures {
        let i = with_status(instance(), &[], &failed(reason, message));
        cases.push(("failed", i, ("Degraded", format!("{reason}: {message}"))));
    }
    for (name, obj, (status, message)) in cases {
        assert_eq!(health(&argocd, &obj), (status.to_string(), message), "{name}");
    }
}

#[test]
fn mapping_health_for_every_state() {
    let argocd = argocd();
    let linked = mapping("prod-eks", "https://10.0.0.1:6443", "2026-01-01T00:00:00Z");
    let conflict = mapping("dup", "https://10.0.0.1:6443", "2026-02-01T00:00:00Z");
    let orphaned = mapping("legacy", "https://gke.example.com", "2026-01-01T00:00:00Z");
    let i = instance();
    let e = evaluate(&i, &[&linked, &conflict, &orphaned], &observed(None, true), &Default::default(), now());
    // The token may not get clusters: an idle mapping cannot be verified.
    let idle = mapping("idle", "https://idle.example.com", "2026-01-01T00:00:00Z");
    let hidden = evaluate(&i, &[&idle], &observed(Some(false), false), &Default::default(), now());
    let fresh = mapping("new", "https://new.example.com", "2026-03-01T00:00:00Z");
    let waiting =
        evaluate(&i, &[&fresh], &failed(Reason::Unreachable, "refused"), &Default::default(), now());
    let stated = |m: &ClusterMapping, from: &[(String, argomap::crd::ClusterMappingStatus)]| {
        let mut m = m.clone();
        m.status = from.iter().find(|(n, _)| Some(n) == m.metadata.name.as_ref()).map(|(_, s)| s.clone());
        assert!(m.status.is_some(), "{:?} has a status", m.metadata.name);
        m
    };
    let mut missing = mapping("lost", "https://lost.example.com", "2026-01-01T00:00:00Z");
    missing.status = Some(instance_not_found(&missing, now()));
    let mut behind = stated(&linked, &e.mappings);
    behind.metadata.generation = Some(2);

    let cases: Vec<(&str, ClusterMapping, (&str, &str))> = vec![
        ("no status", linked.clone(), ("Progressing", "Waiting for argomap")),
        ("generation not observed", behind, ("Progressing", "Waiting for argomap to check generation 2")),
        ("linked", stated(&linked, &e.mappings), ("Healthy", "Argo CD deploys to https://10.0.0.1:6443")),
        (
            "conflict",
            stated(&conflict, &e.mappings),
            ("Degraded", "Conflict: ClusterMapping prod-eks already maps https://10.0.0.1:6443"),
        ),
        (
            "orphaned",
            stated(&orphaned, &e.mappings),
            ("Degraded", "Orphaned: ArgoCdInstance prod has no destination https://gke.example.com"),
        ),
        (
            "unverified",
            stated(&idle, &hidden.mappings),
            (
                "Degraded",
                "Unverified: no application of ArgoCdInstance prod deploys to https://idle.example.com, and Argo CD hides (part of) its cluster list from the token (ClustersVisible=False), so whether https://idle.example.com is registered cannot be told; grant the token `clusters, get` to know",
            ),
        ),
        (
            "pending",
            stated(&fresh, &waiting.mappings),
            ("Progressing", "waiting for the first successful check of ArgoCdInstance prod"),
        ),
        (
            "instance not found",
            missing,
            ("Degraded", "InstanceNotFound: ArgoCdInstance prod does not exist in this namespace"),
        ),
    ];
    for (name, obj, (status, message)) in cases {
        assert_eq!(health(&argocd, &obj), (status.to_string(), message.to_string()), "{name}");
    }
}
