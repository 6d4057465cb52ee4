//! The schema files, the embedded registry and the Rust types agree: every
//! `.avsc` in `schemas/` is embedded and has a Rust type, every Rust type has
//! its schema file, and every schema follows the conventions (namespace from
//! its folder, a `doc` on every record and field).
//!
//! Run: `cargo test -p events --test registry`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use events::codec::SchemaRegistry;
use events::messages::{self, ORDER_AGGREGATE};
use events::topics;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn avsc_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read schemas dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            avsc_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "avsc") {
            out.push(path);
        }
    }
}

type Ids = BTreeSet<(String, u32)>;

fn ids_of(registry: &SchemaRegistry) -> Ids {
    registry.schemas().iter().map(|s| (s.name.clone(), s.version)).collect()
}

#[test]
fn files_embedded_schemas_and_rust_types_are_the_same_set() {
    let on_disk = SchemaRegistry::from_dir(&schemas_dir()).expect("schemas/ loads");
    let embedded = SchemaRegistry::embedded();
    let types: Ids = messages::ALL.iter().map(|t| (t.name.to_owned(), t.version)).collect();
    assert_eq!(types.len(), messages::ALL.len(), "a type is listed twice in messages::ALL");

    let (disk, emb) = (ids_of(&on_disk), ids_of(embedded));
    let missing_embed: Vec<_> = disk.difference(&emb).collect();
    assert!(
        missing_embed.is_empty(),
        "add to EMBEDDED_SCHEMAS in events/src/messages/catalog.rs: {missing_embed:?}"
    );
    let stale_embed: Vec<_> = emb.difference(&disk).collect();
    assert!(stale_embed.is_empty(), "embedded but not in schemas/: {stale_embed:?}");
    let without_type: Vec<_> = disk.difference(&types).collect();
    assert!(
        without_type.is_empty(),
        "schema files without a Rust type in events::messages: {without_type:?}"
    );
    let without_schema: Vec<_> = types.difference(&disk).collect();
    assert!(without_schema.is_empty(), "Rust types without a schema file: {without_schema:?}");

    // Same text, not just the same names.
    for s in on_disk.schemas() {
        let e = embedded.lookup(&s.name, s.version).expect("checked above");
        assert_eq!(e.fingerprint, s.fingerprint, "{} differs from its embedded copy", s.label());
    }
}

#[test]
fn every_message_type_goes_to_its_areas_topic() {
    for t in messages::ALL {
        let allowed: &[&str] = match t.name.rsplit_once('.').map(|(ns, _)| ns) {
            Some("saga.order") => &[topics::ORDER_EVENTS],
            Some("saga.inventory") => &[topics::INVENTORY_COMMANDS, topics::INVENTORY_REPLIES],
            Some("saga.payment") => &[topics::PAYMENT_COMMANDS, topics::PAYMENT_REPLIES],
            other => panic!("{}: unexpected namespace {other:?}", t.name),
        };
        assert!(allowed.contains(&t.topic), "{} v{} goes to {}", t.name, t.version, t.topic);
        assert!(topics::ALL.contains(&t.topic));
    }
    assert_eq!(ORDER_AGGREGATE, "order");
}

/// Collects every record (and its fields) lacking a non-empty `doc`.
fn undocumented(json: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            if map.get("type").and_then(|t| t.as_str()) == Some("record") {
                let name = map.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                let here = format!("{path}{name}");
                if !has_doc(json) {
                    out.push(format!("record {here}"));
                }
                for f in map.get("fields").and_then(|f| f.as_array()).into_iter().flatten() {
                    let field = f.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                    if !has_doc(f) {
                        out.push(format!("field {here}.{field}"));
                    }
                    undocumented(&f["type"], &format!("{here}.{field}/"), out);
                }
            } else {
                for v in map.values() {
                    undocumented(v, path, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| undocumented(v, path, out)),
        _ => {}
    }
}

fn has_doc(json: &serde_json::Value) -> bool {
    json.get("doc").and_then(|d| d.as_str()).is_some_and(|d| !d.trim().is_empty())
}

#[test]
fn every_schema_has_its_folders_namespace_and_docs_everywhere() {
    let mut files = Vec::new();
    avsc_files(&schemas_dir(), &mut files);
    assert!(files.len() >= 16, "expected the saga's schemas, found {}", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let folder = file.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("?");
        let rel = file.strip_prefix(schemas_dir()).unwrap_or(file).display().to_string();
        if json["namespace"] != format!("saga.{folder}") {
            problems.push(format!("{rel}: namespace {} is not saga.{folder}", json["namespace"]));
        }
        let mut missing = Vec::new();
        undocumented(&json, "", &mut missing);
        problems.extend(missing.into_iter().map(|m| format!("{rel}: {m} has no doc")));
    }
    assert!(problems.is_empty(), "schema conventions broken:\n  {}", problems.join("\n  "));
}

#[test]
fn the_doc_check_finds_a_missing_field_doc() {
    let json = serde_json::json!({"type": "record", "name": "R", "doc": "r", "fields": [
        {"name": "a", "type": "string", "doc": "a"},
        {"name": "b", "type": {"type": "array", "items":
            {"type": "record", "name": "Inner", "doc": "i", "fields": [{"name": "c", "type": "int"}]}}, "doc": "b"},
    ]});
    let mut missing = Vec::new();
    undocumented(&json, "", &mut missing);
    assert_eq!(missing, vec!["field R.b/Inner.c".to_owned()]);
}

#[test]
fn ids_and_timestamps_use_the_logical_types() {
    // order_id is a uuid string and every *_at field a timestamp-micros long,
    // in every schema (what the Rust adapters assume).
    for s in SchemaRegistry::embedded().schemas() {
        let apache_avro::Schema::Record(record) = &s.schema else { panic!("{} is a record", s.label()) };
        for f in &record.fields {
            if f.name.ends_with("_id") {
                let ok = match &f.schema {
                    apache_avro::Schema::Uuid(_) => true,
                    apache_avro::Schema::Union(u) => {
                        u.variants().iter().any(|v| matches!(v, apache_avro::Schema::Uuid(_)))
                    }
                    _ => false,
                };
                assert!(ok, "{}.{} is not a uuid", s.label(), f.name);
            }
            if f.name.ends_with("_at") {
                assert!(
                    matches!(f.schema, apache_avro::Schema::TimestampMicros),
                    "{}.{} is not timestamp-micros",
                    s.label(),
                    f.name
                );
            }
        }
        assert!(record.fields.iter().any(|f| f.name == "order_id"), "{} has no order_id", s.label());
    }
}
