//! Published schema versions are frozen: `schemas/fingerprints.txt` pins the
//! canonical form and fingerprints of every `NAME.vN.avsc`, and
//! [`PinnedSet::check`] reports any schema whose canonical form differs from
//! its pin (an edit that changes the wire meaning, e.g. millis → micros,
//! must be a new version), any pinned version whose file is gone, and any
//! version not pinned yet.
//!
//! File format, one line per version, fields separated by one space (the
//! canonical form has no whitespace), `#` starts a comment:
//!
//! ```text
//! saga.order.OrderCreated 1 a0d5881ddc1fa923 <legacy> <logical> {"name":"saga.order.OrderCreated",...}
//! ```
//!
//! Fingerprints are the 8 header bytes in hex (little-endian, as fastavro
//! prints them); `legacy` is the fingerprint written before this crate was
//! spec-conformant, which readers must keep accepting; `logical` is the
//! fingerprint of [`logical_form`](crate::canonical::logical_form), which
//! also sees a change of logical type (millis → micros).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::codec::{SchemaInfo, SchemaRegistry};

/// The pins of the schemas compiled into this crate (`schemas/fingerprints.txt`).
pub const EMBEDDED_PINS: &str = include_str!("../../schemas/fingerprints.txt");

/// One pinned version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Avro full name.
    pub name: String,
    /// Version.
    pub version: u32,
    /// Fingerprint (CRC-64-AVRO of the canonical form).
    pub fingerprint: u64,
    /// Legacy fingerprint.
    pub legacy_fingerprint: u64,
    /// Fingerprint of the logical form.
    pub logical_fingerprint: u64,
    /// Parsing Canonical Form.
    pub canonical_form: String,
}

/// Why a pins file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pins line {line}: {reason}")]
pub struct PinsError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// A difference between a registry and the pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinProblem {
    /// A published version's canonical form, or its logical types, changed.
    Changed {
        /// `name vN`.
        label: String,
        /// The pinned canonical form.
        pinned: String,
        /// The schema's canonical form now.
        now: String,
    },
    /// A pinned version has no schema any more.
    Missing {
        /// `name vN`.
        label: String,
    },
    /// A schema version without a pin (new: add its line).
    Unpinned {
        /// `name vN`.
        label: String,
        /// The line to add.
        line: String,
    },
}

impl std::fmt::Display for PinProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinProblem::Changed { label, pinned, now } => write!(
                f,
                "{label} is published and frozen, but its canonical form or a logical type \
                 changed (pinned {pinned}, now {now}); publish the change as a new version"
            ),
            PinProblem::Missing { label } => {
                write!(f, "{label} is published (pinned) but no schema file has it any more")
            }
            PinProblem::Unpinned { label, line } => {
                write!(f, "{label} is not pinned yet; add to schemas/fingerprints.txt: {line}")
            }
        }
    }
}

/// The pinned versions, by (name, version).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinnedSet {
    pins: BTreeMap<(String, u32), Pin>,
}

impl PinnedSet {
    /// The pins compiled into this crate.
    pub fn embedded() -> Result<Self, PinsError> {
        Self::parse(EMBEDDED_PINS)
    }

