//! `GET /api/v1/applications` bodies: list framing and the `fields=` projection, per release.
//!
//! Argo CD changed both over time (`pkg/apiclient/application/forwarder_overwrite.go`):
//! * <= v2.5: generic JSON path filtering (argoproj/pkg `processItem`), even of the list's
//!   own `metadata`.
//! * v2.6 .. v3.4: a fixed allow-list without any `spec.*` sub-key (`status.sourceHydrator`
//!   from v3.2), so `items.spec.destination` yields nothing; `items.spec` works.
//! * v3.5.x: `spec.*` sub-keys and `status.sync.revision` added; asking for `items.spec`
//!   together with an `items.spec.<x>` key fails depending on Go map order. The fake makes
//!   that failure deterministic.
//! * v3.6+ (master after v3.5.1): ancestors cover descendants, and the list is streamed
//!   item by item with a newline after `metadata` and after every item.
//!
//! Projected items are Go `map[string]any`, so their keys come out sorted, and a typed nil
//! (nil map/pointer/slice stored in the map) is still written, as `null`.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use crate::data::{WireApp, WireListMeta};

/// major.minor of the emulated Argo CD release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ServerVersion(pub u32, pub u32);

impl ServerVersion {
    /// What the snapshot of master after v3.5.1 behaves like.
    pub const MASTER: ServerVersion = ServerVersion(3, 6);

    /// Lenient like a client should be: strip `v`, cut at `+`/`-`, take major.minor.
    /// Anything unparseable is treated as the newest behaviour.
    pub fn parse(version: &str) -> ServerVersion {
        let core = version.trim().trim_start_matches('v');
        let core = core.split(['+', '-']).next().unwrap_or_default();
        let mut parts = core.split('.').map(str::parse::<u32>);
        match (parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor))) => ServerVersion(major, minor),
            _ => ServerVersion::MASTER,
        }
    }

    fn streams_list(self) -> bool {
        self >= ServerVersion::MASTER
    }
}

/// The `appFields` allow-list with the release each key appeared in.
const APP_FIELDS: &[(&str, ServerVersion)] = &[
    ("metadata.name", ServerVersion(2, 6)),
    ("metadata.namespace", ServerVersion(2, 6)),
    ("metadata.annotations", ServerVersion(2, 6)),
    ("metadata.labels", ServerVersion(2, 6)),
    ("metadata.creationTimestamp", ServerVersion(2, 6)),
    ("metadata.deletionTimestamp", ServerVersion(2, 6)),
    ("spec", ServerVersion(2, 6)),
    ("spec.destination", ServerVersion(3, 5)),
    ("spec.project", ServerVersion(3, 5)),
    ("spec.source", ServerVersion(3, 5)),
    ("spec.sources", ServerVersion(3, 5)),
    ("spec.sourceHydrator", ServerVersion(3, 5)),
    ("spec.syncPolicy", ServerVersion(3, 5)),
    ("status.sourceHydrator", ServerVersion(3, 2)),
    ("status.summary", ServerVersion(2, 6)),
    ("status.sync.status", ServerVersion(2, 6)),
    ("status.sync.revision", ServerVersion(3, 5)),
    ("status.health", ServerVersion(2, 6)),
    ("status.operationState.startedAt", ServerVersion(2, 6)),
    ("status.operationState.finishedAt", ServerVersion(2, 6)),
    ("status.resources", ServerVersion(2, 6)),
    ("operation.sync", ServerVersion(2, 6)),
    ("status.operationState.phase", ServerVersion(2, 6)),
    ("status.operationState.operation.sync", ServerVersion(2, 6)),
];

/// A parsed `fields` query value: `a,b,c` selects, `-a,b,c` excludes.
pub(crate) struct Selection {
    fields: HashSet<String>,
    exclude: bool,
}

impl Selection {
    /// `None` for an absent or empty value (no projection at all).
    pub fn parse(value: Option<&str>) -> Option<Selection> {
        let value = value.filter(|v| !v.is_empty())?;
        let (value, exclude) = match value.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (value, false),
        };
        Some(Selection { fields: value.split(',').map(str::to_owned).collect(), exclude })
    }
}

/// The list body, as the pieces the real server writes (one piece when it marshals in one go).
pub(crate) enum ListBody {
    Pieces(Vec<String>),
    /// v2.6..v3.5 field processor error: grpc-gateway then fails to marshal the error too and
    /// answers 500 with its fallback body.
    MarshalError,
}

