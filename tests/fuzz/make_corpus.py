#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus: small valid and near-valid files.

    make_corpus.py OUT_DIR

creates OUT_DIR/idx (IDX files, plain and gzip, for fuzz_idx), OUT_DIR/idx_gzip
(plain IDX contents, which fuzz_idx_gzip compresses itself) and
OUT_DIR/safetensors (for fuzz_safetensors, including files that match its
module). The same files every run: no randomness.
"""
import gzip
import json
import os
import struct
import sys


def idx(shape, data=None, type_byte=0x08, ndim=None):
    count = 1
    for s in shape:
        count *= s
    if data is None:
        data = bytes(i % 251 for i in range(count))
    header = bytes([0, 0, type_byte, len(shape) if ndim is None else ndim])
    return header + b"".join(struct.pack(">I", s) for s in shape) + data


def idx_seeds():
    valid = {
        "labels_1d": idx([10]),
        "images_3d": idx([2, 4, 4]),
        "batch_4d": idx([2, 1, 3, 3]),
        "empty_dim": idx([0, 28, 28]),
        "one_byte": idx([1]),
    }
    near = {
        "truncated_data": idx([2, 4, 4])[:-5],
        "trailing_data": idx([3]) + b"\x07",
        "truncated_header": idx([2, 4, 4])[:9],
        "float_type": idx([4], data=b"\0" * 16, type_byte=0x0D),
        "bad_type": idx([4], type_byte=0x42),
        "bad_magic": b"\x01\x00" + idx([4])[2:],
        "ndim_0": idx([], ndim=0),
        "ndim_5": idx([1, 1, 1, 1, 1]),
        "huge_sizes": idx([0xFFFFFFFF, 0xFFFFFFFF], data=b""),
        "large_declared": idx([60000, 28, 28], data=b"\x01" * 64),
    }
    return valid, near


def st(entries, data, metadata=None, pad=True):
    header = dict(entries)
    if metadata is not None:
        header = {"__metadata__": metadata, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tensors(spec, metadata=None):
    """spec: (name, dtype, shape, element bytes) in order; a valid file."""
    entries, data = [], b""
    for name, dtype, shape, blob in spec:
        entries.append((name, {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}))
        data += blob
    return st(entries, data, metadata)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def module_spec(dtype="F32"):
    pack = f32 if dtype == "F32" else (lambda *v: struct.pack("<%dd" % len(v), *v))
    return [
        ("0.weight", dtype, [3, 2], pack(0.1, -0.2, 0.3, -0.4, 0.5, -0.6)),
        ("0.bias", dtype, [3], pack(0.0, 1.0, -1.0)),
        ("1.weight", dtype, [3], pack(1.0, 1.0, 1.0)),
        ("1.bias", dtype, [3], pack(0.0, 0.0, 0.0)),
        ("1.running_mean", dtype, [3], pack(0.0, 0.5, -0.5)),
        ("1.running_var", dtype, [3], pack(1.0, 2.0, 3.0)),
        ("1.num_batches_tracked", "I64", [], struct.pack("<q", 7)),
    ]


def safetensors_seeds():
    valid = {
        "module_f32": tensors(module_spec("F32"), {"format": "pt"}),
        "module_f64": tensors(module_spec("F64")),
        "mixed_dtypes": tensors([
            ("b", "BOOL", [2, 2], bytes([0, 1, 1, 0])),
            ("i", "I64", [2], struct.pack("<2q", -3, 4)),
            ("h", "F16", [2], b"\x00\x3c\x00\xc0"),
            ("e", "F32", [0, 3], b""),
            ("s", "F32", [], f32(2.5)),
        ]),
        "empty": st([], b""),
    }
    module = module_spec("F32")
    near = {
        "wrong_shape": tensors([module[0]] + [("0.bias", "F32", [4], f32(0, 0, 0, 0))] + module[2:]),
        "missing_tensor": tensors(module[1:]),
        "bad_bool": tensors([("b", "BOOL", [2], bytes([0, 2]))]),
        "fraction_into_int64": tensors(module[:-1] + [("1.num_batches_tracked", "F32", [], f32(2.5))]),
        "gap": st([("a", {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})], b"\0" * 8),
        "overlap": st([("a", {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}),
                       ("b", {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})], b"\0" * 4),
        "truncated_data": tensors(module)[:-3],
        "trailing_data": tensors(module) + b"\0\0\0\0",
        "nested_shape": st([("a", {"dtype": "F32", "shape": [[[[1]]]], "data_offsets": [0, 4]})], b"\0" * 4),
        "huge_shape": st([("a", {"dtype": "F64", "shape": [2**31, 2**31, 2**31], "data_offsets": [0, 8]})], b"\0" * 8),
        "unknown_dtype": st([("a", {"dtype": "F12", "shape": [1], "data_offsets": [0, 4]})], b"\0" * 4),
        "length_past_end": struct.pack("<Q", 1 << 40) + b"{}",
        "short": b"\x08\0\0",
        "not_json": struct.pack("<Q", 8) + b"{\"a\":[1,",
    }
    return valid, near


def write(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(content)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    valid, near = idx_seeds()
    plain = {**valid, **near}
    write(os.path.join(out, "idx"), {**plain, **{n + ".gz": gzip.compress(c, mtime=0) for n, c in valid.items()},
                                     "truncated_gzip.gz": gzip.compress(valid["images_3d"], mtime=0)[:-6]})
    write(os.path.join(out, "idx_gzip"), plain)
    valid, near = safetensors_seeds()
    write(os.path.join(out, "safetensors"), {**valid, **near})


if __name__ == "__main__":
    main()
