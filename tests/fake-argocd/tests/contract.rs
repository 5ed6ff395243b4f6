//! Contract test: every JSON body the fake can send validates against Argo CD's own swagger
//! definitions (trimmed copy in tests/fixtures, see trim-swagger.py), in a strict mode.
//!
//! Strict = the published definitions plus:
//! * `additionalProperties: false` on every object schema, so a misspelt field fails;
//! * `v1Time` an RFC 3339 UTC string **or null** (docs/argocd-api.md, "Values": nil `*metav1.Time`
//!   without omitempty, e.g. `connectionState.attemptedAt`);
//! * list `items` may be `null` (docs/argocd-api.md, "Lists": an empty list comes back nil);
//! * `v1FieldsV1` is an arbitrary object (Argo CD writes managed fields as JSON);
//! * for full (unprojected) bodies, the always-present members from the Go json tags are
//!   `required` (the members Argo CD always writes, though the swagger marks them optional);
//! * for `fields=` projections, the Go typed nils the projection writes as `null`
//!   (labels, annotations, spec.source, spec.sources, spec.syncPolicy, spec.sourceHydrator).

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use common::{Reply, client, get, rich_server, send};
use fake_argocd::{Endpoint, FakeArgoCd, Fault, Options, StreamFault, jwt};
use reqwest::Method;
use serde_json::{Value, json};

const SWAGGER: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/argocd-swagger-trimmed.json"));

const RFC3339_UTC: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$";

/// Always-present members (no omitempty, or struct-typed) per Go json tags.
const WIRE_REQUIRED: &[(&str, &[&str])] = &[
    ("v1alpha1ClusterList", &["metadata", "items"]),
    ("v1alpha1Cluster", &["server", "name", "config", "connectionState", "info"]),
    ("v1alpha1ClusterConfig", &["tlsClientConfig"]),
    ("v1alpha1TLSClientConfig", &["insecure"]),
    ("v1alpha1ConnectionState", &["status", "message", "attemptedAt"]),
    ("v1alpha1ClusterInfo", &["connectionState", "cacheInfo", "applicationsCount"]),
    ("v1alpha1ApplicationList", &["metadata", "items"]),
    ("v1alpha1Application", &["metadata", "spec", "status"]),
    ("v1ObjectMeta", &["creationTimestamp"]),
    ("v1alpha1ApplicationSpec", &["destination", "project"]),
    ("v1alpha1ApplicationStatus", &["sync", "health", "summary", "sourceHydrator"]),
    ("v1alpha1SyncStatus", &["status", "comparedTo"]),
    ("v1alpha1ComparedTo", &["source", "destination"]),
    ("v1alpha1ApplicationSource", &["repoURL"]),
];

/// Projected items may carry these typed nils as `null`.
const PROJECTION_NULLABLE: &[(&str, &str)] = &[
    ("v1ObjectMeta", "labels"),
    ("v1ObjectMeta", "annotations"),
    ("v1alpha1ApplicationSpec", "source"),
    ("v1alpha1ApplicationSpec", "sources"),
    ("v1alpha1ApplicationSpec", "syncPolicy"),
    ("v1alpha1ApplicationSpec", "sourceHydrator"),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// A complete object: strict + wire-required members.
    Full,
    /// A `fields=` projection: strict + typed nils, nothing required.
    Projection,
}

fn forbid_additional(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            for child in map.values_mut() {
                forbid_additional(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_additional),
        _ => {}
    }
}

/// Also accept `null`. A `type` widens in place (errors inside stay precise); a bare `$ref`
/// (no siblings allowed in draft 4) needs an `anyOf`.
fn or_null(schema: &mut Value) {
    if let Some(Value::String(ty)) = schema.get("type") {
        schema["type"] = json!([ty, "null"]);
    } else {
        let original = schema.take();
        *schema = json!({"anyOf": [original, {"type": "null"}]});
    }
}