/// Body of `GET /api/v1/applications` for `apps` (already filtered and sorted).
pub(crate) fn application_list(
    version: ServerVersion,
    resource_version: &str,
    apps: &[WireApp],
    fields: Option<&str>,
) -> ListBody {
    let selection = Selection::parse(fields);
    let meta = to_json(&WireListMeta { resource_version: Some(resource_version.to_owned()) });
    if version < ServerVersion(2, 6) {
        return ListBody::Pieces(vec![generic_list(&meta, apps, selection.as_ref())]);
    }
    let items: Vec<String> = match &selection {
        None => apps.iter().map(to_json).collect(),
        Some(sel) => {
            let keys = selected_keys(version, sel);
            match apps.iter().map(|a| project_app(a, &keys)).collect() {
                Ok(items) => items,
                Err(()) => return ListBody::MarshalError,
            }
        }
    };
    if version.streams_list() {
        // streamApplicationListJSON: json.Encoder adds "\n" after metadata and each item.
        let mut pieces = vec![format!("{{\"metadata\":{meta}\n")];
        if items.is_empty() {
            pieces.push(",\"items\":null}".to_owned());
        } else {
            pieces.push(",\"items\":[".to_owned());
            for (i, item) in items.iter().enumerate() {
                let sep = if i > 0 { "," } else { "" };
                pieces.push(format!("{sep}{item}\n"));
            }
            pieces.push("]}".to_owned());
        }
        return ListBody::Pieces(pieces);
    }
    let items = if items.is_empty() { "null".to_owned() } else { format!("[{}]", items.join(",")) };
    ListBody::Pieces(vec![if selection.is_some() {
        // map[string]any{"items":..., "metadata":...}: sorted keys.
        format!("{{\"items\":{items},\"metadata\":{meta}}}")
    } else {
        format!("{{\"metadata\":{meta},\"items\":{items}}}")
    }])
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("fake-argocd: wire types always serialise")
}

/// Allow-list keys the selection picks, in the order the fake writes them.
fn selected_keys(version: ServerVersion, sel: &Selection) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = APP_FIELDS
        .iter()
        .filter(|(_, since)| version >= *since)
        .map(|(key, _)| *key)
        .filter(|key| sel.fields.contains(&format!("items.{key}")) != sel.exclude)
        .collect();
    if version.streams_list() {
        // selectAppFields: a selected ancestor already covers its descendants.
        let chosen: HashSet<&str> = keys.iter().copied().collect();
        keys.retain(|key| {
            let parts: Vec<&str> = key.split('.').collect();
            !(1..parts.len()).any(|i| chosen.contains(parts[..i].join(".").as_str()))
        });
    }
    // Sorted, a parent precedes its children, so on <= v3.5 a parent+child pair always hits
    // the "is not a map" error (in Go it depends on map iteration order).
    keys.sort_unstable();
    keys
}

/// Value of one allow-list key as JSON. `None` is Go's untyped nil (key left out); `"null"` is
/// a typed nil (nil map/pointer/slice), which Go still writes.
fn app_field(app: &WireApp, key: &str) -> Option<String> {
    let json = match key {
        "metadata.name" => to_json(&app.metadata.name),
        "metadata.namespace" => to_json(&app.metadata.namespace),
        // The fake's apps have no labels/annotations and are not being deleted.
        "metadata.annotations" | "metadata.labels" | "metadata.deletionTimestamp" => "null".to_owned(),
        "metadata.creationTimestamp" => to_json(&app.metadata.creation_timestamp),
        "spec" => to_json(&app.spec),
        "spec.destination" => to_json(&app.spec.destination),
        "spec.project" => to_json(&app.spec.project),
        "spec.source" => to_json(&app.spec.source),
        "spec.sources" if app.spec.sources.is_empty() => "null".to_owned(),
        "spec.sources" => to_json(&app.spec.sources),
        "spec.sourceHydrator" | "spec.syncPolicy" => "null".to_owned(),
        "status.sourceHydrator" => to_json(&app.status.source_hydrator),
        "status.summary" => to_json(&app.status.summary),
        "status.sync.status" => to_json(&app.status.sync.status),
        "status.sync.revision" => to_json(&app.status.sync.revision.clone().unwrap_or_default()),
        "status.health" => to_json(&app.status.health),
        // operationState / operation are nil and resources empty: explicit untyped nil.
        _ => return None,
    };
    Some(json)
}

