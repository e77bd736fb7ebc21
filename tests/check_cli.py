#!/usr/bin/env python3
"""Checks how tapegrad-train and tapegrad-eval treat bad options, bad data,
unusable output paths and a broken model: exit codes, messages, and which
files and directories are left behind.

Usage: check_cli.py CASE TRAIN EVAL SCRATCH_DIR
Each CASE is one CTest test (cli_CASE). SCRATCH_DIR is emptied first. The
training runs are tiny (64 images, one epoch: about a second each)."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

CASE, TRAIN, EVAL, SCRATCH = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
TINY = ["--limit", "64", "--epochs", "1"]
OUTPUTS = {"model.safetensors", "filters.png", "curves.svg", "metrics.json", "checkpoint"}
STARTED = "Fashion-MNIST from"  # the trainer's first line once its data has loaded and passed the checks


def fail(message):
    print(f"check_cli {CASE}: {message}")
    sys.exit(1)


def run(program, *args):
    result = subprocess.run([program, *map(str, args)], capture_output=True, text=True, timeout=300)
    print(f"$ {Path(program).name} {' '.join(map(str, args))}  -> {result.returncode}\n{result.stderr}", end="")
    return result


def expect_failure(program, args, *phrases, early=True):
    """Runs a command that must fail with a message holding every phrase;
    when early, before the trainer reports its data (so before any training)."""
    result = run(program, *args)
    if result.returncode == 0:
        fail(f"{args} should fail but exited 0")
    for phrase in phrases:
        if phrase not in result.stderr:
            fail(f"{args}: the message {result.stderr!r} lacks {phrase!r}")
    if early and STARTED in result.stdout:
        fail(f"{args}: should fail before training, but it got as far as:\n{result.stdout}")
    return result


def expect_success(program, *args):
    result = run(program, *args)
    if result.returncode != 0:
        fail(f"{args} failed with {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


def train_tiny(out):
    expect_success(TRAIN, *TINY, "--out", out)
    return out / "model.safetensors"


def write_idx(path, header, data):
    with gzip.open(path, "wb") as f:  # gzipped, as the real dataset ships
        f.write(header + data)


def make_dataset(directory, side):
    """Ten side x side images and ten labels, for training and for testing."""
    directory.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", struct.pack(">BBBBIII", 0, 0, 8, 3, 10, side, side),
                  bytes(10 * side * side))
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", struct.pack(">BBBBI", 0, 0, 8, 1, 10), bytes(range(10)))


def set_tensor(model, name, value):
    """Overwrites every element of an F32 tensor of a safetensors file."""
    data = bytearray(model.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    begin, end = json.loads(data[8 : 8 + header_len])[name]["data_offsets"]
    start = 8 + header_len
    data[start + begin : start + end] = struct.pack("<f", value) * ((end - begin) // 4)
    model.write_bytes(bytes(data))


# ---- the cases -----------------------------------------------------------------


def negative_numbers():
    # strtoull turned "-5" into 18446744073709551611: --limit -5 trained on everything.
    out = SCRATCH / "never"
    for args in (["--limit", "-5"], ["--limit=-5"], ["--seed", "-1"]):
        expect_failure(TRAIN, args + ["--out", out], args[0].split("=")[0] + ": must be a non-negative integer")
    expect_failure(TRAIN, ["--batch-size", "-5", "--out", out], "--batch-size: must be an integer in [1, 60000], got -5")
    expect_failure(EVAL, ["--limit", "-5"], "--limit: must be a non-negative integer, got -5")
    if out.exists():
        fail("a rejected command line created its output directory")


def lr_range():
    # NaN passed the range check; the bounds were printed as 0.000000 to 10.000000.
    for value in ("nan", "inf", "-inf", "0", "1e-10", "11"):
        result = expect_failure(TRAIN, ["--lr", value, "--out", SCRATCH / "never"],
                                f"--lr: must be a finite number in [1e-09, 10], got {value}")
        if "0.000000" in result.stderr:
            fail("the range is printed with %f")


def help_defaults():
    train_help = expect_success(TRAIN, "--help").stdout
    for expected in ("--epochs INT:in [1, 1000]=3", "=64", "--lr FLOAT:in [1e-09, 10]=0.002", "=adam",
                     "--out TEXT=runs/train", "=/usr/share/datasets/fashion-mnist", "--limit UINT:NONNEGATIVE=0"):
        if expected not in train_help:
            fail(f"tapegrad-train --help lacks {expected!r}:\n{train_help}")
    eval_help = expect_success(EVAL, "--help").stdout
    for expected in ("=runs/demo/model.safetensors", "--limit UINT:NONNEGATIVE=0", "NaN or infinite"):
        if expected not in eval_help:
            fail(f"tapegrad-eval --help lacks {expected!r}:\n{eval_help}")


def image_shape():
    # 32x32 images failed deep inside conv2d, in the first batch.
    data = SCRATCH / "data32"
    make_dataset(data, 32)
    expected = f"{data}/train-images-idx3-ubyte.gz: the images are 32x32, but the model expects 28x28"
    expect_failure(TRAIN, ["--data", data, "--out", SCRATCH / "run"], expected)
    model = train_tiny(SCRATCH / "tiny")
    expect_failure(EVAL, ["--data", data, "--model", model],
                   f"{data}/t10k-images-idx3-ubyte.gz: the images are 32x32, but the model expects 28x28")


def output_dir():
    # An unusable --out was found only after the whole run.
    a_file = SCRATCH / "a-file"
    a_file.write_text("not a directory")
    expect_failure(TRAIN, ["--out", a_file / "run"], f"--out {a_file}/run: cannot create the directory")
    expect_failure(TRAIN, ["--out", a_file], f"--out {a_file}: cannot create the directory")
    if os.geteuid() != 0:  # root writes anywhere
        locked = SCRATCH / "locked"
        locked.mkdir(mode=0o555)
        expect_failure(TRAIN, ["--out", locked], f"--out {locked} is not writable")
    else:
        print("(running as root: the read-only directory check is skipped)")

    # A failed run removes the directories it created, and only those.
    data = SCRATCH / "data32"
    make_dataset(data, 32)
    expect_failure(TRAIN, ["--data", data, "--out", SCRATCH / "new" / "deeper" / "run"], "32x32")
    if (SCRATCH / "new").exists():
        fail("the failed run left the output directories it created behind")
    kept = SCRATCH / "kept"
    kept.mkdir()
    (kept / "earlier.txt").write_text("from an earlier run")
    expect_failure(TRAIN, ["--data", data, "--out", kept], "32x32")
    if sorted(p.name for p in kept.iterdir()) != ["earlier.txt"]:
        fail("a failed run must leave a directory that existed as it was")

    # A run that succeeds leaves its outputs, and nothing else (no write probe).
    train_tiny(SCRATCH / "made" / "run")
    left = {p.name for p in (SCRATCH / "made" / "run").iterdir()}
    if left != OUTPUTS:
        fail(f"a successful run left {sorted(left)}, expected {sorted(OUTPUTS)}")


def write_failure():
    # Write errors were ignored: exit 0 and "Wrote ..." with files missing.
    taken = SCRATCH / "taken"
    (taken / "metrics.json").mkdir(parents=True)
    expect_failure(TRAIN, [*TINY, "--out", taken], f"cannot write {taken}/metrics.json: it is a directory")
    if not Path("/dev/full").exists():
        print("(no /dev/full: the full-disk checks are skipped)")
        return
    # /dev/full takes the open and fails every write with ENOSPC, as a full disk.
    for name in ("filters.png", "curves.svg", "metrics.json"):
        full = SCRATCH / ("full-" + name)
        full.mkdir()
        (full / name).symlink_to("/dev/full")
        result = expect_failure(TRAIN, [*TINY, "--out", full], f"cannot write {full}/{name}: No space left on device",
                                early=False)
        if "Wrote" in result.stdout:
            fail(f"says it wrote the outputs although {name} failed")
        # The last epoch's checkpoint was written before the failure: the trained model is not lost.
        if f"training finished; the trained model is kept in {full}/checkpoint/epoch-1.model.safetensors" \
                not in result.stderr:
            fail(f"a run that fails after its last checkpoint does not say where the model is:\n{result.stderr}")
        if not (full / "checkpoint" / "checkpoint.json").exists():
            fail("a run that failed after its checkpoint removed it")


def nonfinite_logits():
    # A model with NaN logits got an accuracy figure (every prediction class 0).
    model = train_tiny(SCRATCH / "tiny")
    if "accuracy" not in expect_success(EVAL, "--model", model, "--limit", 100).stdout:
        fail("a healthy model gets no accuracy")
    for value in (float("nan"), float("inf")):
        set_tensor(model, "classifier.3.bias", value)
        result = expect_failure(EVAL, ["--model", model, "--limit", 100],
                                f"{model}: the logits are NaN or infinite for 100 of 100 test images")
        if "accuracy" in result.stdout:
            fail(f"reported an accuracy for a model with {value} logits:\n{result.stdout}")


def resume():
    # A run stopped after its first epoch and resumed ends with the same model, byte for byte, as one never stopped.
    run_args = ["--limit", "320", "--epochs", "2", "--batch-size", "64"]
    whole, halves = SCRATCH / "whole", SCRATCH / "halves"
    expect_success(TRAIN, *run_args, "--out", whole)
    first = expect_success(TRAIN, *run_args, "--stop-after", "1", "--out", halves)
    if f"continue with: tapegrad-train --resume {halves}" not in first.stdout:
        fail(f"a stopped run does not say how to continue it:\n{first.stdout}")
    checkpoint = json.loads((halves / "checkpoint" / "checkpoint.json").read_text())
    if checkpoint["epoch"] != 1 or checkpoint["options"]["epochs"] != 2:
        fail(f"checkpoint.json after epoch 1 of 2 says {checkpoint['epoch']} of {checkpoint['options']['epochs']}")

    # Options that would change the result are refused, naming each difference; nothing is written.
    before = (halves / "model.safetensors").read_bytes()
    expect_failure(TRAIN, ["--resume", halves, "--lr", "0.01", "--epochs", "3"], "the options differ from the checkpoint's",
                   "--lr 0.01, but the run started with --lr 0.002", "--epochs 3, but the run started with --epochs 2")
    expect_failure(TRAIN, ["--resume", halves, "--seed", "5"], "--seed 5, but the run started with --seed 0")
    expect_failure(TRAIN, ["--resume", halves, "--out", SCRATCH / "elsewhere"], "excludes")
    expect_failure(TRAIN, ["--resume", SCRATCH], f"--resume {SCRATCH}: no checkpoint there")
    expect_failure(TRAIN, ["--resume", halves, "--stop-after", "1"], f"the run in {halves} has already finished epoch 1")
    other_data = SCRATCH / "data10"
    make_dataset(other_data, 28)
    expect_failure(TRAIN, ["--resume", halves, "--data", other_data],
                   f"the run trained on 320 images, but {other_data} gives 10", early=False)
    if (halves / "model.safetensors").read_bytes() != before:
        fail("a refused resume changed the model")

    # Options given again with the same values are fine.
    second = expect_success(TRAIN, "--resume", halves, "--lr", "0.002", "--threads", "1")
    if "Resuming" not in second.stdout or "epoch 2:" not in second.stdout or "epoch 1:" in second.stdout:
        fail(f"the resumed run should run epoch 2 only:\n{second.stdout}")
    if (halves / "model.safetensors").read_bytes() != (whole / "model.safetensors").read_bytes():
        fail("the resumed run's model.safetensors differs from the uninterrupted run's")
    if (halves / "checkpoint" / "epoch-2.optimizer.safetensors").read_bytes() != \
            (whole / "checkpoint" / "epoch-2.optimizer.safetensors").read_bytes():
        fail("the resumed run's optimizer state differs from the uninterrupted run's")
    if (halves / "checkpoint" / "epoch-1.model.safetensors").exists():
        fail("the previous epoch's checkpoint was not removed")
    metrics = json.loads((halves / "metrics.json").read_text())
    if [e["epoch"] for e in metrics["epochs"]] != [1, 2]:
        fail(f"the resumed run's metrics.json should hold epochs 1 and 2: {metrics['epochs']}")
    expect_failure(TRAIN, ["--resume", halves], "the run has finished all its 2 epochs; there is nothing to resume")
    print("the resumed run's model.safetensors equals the uninterrupted run's, byte for byte")


def metadata():
    # The model file says how to feed it; tapegrad-eval takes the normalization from there.
    model = train_tiny(SCRATCH / "tiny")
    data = model.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8 : 8 + header_len])["__metadata__"]
    expected = {"input_shape": [1, 28, 28], "mean": [0.286], "std": [0.353]}
    for key, value in expected.items():
        if json.loads(meta.get(key, "null")) != value:
            fail(f"__metadata__ {key} is {meta.get(key)!r}, expected {value}")
    classes = json.loads(meta["classes"])
    if len(classes) != 10 or classes[0] != "T-shirt/top" or classes[9] != "Ankle boot":
        fail(f"__metadata__ classes is {classes}")
    if "Normalization from the model file: mean 0.286, std 0.353" not in expect_success(EVAL, "--model", model, "--limit", 50).stdout:
        fail("tapegrad-eval does not take the normalization from the model file")

    # Another normalization in the file changes what eval feeds the network.
    patched = bytearray(data)
    text = data[8 : 8 + header_len].decode()
    changed = text.replace('"mean":"[0.286]"', '"mean":"[0.500]"').replace('"std":"[0.353]"', '"std":"[0.250]"')
    if len(changed) != len(text):
        fail("could not patch the metadata in place")
    patched[8 : 8 + header_len] = changed.encode()
    other = SCRATCH / "other.safetensors"
    other.write_bytes(bytes(patched))
    if "Normalization from the model file: mean 0.5, std 0.25" not in expect_success(EVAL, "--model", other, "--limit", 50).stdout:
        fail("tapegrad-eval ignored the normalization of the model file")


CASES = {f.__name__: f for f in (negative_numbers, lr_range, help_defaults, image_shape, output_dir, write_failure,
                                  nonfinite_logits, resume, metadata)}
if CASE not in CASES:
    fail(f"unknown case; the cases are {', '.join(CASES)}")
shutil.rmtree(SCRATCH, ignore_errors=True)
SCRATCH.mkdir(parents=True)
CASES[CASE]()
print(f"check_cli {CASE}: ok")
