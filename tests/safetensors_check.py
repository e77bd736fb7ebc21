#!/usr/bin/env python3
"""An independent safetensors reader and writer for test_serialize, using only
the standard library (json, struct, zlib), so the C++ code is checked against
the format itself rather than against its own reading of it.

  safetensors_check.py read FILE   validates FILE as the reference
                                   implementation does and prints it:
      header <N>                     the header length
      metadata <key> <value>         one line per __metadata__ entry, sorted
      tensor <name> <dtype> <shape> <crc32> <values>
                                     one line per tensor, in data order; shape
                                     as 2x3 ("-" when 0-d), crc32 of the raw
                                     bytes in hex, values separated by commas
                                     ("-" when there are none, or for another
                                     dtype): F32/F64 as Python float reprs,
                                     I32/I64 as integers, BOOL as its raw
                                     bytes (0 and 1)
                                   and exits 1 with a message on stderr if the
                                   file is not valid.
  safetensors_check.py write FILE  writes the known tensors of KNOWN below.
"""
import json
import math
import struct
import sys
import zlib

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
         "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
         "I64": 8, "U64": 8, "F64": 8, "C64": 8}
FORMATS = {"F32": "f", "F64": "d", "I32": "i", "I64": "q", "BOOL": "B"}
FLOATS = ("F32", "F64")

# (name, dtype, shape, values), written in this data order; the header lists
# them in another order (sorted by name), as the reference implementation may.
KNOWN = [
    ("weight", "F32", [2, 3], [0.1, -2.5, 3.4028234663852886e38, 1.401298464324817e-45, -0.0, math.inf]),
    ("scalar", "F64", [], [math.pi]),
    ("empty", "F64", [0, 3], []),
    ("counts", "I32", [2], [7, -1]),
    ("column", "F64", [3, 1], [1e-300, -1.7976931348623157e308, 2.0 / 3.0]),
    ("steps", "I64", [3], [5, -1, 2**62 + 1]),
    ("mask", "BOOL", [2, 2], [1, 0, 0, 1]),
]
KNOWN_METADATA = {"format": "pt", "source": "safetensors_check.py"}


def fail(message):
    print("safetensors_check.py: " + message, file=sys.stderr)
    sys.exit(1)


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail("header length %d past the end of the file" % n)
    raw = blob[8:8 + n]
    if not raw.startswith(b"{"):
        fail("header does not start with '{'")
    header = json.loads(raw.decode("utf-8"))
    if not isinstance(header, dict):
        fail("header is not an object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("__metadata__ is not an object of strings")
    data = blob[8 + n:]

    entries = []
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SIZES:
            fail("unknown dtype %r" % dtype)
        if not all(isinstance(d, int) and d >= 0 for d in shape):
            fail("bad shape %r" % (shape,))
        if end - begin != math.prod(shape) * SIZES[dtype]:
            fail("%s: data_offsets do not match the shape" % name)
        entries.append((begin, end, name, dtype, shape))
    entries.sort()
    position = 0
    for begin, end, name, _, _ in entries:
        if begin != position:
            fail("%s: data_offsets %d, expected %d (gap or overlap)" % (name, begin, position))
        position = end
    if position != len(data):
        fail("the tensors take %d bytes, the data section has %d" % (position, len(data)))

    print("header %d" % n)
    for key in sorted(metadata):
        print("metadata %s %s" % (key, metadata[key]))
    for begin, end, name, dtype, shape in entries:
        chunk = data[begin:end]
        if dtype in FORMATS:
            count = len(chunk) // SIZES[dtype]
            values = struct.unpack("<%d%s" % (count, FORMATS[dtype]), chunk)
            values = ",".join(repr(float(v)) if dtype in FLOATS else str(v) for v in values) or "-"
        else:
            values = "-"
        dims = "x".join(str(d) for d in shape) or "-"
        print("tensor %s %s %s %08x %s" % (name, dtype, dims, zlib.crc32(chunk), values))


def write(path):
    data = b""
    header = {}
    for name, dtype, shape, values in KNOWN:
        chunk = struct.pack("<%d%s" % (len(values), FORMATS[dtype]), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(chunk)]}
        data += chunk
    header = dict(sorted(header.items()))
    header["__metadata__"] = KNOWN_METADATA
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        fail("usage: safetensors_check.py read|write FILE")
    (read if sys.argv[1] == "read" else write)(sys.argv[2])
