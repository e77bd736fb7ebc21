#!/usr/bin/env python3
"""Checks tapegrad-train --distributed under mpirun: only rank 0 prints and
writes, a run stopped and resumed ends with the model of one never stopped,
and bad uses are refused with a message naming the problem.

Usage: check_train.py CASE TRAIN SCRATCH_DIR MPIRUN...
  resume     two ranks, two epochs; the same stopped after one and resumed
  batch      a batch that does not divide between the two ranks
  no_mpirun  --distributed without mpirun
The runs are small (640 images, batch 64); each is given LIMIT seconds."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CASE, TRAIN, SCRATCH, MPIRUN = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
RUN = ["--distributed", "--limit", "640", "--epochs", "2"]  # batch 64, the default
LIMIT = 300


def fail(message):
    print(f"check_train {CASE}: {message}")
    sys.exit(1)


def run(command, env=None):
    try:
        result = subprocess.run([*map(str, command)], capture_output=True, text=True, timeout=LIMIT, env=env)
    except subprocess.TimeoutExpired:
        fail(f"{' '.join(map(str, command))} did not end within {LIMIT} s")
    print(f"$ {' '.join(map(str, command))}  -> exit {result.returncode}\n{result.stderr}", end="")
    return result


def expect_failure(command, *phrases, env=None):
    result = run(command, env)
    if result.returncode == 0:
        fail("exited 0, but should have failed")
    for phrase in phrases:
        if phrase not in result.stderr:
            fail(f"the message does not say {phrase!r}")


shutil.rmtree(SCRATCH, ignore_errors=True)
SCRATCH.mkdir(parents=True)
if CASE == "resume":
    whole, halves = SCRATCH / "whole", SCRATCH / "halves"
    result = run([*MPIRUN, TRAIN, *RUN, "--out", whole])
    if result.returncode != 0:
        fail("the distributed run failed")
    for line in ("Fashion-MNIST from", "Data-parallel on 2 processes, 32 images of each batch of 64", "epoch 2:"):
        if result.stdout.count(line) != 1:
            fail(f"{line!r} is printed {result.stdout.count(line)} times, expected once (by rank 0):\n{result.stdout}")
    metrics = json.loads((whole / "metrics.json").read_text())
    parameters = 455114  # FashionCNN's
    traffic = metrics["distributed"]
    if traffic["processes"] != 2 or traffic["all_reduce_bytes_per_step"] != 4 * parameters + 3 * 8:
        fail(f"metrics.json's traffic is not 2 processes all-reducing float32 gradients and 3 doubles: {traffic}")
    if run([*MPIRUN, TRAIN, *RUN, "--stop-after", "1", "--out", halves]).returncode != 0:
        fail("the run stopped after one epoch failed")
    resumed = run([*MPIRUN, TRAIN, "--distributed", "--resume", halves])
    if resumed.returncode != 0 or "Resuming" not in resumed.stdout:
        fail("the resumed run failed")
    if (whole / "model.safetensors").read_bytes() != (halves / "model.safetensors").read_bytes():
        fail("the stopped and resumed run ends with another model than the run never stopped")
elif CASE == "batch":
    out = SCRATCH / "out"
    expect_failure([*MPIRUN, TRAIN, *RUN, "--batch-size", "63", "--out", out],
                   "tapegrad-train: --batch-size 63 does not divide among 2 processes")
    if out.exists():
        fail(f"a refused run left {out}")
elif CASE == "no_mpirun":
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    expect_failure([TRAIN, *RUN, "--out", SCRATCH / "out"],
                   "tapegrad-train: --distributed: Environment: this process was not started by mpirun", env=env)
else:
    fail("unknown case")
print(f"check_train {CASE}: ok")
