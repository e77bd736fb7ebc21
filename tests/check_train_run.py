#!/usr/bin/env python3
"""Checks what a short tapegrad-train run left in its output directory:
learning happened (loss fell, accuracy well above chance) and every file is
there and readable. Usage: check_train_run.py RUN_DIR"""
import json
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def fail(message):
    print("check_train_run: " + message)
    sys.exit(1)


run = Path(sys.argv[1])
metrics = json.loads((run / "metrics.json").read_text())
epochs = metrics["epochs"]
if len(epochs) < 2:
    fail(f"expected at least 2 epochs in metrics.json, found {len(epochs)}")
for e in epochs:
    for key in ("train_loss", "test_loss", "test_accuracy", "seconds"):
        if not isinstance(e.get(key), (int, float)):
            fail(f"epoch {e.get('epoch')}: '{key}' missing or not a number")
    if not 0.0 <= e["test_accuracy"] <= 1.0:
        fail(f"test_accuracy {e['test_accuracy']} is not a fraction")
if not epochs[-1]["train_loss"] < epochs[0]["train_loss"]:
    fail(f"train loss did not fall: {epochs[0]['train_loss']} -> {epochs[-1]['train_loss']}")
steps = [s["train_loss"] for s in metrics["steps"]]
if len(steps) >= 2 and not steps[-1] < steps[0]:
    fail(f"the logged step losses did not fall: {steps[0]} -> {steps[-1]}")
if not epochs[-1]["test_accuracy"] > 0.6:  # chance is 0.1
    fail(f"test accuracy {epochs[-1]['test_accuracy']} is not well above chance")
if not epochs[-1]["seconds"] > epochs[0]["seconds"] > 0:
    fail("'seconds' must grow from epoch to epoch")

png = (run / "filters.png").read_bytes()
if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
    fail("filters.png is not a PNG")
width, height, depth, color_type = struct.unpack(">IIBB", png[16:26])
# Two banks side by side, each 8 filters wide, 14 pixels per weight (and grid lines).
if width < 2 * 8 * 5 * 14 or not height < width or (depth, color_type) != (8, 2):
    fail(f"filters.png is {width}x{height} (depth {depth}, colour type {color_type}), expected an 8-bit RGB picture "
         "of two banks of 32 5x5 filters side by side, 14 pixels per weight")

svg = ET.parse(run / "curves.svg").getroot()
if not svg.tag.endswith("svg") or len(svg.findall("{http://www.w3.org/2000/svg}polyline")) != 3:
    fail("curves.svg should be an SVG with three curves")

model = (run / "model.safetensors").read_bytes()
(header_len,) = struct.unpack("<Q", model[:8])
header = json.loads(model[8 : 8 + header_len])
if "features.0.weight" not in header or header["features.0.weight"]["shape"] != [32, 1, 5, 5]:
    fail("model.safetensors lacks features.0.weight of shape [32, 1, 5, 5]")
if not {"input_shape", "mean", "std", "classes"} <= set(header.get("__metadata__", {})):
    fail(f"model.safetensors' __metadata__ lacks what a reader needs: {header.get('__metadata__')}")
if not (run / "checkpoint" / "checkpoint.json").exists():
    fail("the run left no checkpoint")

print(f"check_train_run: {len(epochs)} epochs, train loss {epochs[0]['train_loss']:.3f} -> "
      f"{epochs[-1]['train_loss']:.3f}, test accuracy {epochs[-1]['test_accuracy']:.3f}; files readable")