    /// Reads a pins file.
    pub fn parse(text: &str) -> Result<Self, PinsError> {
        let mut pins = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| PinsError { line: i + 1, reason: reason.to_owned() };
            let mut parts = line.splitn(6, ' ');
            let mut next = |what: &str| parts.next().ok_or_else(|| bad(&format!("no {what}")));
            let name = next("name")?.to_owned();
            let version = next("version")?.parse().map_err(|_| bad("version is not a number"))?;
            let fingerprint =
                parse_hex(next("fingerprint")?).ok_or_else(|| bad("fingerprint is not 16 hex digits"))?;
            let legacy_fingerprint =
                parse_hex(next("legacy fingerprint")?).ok_or_else(|| bad("legacy is not 16 hex digits"))?;
            let logical_fingerprint =
                parse_hex(next("logical fingerprint")?).ok_or_else(|| bad("logical is not 16 hex digits"))?;
            let canonical_form = next("canonical form")?.to_owned();
            let pin = Pin {
                name: name.clone(),
                version,
                fingerprint,
                legacy_fingerprint,
                logical_fingerprint,
                canonical_form,
            };
            if pins.insert((name, version), pin).is_some() {
                return Err(bad("version pinned twice"));
            }
        }
        Ok(PinnedSet { pins })
    }

    /// Every pin, by name then version.
    pub fn pins(&self) -> impl Iterator<Item = &Pin> {
        self.pins.values()
    }

    /// The pin of `name` `version`.
    pub fn get(&self, name: &str, version: u32) -> Option<&Pin> {
        self.pins.get(&(name.to_owned(), version))
    }

    /// Compares `registry` with the pins; empty when every schema is pinned
    /// unchanged and every pin has its schema.
    pub fn check(&self, registry: &SchemaRegistry) -> Vec<PinProblem> {
        let mut problems = Vec::new();
        for s in registry.schemas() {
            match self.get(&s.name, s.version) {
                None => problems.push(PinProblem::Unpinned { label: s.label(), line: pin_line(s) }),
                Some(pin) => {
                    if pin.canonical_form != s.canonical_form
                        || pin.fingerprint != s.fingerprint
                        || pin.legacy_fingerprint != s.legacy_fingerprint
                        || pin.logical_fingerprint != s.logical_fingerprint
                    {
                        problems.push(PinProblem::Changed {
                            label: s.label(),
                            pinned: pin.canonical_form.clone(),
                            now: s.canonical_form.clone(),
                        });
                    }
                }
            }
        }
        for pin in self.pins.values() {
            if registry.lookup(&pin.name, pin.version).is_none() {
                problems.push(PinProblem::Missing { label: format!("{} v{}", pin.name, pin.version) });
            }
        }
        problems
    }
}

/// The pins file line of `schema`.
pub fn pin_line(schema: &SchemaInfo) -> String {
    format!(
        "{} {} {} {} {} {}",
        schema.name,
        schema.version,
        hex(schema.fingerprint),
        hex(schema.legacy_fingerprint),
        hex(schema.logical_fingerprint),
        schema.canonical_form
    )
}

/// A whole pins file for `registry` (header comment included).
pub fn render(registry: &SchemaRegistry) -> String {
    let mut out = String::from(HEADER);
    for s in registry.schemas() {
        let _ = writeln!(out, "{}", pin_line(s));
    }
    out
}

const HEADER: &str = "\
# Published schema versions, frozen. One line per NAME.vN.avsc:
#   full-name version fingerprint legacy logical parsing-canonical-form
# Fingerprints are 8 bytes in hex, in header order (CRC-64-AVRO,
# little-endian, as fastavro prints them): `fingerprint` is what writers put
# in the single-object header; `legacy` what they wrote before it was
# spec-conformant (readers still accept it); `logical` covers the canonical
# form plus logical types (millis -> micros changes it). Never change a line:
# an edit that changes any of them is a new version. Add the line of a new
# version with `saga schemas fingerprint FILE`.
";

/// A fingerprint as the 8 header bytes in hex.
pub fn hex(fingerprint: u64) -> String {
    fingerprint.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The inverse of [`hex`].
pub fn parse_hex(text: &str) -> Option<u64> {
    if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok().map(u64::swap_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_the_header_byte_order() {
        assert_eq!(hex(0x8f01_4872_6345_03c7), "c70345637248018f");
        assert_eq!(parse_hex("c70345637248018f"), Some(0x8f01_4872_6345_03c7));
        assert_eq!(parse_hex("c7034563724801"), None);
        assert_eq!(parse_hex("+70345637248018f"), None);
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let err = PinnedSet::parse("# c\n\nsaga.X 1 zz").expect_err("bad");
        assert_eq!(err.line, 3);
    }
}