/// A Go `map[string]any` under construction.
enum Node {
    Map(BTreeMap<&'static str, Node>),
    Json(String),
}

fn project_app(app: &WireApp, keys: &[&'static str]) -> Result<String, ()> {
    let mut root = BTreeMap::new();
    for key in keys {
        let Some(value) = app_field(app, key) else {
            continue;
        };
        let parts: Vec<&'static str> = key.split('.').collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut map = &mut root;
        for part in parents {
            let node = map.entry(*part).or_insert_with(|| Node::Map(BTreeMap::new()));
            match node {
                Node::Map(inner) => map = inner,
                // "field %s is not a map"
                Node::Json(_) => return Err(()),
            }
        }
        map.insert(*last, Node::Json(value));
    }
    let mut out = String::new();
    write_map(&root, &mut out);
    Ok(out)
}

fn write_map(map: &BTreeMap<&'static str, Node>, out: &mut String) {
    out.push('{');
    for (i, (key, node)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&to_json(key));
        out.push(':');
        match node {
            Node::Map(inner) => write_map(inner, out),
            Node::Json(json) => out.push_str(json),
        }
    }
    out.push('}');
}

/// <= v2.5: `json.Marshal` the list, then argoproj/pkg `processItem` over the generic JSON.
fn generic_list(meta: &str, apps: &[WireApp], selection: Option<&Selection>) -> String {
    let items = if apps.is_empty() {
        "null".to_owned()
    } else {
        format!("[{}]", apps.iter().map(to_json).collect::<Vec<_>>().join(","))
    };
    let full = format!("{{\"metadata\":{meta},\"items\":{items}}}");
    let Some(sel) = selection else {
        return full;
    };
    let mut value: Value = serde_json::from_str(&full).expect("fake-argocd: own JSON parses");
    process_item(&mut Vec::new(), &mut value, sel);
    to_json(&value)
}

pub(crate) fn process_item(path: &mut Vec<String>, item: &mut Value, sel: &Selection) {
    match item {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                path.push(key.clone());
                let field_path = path.join(".");
                let path_in = sel.fields.contains(&field_path);
                // A plain string-prefix test, as in Go (so "items.spec" keeps "items.specX").
                let parent_in = path_in || sel.fields.iter().any(|f| f.starts_with(&field_path));
                let keep = if sel.exclude { !path_in } else { parent_in };
                if !keep {
                    map.remove(&key);
                } else if !path_in && let Some(child) = map.get_mut(&key) {
                    process_item(path, child, sel);
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            for child in items {
                process_item(path, child, sel);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{App, wire_app};

    fn apps() -> Vec<WireApp> {
        vec![
            wire_app(&App::to_name("a", "in-cluster"), 0),
            wire_app(&App::to_server("b", "https://x").as_multi_source(), 0),
        ]
    }

    fn body(version: &str, apps: &[WireApp], fields: Option<&str>) -> Option<Value> {
        match application_list(ServerVersion::parse(version), "7", apps, fields) {
            ListBody::Pieces(p) => Some(serde_json::from_str(&p.concat()).expect("valid JSON")),
            ListBody::MarshalError => None,
        }
    }

    #[test]
    fn parses_versions_leniently() {
        assert_eq!(ServerVersion::parse("v3.5.1+109ca7c"), ServerVersion(3, 5));
        assert_eq!(ServerVersion::parse("2.14.0-rc1"), ServerVersion(2, 14));
        assert_eq!(ServerVersion::parse("v3.6.0+abc.dirty"), ServerVersion(3, 6));
        assert_eq!(ServerVersion::parse("garbage"), ServerVersion::MASTER);
    }

    #[test]
    fn spec_destination_needs_v3_5() {
        let f = Some("items.metadata.name,items.spec.destination");
        let old = body("v3.4.2", &apps(), f).expect("ok");
        assert_eq!(old["items"][0], serde_json::json!({"metadata": {"name": "a"}}));
        let new = body("v3.5.1", &apps(), f).expect("ok");
        assert_eq!(new["items"][0]["spec"]["destination"]["name"], serde_json::json!("in-cluster"));
    }

    #[test]
    fn parent_and_child_fail_on_3_5_but_not_on_master() {
        let f = Some("items.spec,items.spec.destination");
        assert!(body("v3.5.1", &apps(), f).is_none());
        let master = body("v3.6.0", &apps(), f).expect("ok");
        assert_eq!(master["items"][0]["spec"]["project"], "default");
    }

    #[test]
    fn typed_nils_are_written_as_null() {
        let b = body("v3.5.1", &apps(), Some("items.spec.source,items.metadata.labels")).expect("ok");
        assert_eq!(b["items"][1]["spec"]["source"], Value::Null);
        assert_eq!(b["items"][0]["metadata"]["labels"], Value::Null);
        assert!(b["items"][0].get("operation").is_none());
    }

    #[test]
    fn empty_lists_have_null_items() {
        for v in ["v2.4.0", "v3.4.0", "v3.5.1", "v3.6.0"] {
            assert_eq!(body(v, &[], None).expect("ok")["items"], Value::Null, "{v}");
            let projected = body(v, &[], Some("items.metadata.name")).expect("ok");
            assert!(projected["items"].is_null(), "{v}");
        }
    }

    #[test]
    fn generic_filter_before_2_6_drops_list_metadata() {
        let b = body("v2.5.0", &apps(), Some("items.metadata.name,items.spec.destination")).expect("ok");
        assert!(b.get("metadata").is_none());
        assert_eq!(b["items"][0]["spec"]["destination"]["name"], "in-cluster");
        assert_eq!(b["items"][0]["metadata"], serde_json::json!({"name": "a"}));
        let excl = body("v2.5.0", &apps(), Some("-items.status")).expect("ok");
        assert!(excl["items"][0].get("status").is_none());
        assert!(excl["items"][0].get("spec").is_some());
        assert_eq!(excl["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn master_streams_with_newlines() {
        let ListBody::Pieces(p) = application_list(ServerVersion(3, 6), "7", &apps(), None) else {
            panic!("no error expected");
        };
        let text = p.concat();
        assert!(text.starts_with("{\"metadata\":{\"resourceVersion\":\"7\"}\n,\"items\":[{"));
        assert!(text.ends_with("}\n]}"));
    }
}
