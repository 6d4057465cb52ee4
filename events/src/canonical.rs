//! Parsing Canonical Form of an Avro schema, as the [specification] defines
//! it and as Java's `SchemaNormalization.toParsingForm` and fastavro's
//! `to_parsing_canonical_form` compute it.
//!
//! Written here, over the schema's JSON, rather than taken from apache-avro:
//! apache-avro 0.22 keeps `{"type":"string"}` for a primitive carrying a
//! `logicalType` (every uuid and timestamp field of ours), so its canonical
//! form, and the fingerprint over it, matched no other implementation. The
//! old fingerprint stays readable as [`legacy`](crate::fingerprint::legacy).
//!
//! The transformations, in the specification's words:
//! * **PRIMITIVES** — a primitive schema becomes its bare name, whatever
//!   attributes it has: `{"type":"string","logicalType":"uuid"}` → `"string"`.
//! * **FULLNAMES** — the `name` of records, enums and fixeds is replaced by
//!   its fullname (the enclosing or given namespace folded in), and so are
//!   references to them; `namespace` goes.
//! * **STRIP** — only `type`, `name`, `fields`, `symbols`, `items`, `values`
//!   and `size` stay (no `doc`, `aliases`, `default`, `order`, `logicalType`).
//! * **ORDER** — attributes in the order `name`, `type`, `fields`, `symbols`,
//!   `items`, `values`, `size`.
//! * **STRINGS** — escapes in string literals are replaced by the characters
//!   they stand for (a JSON parser does this; names are ASCII anyway).
//! * **INTEGERS** — no leading zeros, no quotes (`size`).
//! * **WHITESPACE** — none outside string literals.
//!
//! A named type written out once appears as its quoted fullname afterwards
//! (recursion, reuse), as in Java.
//!
//! [specification]: https://avro.apache.org/docs/1.12.0/specification/#parsing-canonical-form-for-schemas

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Why a schema has no canonical form (it is not a valid Avro schema).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid Avro schema: {reason}")]
pub struct CanonicalError {
    /// What was wrong, with the place in the schema.
    pub reason: String,
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

/// The Parsing Canonical Form of the schema in `text` (JSON).
pub fn parsing_canonical_form(text: &str) -> Result<String, CanonicalError> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| CanonicalError { reason: format!("not JSON: {e}") })?;
    canonical_form_of(&json)
}

/// The Parsing Canonical Form of an already parsed schema.
pub fn canonical_form_of(schema: &Value) -> Result<String, CanonicalError> {
    let mut out = String::with_capacity(256);
    Builder { defined: HashSet::new(), keep_logical: false }.schema(schema, "", &mut out)?;
    Ok(out)
}

/// The Parsing Canonical Form with the logical types kept (`logicalType`,
/// and `precision` and `scale` of decimals, after the other attributes).
///
/// Not a specification form and never on the wire: the published-versions
/// gate pins it beside the canonical form, because a change of logical type
/// (e.g. `timestamp-millis` → `timestamp-micros`) leaves the canonical form,
/// and so the fingerprint, unchanged while changing what the bytes mean.
pub fn logical_form(text: &str) -> Result<String, CanonicalError> {
    let json: Value =
        serde_json::from_str(text).map_err(|e| CanonicalError { reason: format!("not JSON: {e}") })?;
    let mut out = String::with_capacity(256);
    Builder { defined: HashSet::new(), keep_logical: true }.schema(&json, "", &mut out)?;
    Ok(out)
}

struct Builder {
    /// Fullnames of the named types written out so far.
    defined: HashSet<String>,
    /// Write logical types too ([`logical_form`]).
    keep_logical: bool,
}

