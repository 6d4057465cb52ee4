//! The compatibility gate: every version of every message in `schemas/` must
//! be readable by every other version of it, in both directions (Avro
//! "full transitive" compatibility). Producers and consumers are deployed
//! independently, so at any moment an old reader may meet new data and a new
//! reader old data; a schema change that fails here would break one of them.
//!
//! Only [`Compatibility::Full`] passes: `Partial` (an enum symbol or union
//! branch one side lacks) means some values would fail at runtime.
//!
//! Run: `cargo test -p events --test compatibility`.

use std::path::Path;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use events::codec::{SchemaInfo, SchemaRegistry};

/// Checks every ordered pair (writer, reader) among `versions` (all versions
/// of one message); returns one line per broken direction.
fn gate(versions: &[&SchemaInfo]) -> Vec<String> {
    let mut problems = Vec::new();
    for writer in versions {
        for reader in versions {
            if writer.version == reader.version {
                continue;
            }
            let verdict = match SchemaCompatibility::can_read(&writer.schema, &reader.schema) {
                Ok(Compatibility::Full) => continue,
                Ok(Compatibility::Partial) => {
                    "only partially: some values would fail to resolve (enum symbols or union \
                     branches missing on the reader side)"
                        .to_owned()
                }
                Err(e) => e.to_string(),
            };
            problems.push(format!(
                "{name}: a v{r} reader cannot read v{w} data: {verdict}. \
                 Add a default to new fields, never remove a field without a default, never \
                 change a field's type; or publish the change as a new message name.",
                name = writer.name,
                r = reader.version,
                w = writer.version,
            ));
        }
    }
    problems
}

/// Runs the gate over a whole registry; returns (pairs checked, problems).
fn gate_registry(registry: &SchemaRegistry) -> (usize, Vec<String>) {
    let mut names: Vec<&str> = registry.schemas().iter().map(|s| s.name.as_str()).collect();
    names.dedup();
    let mut pairs = 0;
    let mut problems = Vec::new();
    for name in names {
        let versions = registry.versions(name);
        pairs += versions.len() * versions.len().saturating_sub(1);
        problems.extend(gate(&versions));
    }
    (pairs, problems)
}

fn schemas_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

#[test]
fn every_version_of_every_message_reads_every_other() {
    let registry = SchemaRegistry::from_dir(&schemas_dir()).expect("schemas/ loads");
    let (pairs, problems) = gate_registry(&registry);
    assert!(problems.is_empty(), "schema compatibility broken:\n  {}", problems.join("\n  "));
    // Not vacuous: OrderCreated v1 <-> v2 is checked both ways.
    assert!(pairs >= 2, "expected at least the OrderCreated v1/v2 pair, checked {pairs}");
}

/// Builds an OrderCreated variant from the real v1 file, changed by `edit`.
fn variant_of_v1(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let text = std::fs::read_to_string(schemas_dir().join("order/OrderCreated.v1.avsc")).expect("read v1");
    let mut json: serde_json::Value = serde_json::from_str(&text).expect("json");
    edit(&mut json);
    json.to_string()
}

fn fields(json: &mut serde_json::Value) -> &mut Vec<serde_json::Value> {
    json["fields"].as_array_mut().expect("fields array")
}

fn registry_with_v2(v2: &str) -> SchemaRegistry {
    let v1 = std::fs::read_to_string(schemas_dir().join("order/OrderCreated.v1.avsc")).expect("read v1");
    SchemaRegistry::from_sources([("OrderCreated.v1.avsc", v1.as_str()), ("OrderCreated.v2.avsc", v2)])
        .expect("both parse")
}

#[test]
fn the_gate_catches_a_new_field_without_default() {
    let v2 = variant_of_v1(|j| {
        fields(j).push(serde_json::json!({"name": "channel", "type": "string", "doc": "no default"}))
    });
    let (_, problems) = gate_registry(&registry_with_v2(&v2));
    // Old data lacks `channel` and there is no default: v2 cannot read v1.
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("saga.order.OrderCreated: a v2 reader cannot read v1 data"),
        "{}",
        problems[0]
    );
}

#[test]
fn the_gate_catches_a_removed_field_without_default() {
    let v2 = variant_of_v1(|j| fields(j).retain(|f| f["name"] != "currency"));
    let (_, problems) = gate_registry(&registry_with_v2(&v2));
    // New data lacks `currency`, which v1 readers need: v1 cannot read v2.
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("a v1 reader cannot read v2 data"), "{}", problems[0]);
}

#[test]
fn the_gate_catches_a_changed_field_type() {
    let v2 = variant_of_v1(|j| {
        for f in fields(j).iter_mut() {
            if f["name"] == "currency" {
                f["type"] = serde_json::json!("int");
            }
        }
    });
    let (_, problems) = gate_registry(&registry_with_v2(&v2));
    assert_eq!(problems.len(), 2, "string <-> int breaks both directions: {problems:#?}");
}

