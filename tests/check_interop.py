#!/usr/bin/env python3
"""Moves the Fashion-MNIST model between tapegrad and PyTorch and compares
their logits (within 1e-5), one direction per CTest test:

  check_interop.py to_torch   INTEROP MODEL DATA_DIR SCRATCH
      tapegrad's trained MODEL, loaded into the same network written in
      PyTorch (tests/torch_interop.py compare).
  check_interop.py from_torch INTEROP MODEL DATA_DIR SCRATCH
      a PyTorch model with random weights and running statistics
      (torch_interop.py export), loaded by tapegrad (INTEROP compare).

INTEROP is the interop_logits program; MODEL (from tapegrad-train) provides
the inputs, normalized as its metadata says. PyTorch runs under
/usr/bin/python3 (Debian's python3-torch); without it the test exits 77,
which CTest reports as skipped."""
import shutil
import subprocess
import sys
from pathlib import Path

TORCH_PYTHON = "/usr/bin/python3"
SKIP = 77
DIRECTION, INTEROP, MODEL, DATA, SCRATCH = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])
TORCH_INTEROP = str(Path(__file__).with_name("torch_interop.py"))


def run(*args):
    print("$ " + " ".join(map(str, args)), flush=True)
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600)
    print(result.stdout + result.stderr, end="", flush=True)
    if result.returncode == SKIP:
        print("SKIPPED: PyTorch is not available to " + TORCH_PYTHON)
        sys.exit(SKIP)
    if result.returncode != 0:
        print(f"check_interop {DIRECTION}: failed with exit code {result.returncode}")
        sys.exit(1)
    return result


if not Path(TORCH_PYTHON).exists():
    print(f"SKIPPED: {TORCH_PYTHON} is missing, so is PyTorch")
    sys.exit(SKIP)
shutil.rmtree(SCRATCH, ignore_errors=True)
SCRATCH.mkdir(parents=True)
inputs, logits = SCRATCH / "inputs.safetensors", SCRATCH / "tapegrad_logits.safetensors"
run(INTEROP, "logits", MODEL, DATA, 64, inputs, logits)
if DIRECTION == "to_torch":
    out = run(TORCH_PYTHON, TORCH_INTEROP, "compare", MODEL, inputs, logits).stdout
    for key in ("input_shape", "mean", "std", "classes"):  # what a PyTorch user reads from the file
        if key + "=" not in out:
            print(f"check_interop to_torch: the model file's metadata lacks {key!r}")
            sys.exit(1)
elif DIRECTION == "from_torch":
    torch_model, torch_logits = SCRATCH / "torch_model.safetensors", SCRATCH / "torch_logits.safetensors"
    run(TORCH_PYTHON, TORCH_INTEROP, "export", 7, inputs, torch_model, torch_logits)
    run(INTEROP, "compare", torch_model, inputs, torch_logits)
else:
    print(f"check_interop: unknown direction {DIRECTION!r}: to_torch or from_torch")
    sys.exit(2)
print(f"check_interop {DIRECTION}: ok")
