use serde_json::Value;

const CONTRACT: &str = include_str!("../../../tests/fixtures/qovery-argocd-mapping-openapi.yaml");

/// The contract's schemas, made strict: every object also forbids members it does not name,
/// so a misspelt or extra field fails instead of passing unnoticed.
fn strict_components() -> Value {
    let doc: Value = serde_yaml::from_str(CONTRACT).expect("contract parses");
    let mut components = doc["components"].clone();
    if let Some(schemas) = components["schemas"].as_object_mut() {
        for schema in schemas.values_mut() {
            if schema["type"] == "object" {
                schema["additionalProperties"] = Value::Bool(false);
            }
        }
    }
    components
}

/// Validator of `ArgoCdInstanceMappingResponseList`. Draft 2020-12 because OpenAPI 3.0's
/// `format: uuid` is only a known format from draft 2019-09 on; formats are asserted, and an
/// unknown format is an error rather than silently accepted.
pub(crate) fn validator() -> jsonschema::Validator {
    let schema = serde_json::json!({
        "$ref": "#/components/schemas/ArgoCdInstanceMappingResponseList",
        "components": strict_components(),
    });
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .build(&schema)
        .expect("contract schema compiles")
}

pub(crate) fn violations(body: &Value) -> Vec<String> {
    thread_local! {
        static V: jsonschema::Validator = validator();
    }
    V.with(|v| v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect())
}

#[track_caller]
pub(crate) fn assert_valid(body: &Value) {
    let errors = violations(body);
    assert!(errors.is_empty(), "body breaks the contract:\n  {}\nbody: {body:#}", errors.join("\n  "));
}
