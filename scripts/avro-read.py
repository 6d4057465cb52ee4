#!/usr/bin/env python3
"""An independent reader of the saga's payloads: fastavro (which follows the
Java reference), the .avsc files and the framing documented in
schemas/README.md — nothing of the Rust code.

    python3 scripts/avro-read.py SCHEMAS_DIR RECORDS_DIR [--registry-ids FILE] [--print]

Every file in RECORDS_DIR is one Kafka record value. Framing by first byte:

* C3 01 + 8-byte CRC-64-AVRO fingerprint (little-endian) of the writer
  schema's Parsing Canonical Form + Avro binary datum (single-object
  encoding). The fingerprint is computed here from the .avsc files.
* 00 + 4-byte big-endian schema id + datum (Confluent). Ids are looked up in
  --registry-ids, a JSON object {"<id>": "<schema file relative to SCHEMAS_DIR>"}.

A record counts as decoded when its writer schema is known, the datum reads
completely (no byte left over) and validates against the schema. Prints a
JSON summary on the last line; exits 1 if any record failed or none were
given.
"""
import argparse
import io
import json
import pathlib
import sys

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import validate


def load_schemas(root):
    by_fingerprint, by_file = {}, {}
    for path in sorted(root.rglob("*.avsc")):
        raw = json.loads(path.read_text())
        parsed = parse_schema(raw)
        fp = fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO")
        label = f'{parsed["name"]} ({path.relative_to(root)})'
        by_fingerprint[bytes.fromhex(fp)] = (label, parsed)
        by_file[str(path.relative_to(root))] = (label, parsed)
    return by_fingerprint, by_file


def writer_of(payload, by_fingerprint, by_id):
    if payload[:2] == b"\xc3\x01":
        if len(payload) < 10:
            raise ValueError(f"{len(payload)} bytes: shorter than the single-object header")
        fp = payload[2:10]
        if fp not in by_fingerprint:
            raise ValueError(f"unknown fingerprint {fp.hex()}")
        return by_fingerprint[fp], payload[10:]
    if payload[:1] == b"\x00":
        if len(payload) < 5:
            raise ValueError(f"{len(payload)} bytes: shorter than the Confluent header")
        schema_id = int.from_bytes(payload[1:5], "big")
        if schema_id not in by_id:
            raise ValueError(f"unknown schema id {schema_id}")
        return by_id[schema_id], payload[5:]
    raise ValueError(f"unknown framing: first byte {payload[:1].hex() or 'none'}")


def decode(payload, by_fingerprint, by_id):
    (label, schema), body = writer_of(payload, by_fingerprint, by_id)
    stream = io.BytesIO(body)
    value = schemaless_reader(stream, schema, None)
    left = len(body) - stream.tell()
    if left:
        raise ValueError(f"{left} bytes left after the datum of {label}")
    validate(value, schema, raise_errors=True)
    return label, value


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("schemas", type=pathlib.Path)
    parser.add_argument("records", type=pathlib.Path)
    parser.add_argument("--registry-ids", type=pathlib.Path)
    parser.add_argument("--print", action="store_true")
    args = parser.parse_args(argv)
    by_fingerprint, by_file = load_schemas(args.schemas)
    by_id = {}
    if args.registry_ids:
        by_id = {int(k): by_file[v] for k, v in json.loads(args.registry_ids.read_text()).items()}
    records = args.records
    decoded, failed, by_schema = 0, 0, {}
    for path in sorted(p for p in records.iterdir() if p.is_file()):
        try:
            label, value = decode(path.read_bytes(), by_fingerprint, by_id)
        except Exception as e:  # one line per failed record, keep going
            failed += 1
            print(f"FAILED {path.name}: {e}", file=sys.stderr)
            continue
        decoded += 1
        name = label.split(" ")[0]
        by_schema[name] = by_schema.get(name, 0) + 1
        if args.print:
            print(f"{path.name}: {label}: {value}")
    print(json.dumps({"schemas": len(by_fingerprint), "decoded": decoded, "failed": failed, "by_schema": by_schema}))
    return 1 if failed or not decoded else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