fn strict_definitions(mode: Mode) -> Value {
    let swagger: Value = serde_json::from_str(SWAGGER).expect("trimmed swagger parses");
    let mut defs = swagger["definitions"].clone();
    for (_, def) in defs.as_object_mut().expect("definitions object").iter_mut() {
        forbid_additional(def);
    }
    defs["v1Time"] = json!({"type": ["string", "null"], "pattern": RFC3339_UTC});
    defs["v1FieldsV1"] = json!({"type": "object"});
    for list in ["v1alpha1ClusterList", "v1alpha1ApplicationList"] {
        or_null(&mut defs[list]["properties"]["items"]);
    }
    match mode {
        Mode::Full => {
            for (name, required) in WIRE_REQUIRED {
                defs[*name]["required"] = json!(required);
            }
        }
        Mode::Projection => {
            for (name, field) in PROJECTION_NULLABLE {
                or_null(&mut defs[*name]["properties"][*field]);
            }
        }
    }
    defs
}

/// Validation errors of `instance` against definition `name` (empty = valid).
fn violations(name: &str, mode: Mode, instance: &Value) -> Vec<String> {
    thread_local! {
        static CACHE: RefCell<HashMap<(String, bool), jsonschema::Validator>> =
            RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        let validator = cache.entry((name.to_owned(), mode == Mode::Full)).or_insert_with(|| {
            let defs = strict_definitions(mode);
            assert!(defs.get(name).is_some(), "no definition {name}");
            let schema = json!({
                "definitions": defs,
                "allOf": [{"$ref": format!("#/definitions/{name}")}],
            });
            jsonschema::draft4::options()
                .should_validate_formats(true)
                .build(&schema)
                .expect("schema compiles")
        });
        validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    })
}

fn assert_valid(label: &str, name: &str, mode: Mode, instance: &Value) {
    let errors = violations(name, mode, instance);
    assert!(
        errors.is_empty(),
        "{label}: body does not match {name} ({mode:?}):\n  {}\nbody: {instance}",
        errors.join("\n  ")
    );
}

