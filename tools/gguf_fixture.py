#!/usr/bin/env python3
"""Write a JSON description of a GGUF file, read with gguf-py, for lazyforge's reader tests.

Usage:

    python3 tools/gguf_fixture.py MODEL.gguf fixtures/smollm2_gguf.json

Requires the `gguf` Python package (`python3 -m pip install gguf`). The output is an
independent reference for `runtime/tests/gguf_smollm2.rs`, which opens the same model with
lazyforge's GGUF reader and compares every field:

- `version`, `alignment`, `data_offset` (absolute start of the tensor data), `file_size`,
  `tensor_count`, `kv_count`.
- `metadata`: every key in file order (gguf-py's own `GGUF.*` header pseudo-fields are
  skipped), with `type` named as lazyforge's `MetaType::name()` does (`u32`, `f32`,
  `string`, `array`, ...).
  - Scalars and strings carry `value` in full (floats as JSON numbers: the exact value
    of the stored f32/f64).
  - Arrays carry `element_type`, `length`, `offset` (absolute offset of the first
    element), `byte_len` (bytes of all elements), `first` and `last` (up to 5 elements
    each), and `sha256`: the SHA-256 (hex) of the elements' canonical text joined by
    "\\n" and encoded as UTF-8. An element's canonical text is: for a string, its JSON
    encoding without ASCII escaping (`json.dumps(s, ensure_ascii=False)`, which
    serde_json's `to_string` reproduces byte for byte); for an integer, its decimal
    digits; for a bool, `true` or `false`; for a float, the lower-case hex of its IEEE
    bits, 8 digits for f32 and 16 for f64 (so no float formatting is involved).
    Arrays of arrays are not produced by gguf-py's reader and are refused.
- `tensors`: in file order, `name`, `type` (ggml type name, e.g. `Q4_1`), `ne` (the
  dimensions as GGUF stores them, innermost first: lazyforge's `TensorInfo::shape` is the
  reverse), `offset` (absolute), `n_bytes`.
"""

import hashlib
import json
import os
import struct
import sys

import gguf

TYPE_NAMES = {
    gguf.GGUFValueType.UINT8: "u8",
    gguf.GGUFValueType.INT8: "i8",
    gguf.GGUFValueType.UINT16: "u16",
    gguf.GGUFValueType.INT16: "i16",
    gguf.GGUFValueType.UINT32: "u32",
    gguf.GGUFValueType.INT32: "i32",
    gguf.GGUFValueType.FLOAT32: "f32",
    gguf.GGUFValueType.BOOL: "bool",
    gguf.GGUFValueType.STRING: "string",
    gguf.GGUFValueType.ARRAY: "array",
    gguf.GGUFValueType.UINT64: "u64",
    gguf.GGUFValueType.INT64: "i64",
    gguf.GGUFValueType.FLOAT64: "f64",
}

# Key length, key bytes, value type, element type, array length: the parts gguf-py lists
# before an array's elements.
ARRAY_HEADER_PARTS = 5

PREVIEW = 5


def canonical(value, type_name):
    """The canonical text of one array element (see the module docstring)."""
    if type_name == "string":
        return json.dumps(value, ensure_ascii=False)
    if type_name == "bool":
        return "true" if value else "false"
    if type_name == "f32":
        return "%08x" % struct.unpack("<I", struct.pack("<f", value))[0]
    if type_name == "f64":
        return "%016x" % struct.unpack("<Q", struct.pack("<d", value))[0]
    return str(int(value))


def plain(value, type_name):
    """A JSON-friendly element value."""
    if type_name == "bool":
        return bool(value)
    if type_name in ("f32", "f64"):
        return float(value)
    if type_name == "string":
        return value
    return int(value)


def describe_field(field):
    """The fixture entry for one metadata field."""
    main = field.types[0]
    entry = {"key": field.name, "type": TYPE_NAMES[main]}
    if main != gguf.GGUFValueType.ARRAY:
        entry["value"] = plain(field.contents(), entry["type"])
        return entry
    if len(field.types) != 2:
        raise NotImplementedError(f"{field.name}: nested arrays are not described")
    elem = TYPE_NAMES[field.types[1]]
    values = field.contents()
    header_bytes = sum(p.nbytes for p in field.parts[:ARRAY_HEADER_PARTS])
    body_bytes = sum(p.nbytes for p in field.parts[ARRAY_HEADER_PARTS:])
    text = "\n".join(canonical(v, elem) for v in values)
    entry.update(
        {
            "element_type": elem,
            "length": len(values),
            "offset": field.offset + header_bytes,
            "byte_len": body_bytes,
            "first": [plain(v, elem) for v in values[:PREVIEW]],
            "last": [plain(v, elem) for v in values[-PREVIEW:]],
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }
    )
    return entry


def describe(path):
    """The whole fixture for the GGUF file at `path`."""
    reader = gguf.GGUFReader(path)
    fields = [f for name, f in reader.fields.items() if not name.startswith("GGUF.")]
    return {
        "source": os.path.basename(path),
        "file_size": os.path.getsize(path),
        "version": int(reader.fields["GGUF.version"].contents()),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "tensor_count": len(reader.tensors),
        "kv_count": len(fields),
        "metadata": [describe_field(f) for f in fields],
        "tensors": [
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "ne": [int(d) for d in t.shape],
                "offset": int(t.data_offset),
                "n_bytes": int(t.n_bytes),
            }
            for t in reader.tensors
        ],
    }


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    fixture = describe(argv[1])
    with open(argv[2], "w", encoding="utf-8") as out:
        json.dump(fixture, out, ensure_ascii=False, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main(sys.argv)
