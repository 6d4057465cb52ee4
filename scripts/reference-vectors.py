#!/usr/bin/env python3
"""Records what an independent Avro implementation (fastavro, which follows
Java's SchemaNormalization) computes for our schemas, as test data for
events/tests/vectors.rs.

    python3 scripts/reference-vectors.py            # rewrite events/tests/data/reference-vectors.json
    python3 scripts/reference-vectors.py --check    # fail if the file is stale

It also checks fastavro against the specification's own cases
(events/tests/data/schema-tests.txt), so the reference is known good.
"""
import json
import pathlib
import struct
import sys

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "events/tests/data/reference-vectors.json"

# Schemas beyond ours that exercise what ours do not: logical types on every
# carrier, nested namespaces, references, fixed and enum.
EXTRA = [
    {"type": "string", "logicalType": "uuid"},
    {"type": "long", "logicalType": "timestamp-micros"},
    {"type": "int", "logicalType": "date"},
    {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
    {"type": "fixed", "name": "Uuid", "namespace": "x", "size": 16, "logicalType": "uuid"},
    {"type": "fixed", "name": "Money", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 4},
    {"type": "array", "items": {"type": "long", "logicalType": "timestamp-millis"}, "default": []},
    {"type": "map", "values": ["null", {"type": "string", "logicalType": "uuid"}]},
    {
        "type": "record", "name": "Outer", "namespace": "a.b", "doc": "d", "aliases": ["O"],
        "fields": [
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"], "default": "RED"}},
            {"name": "again", "type": "Color", "order": "descending"},
            {"name": "inner", "type": {"type": "record", "name": "c.Inner", "fields": [
                {"name": "color", "type": "a.b.Color"},
                {"name": "self", "type": ["null", "c.Inner"], "default": None},
            ]}},
            {"name": "empty_ns", "type": {"type": "fixed", "name": "F", "namespace": "", "size": 4}},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}, "default": 0},
        ],
    },
]


def entry(schema):
    # Java does not validate defaults while parsing; spec case 026 has a
    # string default on a boolean field.
    canonical = to_parsing_canonical_form(parse_schema(schema, _ignore_default_error=True))
    hex_le = fingerprint(canonical, "CRC-64-AVRO")
    return {
        "canonical": canonical,
        # As in the single-object header (little-endian bytes), and as the
        # unsigned value of Java's parsingFingerprint64.
        "fingerprint_le_hex": hex_le,
        "fingerprint_u64": struct.unpack("<Q", bytes.fromhex(hex_le))[0],
    }


def spec_cases(path):
    """(input, canonical, fingerprint or None) from schema-tests.txt."""
    cases, current, lines, key = [], {}, iter(path.read_text().splitlines()), None
    for line in lines:
        if line.startswith("<<INPUT"):
            if current:
                cases.append(current)
            rest = line[len("<<INPUT"):].strip()
            if rest:
                current = {"input": rest}
            else:
                body = []
                for more in lines:
                    if more == "INPUT":
                        break
                    body.append(more)
                current = {"input": "\n".join(body)}
        elif line.startswith("<<canonical "):
            current["canonical"] = line[len("<<canonical "):]
        elif line.startswith("<<fingerprint "):
            current["fingerprint"] = int(line[len("<<fingerprint "):])
    if current:
        cases.append(current)
    return cases


def check_fastavro_against_spec():
    cases = spec_cases(ROOT / "events/tests/data/schema-tests.txt")
    assert len(cases) == 34, len(cases)
    for case in cases:
        got = entry(json.loads(case["input"]))
        assert got["canonical"] == case["canonical"], (case, got)
        if "fingerprint" in case:
            signed = struct.unpack("<q", bytes.fromhex(got["fingerprint_le_hex"]))[0]
            assert signed == case["fingerprint"], (case, got)
    return len(cases)


def main():
    n = check_fastavro_against_spec()
    files = sorted((ROOT / "schemas").rglob("*.avsc"))
    data = {
        "generator": "scripts/reference-vectors.py with fastavro "
        + __import__("fastavro").__version__,
        "schema_files": [
            {"file": str(f.relative_to(ROOT / "schemas")), **entry(json.loads(f.read_text()))}
            for f in files
        ],
        "extra": [{"schema": s, **entry(s)} for s in EXTRA],
    }
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run scripts/reference-vectors.py")
        print(f"ok: {len(files)} schema files, {len(EXTRA)} extra, {n} spec cases")
        return
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(files)} schema files, {len(EXTRA)} extra; fastavro passes {n} spec cases")


if __name__ == "__main__":
    main()