/// `,"logicalType":"x"` (plus decimal's precision and scale), if any.
fn logical_attrs(attrs: &Map<String, Value>) -> Option<String> {
    let Some(Value::String(logical)) = attrs.get("logicalType") else { return None };
    let mut out = String::from(r#","logicalType":"#);
    out.push_str(&Value::String(logical.clone()).to_string());
    for key in ["precision", "scale"] {
        if let Some(n) = attrs.get(key).filter(|v| v.is_number()) {
            let _ = write!(out, r#","{key}":{n}"#);
        }
    }
    Some(out)
}

fn err<T>(reason: impl Into<String>) -> Result<T, CanonicalError> {
    Err(CanonicalError { reason: reason.into() })
}

impl Builder {
    fn schema(&mut self, schema: &Value, namespace: &str, out: &mut String) -> Result<(), CanonicalError> {
        match schema {
            Value::String(name) => self.named_or_primitive(name, namespace, out),
            Value::Array(branches) => {
                out.push('[');
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.schema(branch, namespace, out)?;
                }
                out.push(']');
                Ok(())
            }
            Value::Object(attrs) => self.object(attrs, namespace, out),
            other => err(format!("a schema is a string, an array or an object, not `{other}`")),
        }
    }

    /// A type name: a primitive, or a reference to a named type defined before.
    fn named_or_primitive(
        &mut self,
        name: &str,
        namespace: &str,
        out: &mut String,
    ) -> Result<(), CanonicalError> {
        if PRIMITIVES.contains(&name) {
            push_str(out, name);
            return Ok(());
        }
        let fullname = fullname(name, namespace)?;
        if !self.defined.contains(&fullname) {
            return err(format!("`{name}` is neither a primitive type nor a named type defined before"));
        }
        push_str(out, &fullname);
        Ok(())
    }

    fn object(
        &mut self,
        attrs: &Map<String, Value>,
        namespace: &str,
        out: &mut String,
    ) -> Result<(), CanonicalError> {
        let kind = match attrs.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            // `{"type": {...}}` or `{"type": [...]}`: the schema is the inner one.
            Some(inner @ (Value::Object(_) | Value::Array(_))) => return self.schema(inner, namespace, out),
            Some(other) => return err(format!("`type` must be a string, not `{other}`")),
            None => return err("an object schema needs a `type`"),
        };
        match kind {
            // PRIMITIVES: attributes (logicalType, precision, ...) do not count.
            k if PRIMITIVES.contains(&k) => {
                match logical_attrs(attrs).filter(|_| self.keep_logical) {
                    Some(logical) => {
                        out.push_str(r#"{"type":"#);
                        push_str(out, k);
                        out.push_str(&logical);
                        out.push('}');
                    }
                    None => push_str(out, k),
                }
                Ok(())
            }
            "array" => {
                out.push_str(r#"{"type":"array","items":"#);
                self.schema(required(attrs, "items", "array")?, namespace, out)?;
                out.push('}');
                Ok(())
            }
            "map" => {
                out.push_str(r#"{"type":"map","values":"#);
                self.schema(required(attrs, "values", "map")?, namespace, out)?;
                out.push('}');
                Ok(())
            }
            "record" | "error" | "enum" | "fixed" => self.named(kind, attrs, namespace, out),
            // `{"type": "Name"}`: a reference written as an object.
            other => self.named_or_primitive(other, namespace, out),
        }
    }

    fn named(
        &mut self,
        kind: &str,
        attrs: &Map<String, Value>,
        namespace: &str,
        out: &mut String,
    ) -> Result<(), CanonicalError> {
        let Some(Value::String(name)) = attrs.get("name") else {
            return err(format!("a {kind} needs a string `name`"));
        };
        let own_namespace = match attrs.get("namespace") {
            None | Some(Value::Null) => namespace,
            Some(Value::String(ns)) => ns.as_str(),
            Some(other) => return err(format!("`namespace` of {name} must be a string, not `{other}`")),
        };
        let fullname = fullname(name, own_namespace)?;
        if !self.defined.insert(fullname.clone()) {
            return err(format!("{fullname} is defined twice"));
        }
        // Names inside a named type are relative to its fullname's namespace.
        let inner_namespace = fullname.rsplit_once('.').map_or("", |(ns, _)| ns).to_owned();
        out.push_str(r#"{"name":"#);
        push_str(out, &fullname);
        match kind {
            "record" | "error" => {
                out.push_str(r#","type":"record","fields":["#);
                let Some(Value::Array(fields)) = attrs.get("fields") else {
                    return err(format!("record {fullname} needs a `fields` array"));
                };
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let Some(Value::String(field_name)) = field.get("name") else {
                        return err(format!("a field of {fullname} has no string `name`"));
                    };
                    check_name(field_name)?;
                    let Some(field_type) = field.get("type") else {
                        return err(format!("field {fullname}.{field_name} has no `type`"));
                    };
                    out.push_str(r#"{"name":"#);
                    push_str(out, field_name);
                    out.push_str(r#","type":"#);
                    self.schema(field_type, &inner_namespace, out)?;
                    out.push('}');
                }
                out.push_str("]}");
            }
            "enum" => {
                out.push_str(r#","type":"enum","symbols":["#);
                let Some(Value::Array(symbols)) = attrs.get("symbols") else {
                    return err(format!("enum {fullname} needs a `symbols` array"));
                };
                for (i, symbol) in symbols.iter().enumerate() {
                    let Value::String(symbol) = symbol else {
                        return err(format!("a symbol of {fullname} is not a string"));
                    };
                    check_name(symbol)?;
                    if i > 0 {
                        out.push(',');
                    }
                    push_str(out, symbol);
                }
                out.push_str("]}");
            }
            _ => {
                // INTEGERS: serde_json already dropped any leading zeros.
                let Some(size) = attrs.get("size").and_then(Value::as_u64) else {
                    return err(format!("fixed {fullname} needs a non-negative integer `size`"));
                };
                let _ = write!(out, r#","type":"fixed","size":{size}"#);
                if let Some(logical) = logical_attrs(attrs).filter(|_| self.keep_logical) {
                    out.push_str(&logical);
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

fn required<'a>(attrs: &'a Map<String, Value>, key: &str, kind: &str) -> Result<&'a Value, CanonicalError> {
    attrs.get(key).map_or_else(|| err(format!("an {kind} needs `{key}`")), Ok)
}

/// FULLNAMES: a dotted name is already full; otherwise the namespace is put
/// in front (an empty namespace is the null namespace).
fn fullname(name: &str, namespace: &str) -> Result<String, CanonicalError> {
    let full = if name.contains('.') || namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}.{name}")
    };
    for part in full.split('.') {
        check_name(part)?;
    }
    Ok(full)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: what the specification allows in names and
/// symbols (so none ever needs escaping in the canonical form).
fn check_name(name: &str) -> Result<(), CanonicalError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { err(format!("`{name}` is not a valid Avro name")) }
}

/// Appends `s` as a JSON string literal.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    out.push_str(s);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcf(text: &str) -> String {
        parsing_canonical_form(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn primitives_with_attributes_reduce_to_their_name() {
        assert_eq!(pcf(r#"{"type":"string","logicalType":"uuid"}"#), r#""string""#);
        assert_eq!(pcf(r#"{"type":"long","logicalType":"timestamp-micros"}"#), r#""long""#);
        assert_eq!(pcf(r#"{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}"#), r#""bytes""#);
    }

    #[test]
    fn logical_types_on_fixed_keep_only_name_type_size() {
        assert_eq!(
            pcf(r#"{"type":"fixed","name":"u","namespace":"a","size":16,"logicalType":"uuid"}"#),
            r#"{"name":"a.u","type":"fixed","size":16}"#
        );
    }

    #[test]
    fn nested_names_inherit_the_namespace_and_references_resolve() {
        let text = r#"{"type":"record","name":"R","namespace":"x.y","fields":[
            {"name":"a","type":{"type":"enum","name":"E","symbols":["A","B"]}},
            {"name":"b","type":"E"},
            {"name":"c","type":{"type":"record","name":"other.S","fields":[{"name":"d","type":"x.y.E"}]}},
            {"name":"e","type":{"type":"map","values":{"type":"array","items":"R"}}}
        ]}"#;
        assert_eq!(
            pcf(text),
            r#"{"name":"x.y.R","type":"record","fields":[{"name":"a","type":{"name":"x.y.E","type":"enum","symbols":["A","B"]}},{"name":"b","type":"x.y.E"},{"name":"c","type":{"name":"other.S","type":"record","fields":[{"name":"d","type":"x.y.E"}]}},{"name":"e","type":{"type":"map","values":{"type":"array","items":"x.y.R"}}}]}"#
        );
    }

    #[test]
    fn an_empty_namespace_is_the_null_namespace() {
        let text = r#"{"type":"record","name":"R","namespace":"x","fields":[
            {"name":"a","type":{"type":"fixed","name":"F","namespace":"","size":2}}]}"#;
        assert_eq!(
            pcf(text),
            r#"{"name":"x.R","type":"record","fields":[{"name":"a","type":{"name":"F","type":"fixed","size":2}}]}"#
        );
    }

    #[test]
    fn the_logical_form_keeps_what_the_canonical_form_drops() {
        let millis = r#"{"type":"record","name":"R","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
        let micros = millis.replace("millis", "micros");
        assert_eq!(pcf(millis), pcf(&micros));
        assert_ne!(logical_form(millis).expect("valid"), logical_form(&micros).expect("valid"));
        assert_eq!(
            logical_form(
                r#"{"type":"fixed","name":"d","size":8,"logicalType":"decimal","precision":18,"scale":4}"#
            )
            .expect("valid"),
            r#"{"name":"d","type":"fixed","size":8,"logicalType":"decimal","precision":18,"scale":4}"#
        );
        assert_eq!(logical_form(r#""long""#).expect("valid"), r#""long""#);
    }

    #[test]
    fn invalid_schemas_are_errors() {
        for text in [
            r#""Unknown""#,
            r#"{"type":"record","fields":[]}"#,
            r#"{"type":"fixed","name":"f","size":-1}"#,
            r#"{"type":"record","name":"a-b","fields":[]}"#,
            r#"{"type":"array"}"#,
            "42",
            "not json",
            r#"[{"type":"enum","name":"E","symbols":["A"]},{"type":"enum","name":"E","symbols":["B"]}]"#,
        ] {
            assert!(parsing_canonical_form(text).is_err(), "{text} should fail");
        }
    }
}
