//! Tests only: `docs/openapi.yaml` and `docs/result-codes.md` agree with the code.

use std::collections::BTreeSet;

use serde_norway::Value;
use storage::ledger::ResultCode;

use crate::router::RouteId;

/// HTTP methods an OpenAPI path item may hold as operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn docs_file(name: &str) -> String {
    let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn spec() -> Value {
    serde_norway::from_str(&docs_file("openapi.yaml")).expect("docs/openapi.yaml is valid YAML")
}

/// Every (method in lower case, path template) the spec describes.
fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_mapping().expect("the spec has a `paths` mapping");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let path = path.as_str().expect("path keys are strings");
        let item = item.as_mapping().expect("a path item is a mapping");
        for key in item.keys().filter_map(Value::as_str) {
            if METHODS.contains(&key) {
                operations.insert((key.to_owned(), path.to_owned()));
            }
        }
    }
    operations
}

fn route_operations() -> BTreeSet<(String, String)> {
    RouteId::ALL
        .iter()
        .map(|route| {
            let (method, template) = route.template();
            (method.to_ascii_lowercase(), template.to_owned())
        })
        .collect()
}

fn result_code_names() -> BTreeSet<&'static str> {
    ResultCode::ALL.iter().map(|code| code.as_str()).collect()
}

#[test]
fn every_route_is_in_the_spec() {
    let documented = spec_operations(&spec());
    let missing: Vec<_> = route_operations().difference(&documented).cloned().collect();
    assert!(missing.is_empty(), "routes missing from docs/openapi.yaml: {missing:?}");
}

#[test]
fn every_spec_operation_is_a_route() {
    let routes = route_operations();
    let extra: Vec<_> = spec_operations(&spec()).difference(&routes).cloned().collect();
    assert!(extra.is_empty(), "docs/openapi.yaml describes routes the router lacks: {extra:?}");
}

#[test]
fn result_code_enum_matches_the_ledger() {
    let spec = spec();
    let values = spec["components"]["schemas"]["ResultCode"]["enum"]
        .as_sequence()
        .expect("components.schemas.ResultCode.enum is a list");
    let documented: Vec<&str> =
        values.iter().map(|value| value.as_str().expect("enum values are strings")).collect();
    let unique: BTreeSet<&str> = documented.iter().copied().collect();
    assert_eq!(unique.len(), documented.len(), "ResultCode.enum has duplicates");
    let names = result_code_names();
    let missing: Vec<_> = names.difference(&unique).collect();
    let extra: Vec<_> = unique.difference(&names).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "ResultCode.enum in docs/openapi.yaml lacks {missing:?} and has unknown {extra:?}",
    );
}

/// Each code has a table row starting with its name and stored number.
#[test]
fn every_result_code_is_in_result_codes_md() {
    let text = docs_file("result-codes.md");
    let missing: Vec<&str> = ResultCode::ALL
        .iter()
        .filter(|code| !text.contains(&format!("| `{}` | {} |", code.as_str(), **code as u8)))
        .map(|code| code.as_str())
        .collect();
    assert!(missing.is_empty(), "result codes missing from docs/result-codes.md: {missing:?}");
}
