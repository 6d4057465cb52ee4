//! `saga schemas list|fingerprint|check` as an operator runs it: no broker,
//! no database, only the schema files and the pinned fingerprints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn saga(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saga")).args(args).output().expect("run saga")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

/// A copy of `schemas/` to edit.
fn copy_of_schemas() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for area in ["order", "inventory", "payment"] {
        std::fs::create_dir_all(tmp.path().join(area)).expect("mkdir");
        for entry in std::fs::read_dir(schemas_dir().join(area)).expect("read area") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, tmp.path().join(area).join(path.file_name().expect("name"))).expect("copy");
        }
    }
    tmp
}

/// The `.avsc` files under `schemas/` (one per message and version).
fn schema_files() -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .expect("read schemas dir")
            .map(|e| e.expect("dir entry").path())
            .map(
                |p| {
                    if p.is_dir() {
                        count(&p)
                    } else {
                        usize::from(p.extension().is_some_and(|x| x == "avsc"))
                    }
                },
            )
            .sum()
    }
    count(&schemas_dir())
}

#[test]
fn list_prints_every_schema_with_version_fingerprint_and_canonical_form() {
    let out = saga(&["schemas", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), schema_files(), "{text}");
    // The figures fastavro computes for OrderCreated v2 (events/tests/data/reference-vectors.json).
    let v2 = text.lines().find(|l| l.starts_with("saga.order.OrderCreated v2 ")).expect("OrderCreated v2");
    assert!(v2.contains("fingerprint=7abd6aa2db3ba96b"), "{v2}");
    assert!(v2.ends_with(r#"{"name":"channel","type":"string"}]}"#), "{v2}");
    // Same answer from the files as from the compiled-in copies.
    let from_dir = saga(&["schemas", "list", "--dir", schemas_dir().to_str().expect("utf-8")]);
    assert_eq!(stdout(&from_dir), text);
}

#[test]
fn fingerprint_prints_the_pins_line_of_a_file() {
    let file = schemas_dir().join("order/OrderCreated.v1.avsc");
    let out = saga(&["schemas", "fingerprint", file.to_str().expect("utf-8")]);
    assert!(out.status.success());
    let pins = std::fs::read_to_string(schemas_dir().join("fingerprints.txt")).expect("pins");
    let line = stdout(&out);
    assert!(pins.lines().any(|l| l == line.trim_end()), "{line}");

    // Any schema, not only a message file.
    let tmp = tempfile::tempdir().expect("tempdir");
    let uuid = tmp.path().join("id.avsc");
    std::fs::write(&uuid, r#"{"type":"string","logicalType":"uuid"}"#).expect("write");
    let out = saga(&["schemas", "fingerprint", uuid.to_str().expect("utf-8")]);
    assert!(stdout(&out).ends_with(" c70345637248018f \"string\"\n"), "{}", stdout(&out));
}

#[test]
fn check_passes_on_the_published_schemas() {
    let out = saga(&["schemas", "check", schemas_dir().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let expected = format!("ok: {} schemas", schema_files());
    assert!(stdout(&out).starts_with(&expected), "{}", stdout(&out));
}

#[test]
fn check_fails_when_a_published_version_changes_meaning() {
    let tmp = copy_of_schemas();
    let file = tmp.path().join("payment/PaymentDeclined.v1.avsc");
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(&file, text.replace("timestamp-micros", "timestamp-millis")).expect("write");
    let out = saga(&["schemas", "check", tmp.path().to_str().expect("utf-8")]);
    assert!(!out.status.success(), "millis -> micros must fail the check");
    let text = stdout(&out);
    assert!(text.contains("MISMATCH saga.payment.PaymentDeclined v1 is published and frozen"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("MISMATCH")).count(), 1, "{text}");
}

#[test]
fn check_reports_a_new_unpinned_version_and_a_removed_one() {
    let tmp = copy_of_schemas();
    std::fs::remove_file(tmp.path().join("order/OrderRejected.v1.avsc")).expect("rm");
    let pins = tmp.path().join("pins.txt");
    let all = std::fs::read_to_string(schemas_dir().join("fingerprints.txt")).expect("pins");
    // Pins without OrderCreated v2: as if v2 were new.
    let without_v2: String = all
        .lines()
        .filter(|l| !l.starts_with("saga.order.OrderCreated 2 "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pins, without_v2).expect("write");
    let out = saga(&[
        "schemas",
        "check",
        tmp.path().to_str().expect("utf-8"),
        "--pins",
        pins.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("saga.order.OrderCreated v2 is not pinned yet; add to schemas/fingerprints.txt: saga.order.OrderCreated 2 7abd6aa2db3ba96b"), "{text}");
    assert!(
        text.contains("saga.order.OrderRejected v1 is published (pinned) but no schema file has it"),
        "{text}"
    );
}