#[test]
fn the_gate_accepts_the_shipped_evolution_and_a_new_optional_field() {
    let v2 = variant_of_v1(|j| {
        fields(j).push(serde_json::json!({
            "name": "coupon", "type": ["null", "string"], "default": null, "doc": "optional"
        }))
    });
    let (pairs, problems) = gate_registry(&registry_with_v2(&v2));
    assert_eq!((pairs, problems), (2, Vec::<String>::new()));
}

#[test]
fn a_partial_match_is_not_enough() {
    // A union that gained a branch: old readers fail on values of the new branch.
    let writer = r#"{"type":"record","name":"R","fields":[{"name":"x","type":["null","string","long"]}]}"#;
    let reader = r#"{"type":"record","name":"R","fields":[{"name":"x","type":["null","string"]}]}"#;
    let info = |version, text: &str| SchemaInfo::new("R".into(), version, text).expect("valid schema");
    let (old, new) = (info(1, reader), info(2, writer));
    assert_eq!(SchemaCompatibility::can_read(&new.schema, &old.schema).ok(), Some(Compatibility::Partial));
    let problems = gate(&[&old, &new]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("a v1 reader cannot read v2 data: only partially"), "{}", problems[0]);
}

// ---- Published versions are frozen -----------------------------------------
//
// `schemas/fingerprints.txt` pins the canonical form of every published
// version. Editing a published file so that its canonical form changes (a
// type, a field, a name — anything but docs, defaults, order or aliases)
// fails here: such a change is a new version.

use events::pinned::{PinProblem, PinnedSet};

fn pins_file() -> String {
    std::fs::read_to_string(schemas_dir().join("fingerprints.txt")).expect("read schemas/fingerprints.txt")
}

#[test]
fn every_published_version_is_pinned_and_unchanged() {
    let pins = PinnedSet::parse(&pins_file()).expect("pins parse");
    let registry = SchemaRegistry::from_dir(&schemas_dir()).expect("schemas/ loads");
    let problems: Vec<String> = pins.check(&registry).iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "published schemas changed:\n  {}", problems.join("\n  "));
    assert_eq!(pins.pins().count(), registry.len());
    // The copy compiled into the crate (what `saga schemas check` uses) is the file.
    assert_eq!(events::pinned::EMBEDDED_PINS, pins_file());
}

#[test]
fn the_frozen_gate_catches_an_edit_of_a_published_version() {
    // millis -> micros: the same Avro type (long) read with another meaning.
    // Resolution and the canonical form (so the fingerprint) do not see it;
    // the pinned logical fingerprint does. Then a type change and a rename.
    let pins = PinnedSet::parse(&pins_file()).expect("pins parse");
    let edits: [fn(&mut serde_json::Value); 3] = [
        |j| {
            for f in fields(j).iter_mut() {
                if f["name"] == "created_at" {
                    f["type"]["logicalType"] = serde_json::json!("timestamp-millis");
                }
            }
        },
        |j| {
            for f in fields(j).iter_mut() {
                if f["name"] == "total_minor" {
                    f["type"] = serde_json::json!("int");
                }
            }
        },
        |j| fields(j)[0]["name"] = serde_json::json!("id"),
    ];
    for edit in edits {
        let v1 = variant_of_v1(edit);
        let v2 = std::fs::read_to_string(schemas_dir().join("order/OrderCreated.v2.avsc")).expect("read v2");
        let registry = SchemaRegistry::from_sources([
            ("OrderCreated.v1.avsc", v1.as_str()),
            ("OrderCreated.v2.avsc", v2.as_str()),
        ])
        .expect("parse");
        let problems = pins.check(&registry);
        assert!(
            problems.iter().any(
                |p| matches!(p, PinProblem::Changed { label, .. } if label == "saga.order.OrderCreated v1")
            ),
            "{problems:?}"
        );
    }
}

#[test]
fn doc_only_edits_pass_and_new_or_removed_versions_are_reported() {
    let pins = PinnedSet::parse(&pins_file()).expect("pins parse");
    let v1 = variant_of_v1(|j| j["doc"] = serde_json::json!("reworded"));
    let v3 = variant_of_v1(|j| {
        fields(j).push(serde_json::json!({"name": "note", "type": "string", "default": "", "doc": "d"}))
    });
    let registry = SchemaRegistry::from_sources([
        ("OrderCreated.v1.avsc", v1.as_str()),
        ("OrderCreated.v3.avsc", v3.as_str()),
    ])
    .expect("parse");
    let problems = pins.check(&registry);
    // v1 unchanged (docs only); v3 new; v2 and every other message gone.
    assert!(!problems.iter().any(|p| matches!(p, PinProblem::Changed { .. })), "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, PinProblem::Unpinned { label, .. } if label.ends_with("OrderCreated v3")))
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, PinProblem::Missing { label } if label.ends_with("OrderCreated v2")))
    );
}