/// Collects (label, definition, mode, body) for every body the fake produces.
struct Bodies(Vec<(String, &'static str, Mode, Value)>);

impl Bodies {
    fn add(&mut self, label: impl Into<String>, def: &'static str, mode: Mode, reply: &Reply) {
        let label = label.into();
        let ct = reply.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{label}: content-type {ct}");
        self.0.push((label, def, mode, reply.json()));
    }

    fn add_value(&mut self, label: impl Into<String>, def: &'static str, mode: Mode, value: Value) {
        self.0.push((label.into(), def, mode, value));
    }
}

const STREAM_RESULT: &str = "streamResultOfV1alpha1ApplicationWatchEvent";
const WAIT: Duration = Duration::from_secs(5);

/// Every kind of line the application stream sends: full and projected events of each type,
/// and its error chunks (before the first event and mid-stream).
async fn collect_stream_bodies(bodies: &mut Bodies) {
    let (fake, token) = rich_server("v3.6.1").await;
    let t = Some(token.as_str());
    let apps = common::rich_apps();
    let narrow = "fields=result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination";
    for (query, mode) in [
        ("", Mode::Full),
        (narrow, Mode::Projection),
        (STREAM_HEALTH, Mode::Projection),
        ("fields=result.type,result.application.status.health", Mode::Projection),
        ("fields=result.type", Mode::Projection),
    ] {
        let mut s = common::open_stream(&fake, query, t, true, WAIT).await.expect("stream answers");
        for i in 0..apps.len() {
            let e = s.event(WAIT).await.expect("ADDED");
            bodies.add_value(format!("stream {query:?} ADDED {i}"), STREAM_RESULT, mode, e);
        }
        let mut changed = apps.clone();
        let gone = changed.pop().expect("an app");
        changed[0] = changed[0].clone().with_status("OutOfSync", "Degraded");
        changed[0].dest_server = Some("https://moved.example.com".to_owned());
        fake.set_applications(changed);
        for kind in ["MODIFIED", "DELETED"] {
            let e = s.event(WAIT).await.expect("live event");
            assert_eq!(e["result"]["type"], kind, "{e}");
            bodies.add_value(format!("stream {query:?} {kind}"), STREAM_RESULT, mode, e);
        }
        // A hostile flood: padded MODIFIED events, whatever the projection asked for.
        fake.break_streams(StreamFault::Flood { lines: 2, pad: 64 });
        for n in 0..2 {
            let e = s.event(WAIT).await.expect("padded event");
            assert_eq!(
                e["result"]["application"]["metadata"]["annotations"]["pad"].as_str().map(str::len),
                Some(64)
            );
            bodies.add_value(format!("stream {query:?} flood {n}"), STREAM_RESULT, Mode::Full, e);
        }
        fake.break_streams(StreamFault::Error(401));
        let e = s.event(WAIT).await.expect("error chunk");
        bodies.add_value(format!("stream {query:?} error"), STREAM_RESULT, Mode::Full, e);
        let mut restored = apps.clone();
        restored.retain(|a| a != &gone);
        restored.push(gone);
        fake.set_applications(restored);
        fake.set_applications(apps.clone());
    }
    // Health and sync changed through the control API, on each projection.
    for (query, mode) in [("", Mode::Full), (STREAM_HEALTH, Mode::Projection)] {
        let mut s = common::open_stream(&fake, query, t, false, WAIT).await.expect("stream answers");
        for _ in 0..apps.len() {
            s.event(WAIT).await.expect("ADDED");
        }
        for (sync, health, message) in
            [("OutOfSync", "Degraded", "Back-off pulling image"), ("Synced", "Healthy", "")]
        {
            assert!(fake.set_application_status("argocd", "guestbook", sync, health, message));
            let e = s.event(WAIT).await.expect("MODIFIED");
            assert_eq!(e["result"]["application"]["status"]["health"]["status"], health, "{e}");
            bodies.add_value(format!("stream {query:?} status {health}"), STREAM_RESULT, mode, e);
        }
    }
    let mut s = common::open_stream(&fake, "", None, true, WAIT).await.expect("answers");
    assert_eq!(s.status, 401);
    let e = s.event(WAIT).await.expect("error chunk");
    bodies.add_value("stream no session", STREAM_RESULT, Mode::Full, e);
}

/// argomap's stream projection with `spec.applications.health`.
const STREAM_HEALTH: &str = "fields=result.type,result.application.metadata.name,result.application.metadata.namespace,result.application.spec.destination,result.application.status.sync.status,result.application.status.health.status";
/// argomap's list projection on v3.5+ with `spec.applications.health` (its older servers' one
/// is [`PORTABLE`]).
const NARROW_HEALTH: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination,items.status.sync.status,items.status.health";
const RECOMMENDED_3_5: &str = "items.metadata.name,items.metadata.namespace,items.spec.destination,items.spec.project,items.status.sync.status,items.status.health";
const PORTABLE: &str =
    "items.metadata.name,items.metadata.namespace,items.spec,items.status.sync.status,items.status.health";
const EVERY_KEY_BUT_SPEC: &str = "items.metadata.name,items.metadata.namespace,items.metadata.annotations,items.metadata.labels,items.metadata.creationTimestamp,items.metadata.deletionTimestamp,items.spec.destination,items.spec.project,items.spec.source,items.spec.sources,items.spec.sourceHydrator,items.spec.syncPolicy,items.status.sourceHydrator,items.status.summary,items.status.sync.status,items.status.sync.revision,items.status.health,items.status.operationState.startedAt,items.status.operationState.finishedAt,items.status.resources,items.operation.sync,items.status.operationState.phase,items.status.operationState.operation.sync";

async fn collect_application_bodies(bodies: &mut Bodies) {
    let projections: &[(&str, &[&str])] = &[
        ("v2.5.0", &["items.metadata.name,items.spec.destination", "-items.status"]),
        ("v3.4.2", &[RECOMMENDED_3_5, PORTABLE, "-items.spec", "-items.status.resources"]),
        (
            "v3.5.1+109ca7c",
            &[RECOMMENDED_3_5, NARROW_HEALTH, PORTABLE, EVERY_KEY_BUT_SPEC, "bogus,items.nope"],
        ),
        (
            "v3.6.0+37ee009",
            &[
                RECOMMENDED_3_5,
                NARROW_HEALTH,
                PORTABLE,
                "items.spec,items.spec.destination",
                "-items.status.resources",
                EVERY_KEY_BUT_SPEC,
            ],
        ),
    ];
    for (version, fields) in projections {
        let (fake, token) = rich_server(version).await;
        let t = Some(token.as_str());
        let full = get(&fake, "/api/v1/applications", t).await;
        assert_eq!(full.status, 200);
        assert_eq!(full.json()["items"].as_array().map(Vec::len), Some(8));
        bodies.add(format!("{version} full"), "v1alpha1ApplicationList", Mode::Full, &full);
        for f in *fields {
            let r = get(&fake, &format!("/api/v1/applications?fields={f}"), t).await;
            assert_eq!(r.status, 200, "{version} fields={f}: {}", r.body);
            bodies.add(format!("{version} fields={f}"), "v1alpha1ApplicationList", Mode::Projection, &r);
        }
        // Empty result: `items` null, projected and not.
        let empty = get(&fake, "/api/v1/applications?projects=none", t).await;
        assert!(empty.json()["items"].is_null());
        bodies.add(format!("{version} empty"), "v1alpha1ApplicationList", Mode::Full, &empty);
        let empty =
            get(&fake, &format!("/api/v1/applications?projects=none&fields={RECOMMENDED_3_5}"), t).await;
        bodies.add(format!("{version} empty projected"), "v1alpha1ApplicationList", Mode::Projection, &empty);
        // Oversized filler is a valid list too.
        fake.set_fault(Some(Fault::Oversized(20_000)));
        let big = get(&fake, "/api/v1/applications", t).await;
        assert!(big.body.len() >= 20_000);
        bodies.add(format!("{version} oversized"), "v1alpha1ApplicationList", Mode::Full, &big);
    }
    // v3.5.x: a key together with its parent fails with grpc-gateway's fallback body.
    let (fake, token) = rich_server("v3.5.1").await;
    let r = get(&fake, "/api/v1/applications?fields=items.spec,items.spec.project", Some(&token)).await;
    assert_eq!(r.status, 500);
    bodies.add("3.5 parent+child", "runtimeError", Mode::Full, &r);
}

async fn collect_cluster_bodies(bodies: &mut Bodies, fake: &FakeArgoCd, token: &str) {
    let t = Some(token);
    let r = get(fake, "/api/v1/clusters", t).await;
    let items = r.json()["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(7));
    assert_eq!(items[6]["name"], "in-cluster");
    assert!(items[0]["labels"].is_object() && items[0]["annotations"].is_object());
    assert!(items[5]["info"]["connectionState"]["message"].as_str().is_some_and(|m| m.contains("edge-1")));
    assert!(items[3]["connectionState"]["attemptedAt"].is_null());
    bodies.add("clusters", "v1alpha1ClusterList", Mode::Full, &r);
    let r = get(fake, "/api/v1/clusters?name=dev", t).await;
    bodies.add("clusters by name", "v1alpha1ClusterList", Mode::Full, &r);
    let r = get(fake, "/api/v1/clusters?server=https://nowhere", t).await;
    assert!(r.json()["items"].is_null());
    bodies.add("clusters none", "v1alpha1ClusterList", Mode::Full, &r);
    fake.set_in_cluster_enabled(false);
    let r = get(fake, "/api/v1/clusters", t).await;
    bodies.add("clusters no in-cluster", "v1alpha1ClusterList", Mode::Full, &r);
    fake.set_in_cluster_enabled(true);
    fake.set_fault(Some(Fault::Oversized(20_000)));
    let r = get(fake, "/api/v1/clusters", t).await;
    bodies.add("clusters oversized", "v1alpha1ClusterList", Mode::Full, &r);
    fake.set_fault(None);
}

async fn collect_other_bodies(bodies: &mut Bodies, fake: &FakeArgoCd, token: &str) {
    let t = Some(token);
    let c = client();
    bodies.add("version anon", "versionVersionMessage", Mode::Full, &get(fake, "/api/version", None).await);
    let auth = get(fake, "/api/version", t).await;
    assert!(auth.json().get("GoVersion").is_some());
    bodies.add("version auth", "versionVersionMessage", Mode::Full, &auth);

    let json_ct = [("content-type", "application/json")];
    let login = |body: &'static str| {
        let c = c.clone();
        async move { send(&c, fake, Method::POST, "/api/v1/session", None, &json_ct, Some(body)).await }
    };
    let ok = login(r#"{"username":"admin","password":"s3cr3t"}"#).await;
    assert_eq!(ok.status, 200);
    bodies.add("session", "sessionSessionResponse", Mode::Full, &ok);
    let session = ok.json()["token"].as_str().expect("token").to_owned();
    for (label, body) in [
        ("bad login", r#"{"username":"admin","password":"nope"}"#),
        ("no credentials", r#"{"username":"admin"}"#),
        ("token login", r#"{"token":"x"}"#),
        ("long username", r#"{"username":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","password":"p"}"#),
        ("broken login json", r#"{"username":"#),
    ] {
        let r = login(body).await;
        assert!(r.status == 401 || r.status == 400, "{label}: {}", r.status);
        bodies.add(label, "runtimeError", Mode::Full, &r);
    }
    let logout = send(&c, fake, Method::DELETE, "/api/v1/session", None, &json_ct, None).await;
    bodies.add("logout", "sessionSessionResponse", Mode::Full, &logout);

    bodies.add(
        "userinfo anon",
        "sessionGetUserInfoResponse",
        Mode::Full,
        &get(fake, "/api/v1/session/userinfo", None).await,
    );
    let me = get(fake, "/api/v1/session/userinfo", Some(&session)).await;
    assert_eq!(me.json()["username"], "admin");
    bodies.add("userinfo", "sessionGetUserInfoResponse", Mode::Full, &me);

    for allowed in [true, false] {
        fake.set_can_i(allowed);
        let r = get(fake, "/api/v1/account/can-i/clusters/get/*", t).await;
        bodies.add("can-i", "accountCanIResponse", Mode::Full, &r);
    }
    let r = get(fake, "/api/v1/account/can-i/clusters/peek/*", t).await;
    assert_eq!(r.status, 400);
    bodies.add("can-i bad action", "runtimeError", Mode::Full, &r);
    let r = get(fake, "/api/v1/account/can-i/nothing/get/*", t).await;
    bodies.add("can-i bad resource", "runtimeError", Mode::Full, &r);

    // Auth failures.
    bodies.add("no session", "runtimeError", Mode::Full, &get(fake, "/api/v1/clusters", None).await);
    bodies.add(
        "unknown token",
        "runtimeError",
        Mode::Full,
        &get(fake, "/api/v1/clusters", Some(&jwt("x:apiKey", None))).await,
    );
    let expired = jwt("argomap:apiKey", Some(1));
    fake.add_token(&expired);
    bodies.add(
        "expired",
        "runtimeError",
        Mode::Full,
        &get(fake, "/api/v1/applications", Some(&expired)).await,
    );

    // Every fault with a JSON body, on every /api/v1 endpoint kind.
    let mut faults = vec![Fault::Unauthenticated, Fault::TokenExpired, Fault::PermissionDenied, Fault::Echo];
    faults.extend([400, 401, 403, 404, 408, 409, 429, 500, 501, 502, 503, 504].map(Fault::Status));
    for fault in faults {
        fake.set_fault(Some(fault.clone()));
        for path in ["/api/v1/clusters", "/api/v1/session/userinfo"] {
            let r = get(fake, path, t).await;
            assert!(r.status >= 400, "{fault:?}");
            bodies.add(format!("{fault:?} {path}"), "runtimeError", Mode::Full, &r);
        }
    }
    // The slow drip carries the normal body.
    fake.set_fault(Some(Fault::SlowDrip(Duration::from_millis(1))));
    let r = get(fake, "/api/v1/account/can-i/clusters/get/*", t).await;
    bodies.add("slow drip", "accountCanIResponse", Mode::Full, &r);
    fake.set_fault(None);
}

#[tokio::test]
async fn every_body_matches_the_swagger_definitions() {
    let mut bodies = Bodies(Vec::new());
    let (fake, token) = rich_server("v3.5.1+109ca7c").await;
    collect_cluster_bodies(&mut bodies, &fake, &token).await;
    collect_other_bodies(&mut bodies, &fake, &token).await;
    collect_application_bodies(&mut bodies).await;
    collect_stream_bodies(&mut bodies).await;

    // Every endpoint answered at least once.
    for ep in [Endpoint::Version, Endpoint::Session, Endpoint::UserInfo, Endpoint::Clusters, Endpoint::CanI] {
        assert!(fake.requests(ep) > 0, "{ep:?} never exercised");
    }
    assert!(bodies.0.len() > 80, "only {} bodies", bodies.0.len());
    let mut failures = Vec::new();
    for (label, def, mode, body) in &bodies.0 {
        let errors = violations(def, *mode, body);
        if !errors.is_empty() {
            failures.push(format!("{label} ({def}): {}", errors.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn tls_and_root_path_serve_the_same_bodies() {
    let fake =
        FakeArgoCd::start(Options { tls: true, root_path: "/argocd/".to_owned(), ..Options::default() })
            .await;
    let token = jwt("argomap:apiKey", None);
    fake.add_token(&token);
    let c = common::client_with(true, fake.ca_pem().as_deref());
    let r = send(&c, &fake, Method::GET, "/api/v1/clusters", Some(&token), &[], None).await;
    assert_eq!(r.status, 200);
    assert_valid("tls clusters", "v1alpha1ClusterList", Mode::Full, &r.json());
}

/// Positive control: Argo CD's real-shaped example bodies pass the same strict validator.
#[test]
fn examples_pass_the_strict_validator() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/argocd-examples");
    let cases: &[(&str, &str, Mode)] = &[
        ("clusters-list.json", "v1alpha1ClusterList", Mode::Full),
        ("clusters-list-without-controller.json", "v1alpha1ClusterList", Mode::Full),
        ("applications-list.json", "v1alpha1ApplicationList", Mode::Full),
        ("applications-list-projected.json", "v1alpha1ApplicationList", Mode::Projection),
        ("applications-list-projected-portable.json", "v1alpha1ApplicationList", Mode::Projection),
        ("version-anonymous.json", "versionVersionMessage", Mode::Full),
        ("version-authenticated.json", "versionVersionMessage", Mode::Full),
        ("session-create-response.json", "sessionSessionResponse", Mode::Full),
        ("session-userinfo-anonymous.json", "sessionGetUserInfoResponse", Mode::Full),
        ("session-userinfo-loggedin.json", "sessionGetUserInfoResponse", Mode::Full),
        ("error-401-no-session.json", "runtimeError", Mode::Full),
        ("error-401-token-expired.json", "runtimeError", Mode::Full),
        ("error-401-invalid-login.json", "runtimeError", Mode::Full),
        ("error-403-permission-denied.json", "runtimeError", Mode::Full),
        ("error-404-application-not-found.json", "runtimeError", Mode::Full),
        ("error-stream-401.json", STREAM_RESULT, Mode::Full),
    ];
    for (file, def, mode) in cases {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).expect("fixture readable");
        let value: Value = serde_json::from_str(&text).expect("fixture parses");
        assert_valid(file, def, *mode, &value);
    }
    let stream =
        std::fs::read_to_string(format!("{dir}/applications-watch-stream.ndjson")).expect("readable");
    for (i, line) in stream.lines().enumerate() {
        let value: Value = serde_json::from_str(line).expect("each line parses");
        assert_valid(&format!("watch stream line {i}"), STREAM_RESULT, Mode::Full, &value);
    }
}

/// The validator is not vacuous: misspelt fields, wrong types and missing always-present
/// members are rejected.
#[tokio::test]
async fn validator_rejects_misspelt_fields_and_wrong_types() {
    let (fake, token) = rich_server("v3.5.1").await;
    let clusters = get(&fake, "/api/v1/clusters", Some(&token)).await.json();
    assert_valid("clusters", "v1alpha1ClusterList", Mode::Full, &clusters);

    let mut misspelt = clusters.clone();
    let info = misspelt["items"][0]["info"].as_object_mut().expect("info object");
    let count = info.remove("applicationsCount").expect("count present");
    info.insert("applicationCount".to_owned(), count);
    assert!(!violations("v1alpha1ClusterList", Mode::Full, &misspelt).is_empty());
    // ... even in projection mode, where nothing is required.
    assert!(!violations("v1alpha1ClusterList", Mode::Projection, &misspelt).is_empty());

    let mut wrong_type = clusters.clone();
    wrong_type["items"][0]["info"]["applicationsCount"] = json!("2");
    assert!(!violations("v1alpha1ClusterList", Mode::Full, &wrong_type).is_empty());

    let mut label_not_a_string = clusters.clone();
    label_not_a_string["items"][0]["labels"]["env"] = json!(1);
    assert!(!violations("v1alpha1ClusterList", Mode::Full, &label_not_a_string).is_empty());

    let mut not_a_time = clusters.clone();
    not_a_time["items"][0]["connectionState"]["attemptedAt"] = json!("yesterday");
    assert!(!violations("v1alpha1ClusterList", Mode::Full, &not_a_time).is_empty());

    let apps = get(&fake, "/api/v1/applications", Some(&token)).await.json();
    assert_valid("apps", "v1alpha1ApplicationList", Mode::Full, &apps);
    let mut typo = apps.clone();
    typo["items"][0]["spec"]["destination"]["sever"] = json!("https://x");
    assert!(!violations("v1alpha1ApplicationList", Mode::Full, &typo).is_empty());
    let mut health_typo = apps.clone();
    health_typo["items"][0]["status"]["health"]["mesage"] = json!("x");
    assert!(!violations("v1alpha1ApplicationList", Mode::Projection, &health_typo).is_empty());
    let mut missing = apps.clone();
    missing["items"][0]["spec"].as_object_mut().expect("spec object").remove("project");
    assert!(!violations("v1alpha1ApplicationList", Mode::Full, &missing).is_empty());
    let mut null_name = apps;
    null_name["items"][0]["metadata"]["name"] = Value::Null;
    assert!(!violations("v1alpha1ApplicationList", Mode::Full, &null_name).is_empty());

    // The stream's wrapper is strict too.
    assert!(
        !violations(STREAM_RESULT, Mode::Projection, &json!({"result": {"type": "ADDED", "app": {}}}))
            .is_empty()
    );
    assert!(!violations(STREAM_RESULT, Mode::Full, &json!({"error": {"http_code": "401"}})).is_empty());

    let mut bad_error = json!({"error": "x", "code": "16", "message": "x"});
    assert!(!violations("runtimeError", Mode::Full, &bad_error).is_empty());
    bad_error["code"] = json!(16);
    bad_error["messages"] = json!("x");
    assert!(!violations("runtimeError", Mode::Full, &bad_error).is_empty());
}
