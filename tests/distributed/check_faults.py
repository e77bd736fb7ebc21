#!/usr/bin/env python3
"""Checks that a failing rank ends a data-parallel job, with a message, and
never leaves it hanging; and that a program started without mpirun says so.

Usage: check_faults.py CASE FAULT_PROGRAM MPIRUN...
  throw      rank 1 reads a corrupt example at step 3 (fault.cpp)
  kill       rank 1 is killed by SIGKILL at step 3
  no_mpirun  the program run directly, without mpirun
Each run is given LIMIT seconds; one that takes longer has hung."""
import os
import subprocess
import sys
import time

CASE, PROGRAM, MPIRUN = sys.argv[1], sys.argv[2], sys.argv[3:]
LIMIT = 120  # the runs take about a second; the margin is for a loaded machine


def fail(message):
    print(f"check_faults {CASE}: {message}")
    sys.exit(1)


def run(command, env=None):
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT, env=env)
    except subprocess.TimeoutExpired:
        fail(f"{' '.join(command)} did not end within {LIMIT} s: a rank hangs")
    output = result.stdout + result.stderr
    print(f"$ {' '.join(command)}  -> exit {result.returncode} after {time.monotonic() - start:.1f} s\n{output}")
    return result.returncode, output


def expect(code, output, *phrases):
    if code == 0:
        fail("exited 0, but the job should have failed")
    for phrase in phrases:
        if phrase not in output:
            fail(f"the output does not say {phrase!r}")
    if "without a fault" in output:
        fail("a rank finished its training as if nothing had happened")


if CASE == "throw":
    code, output = run([*MPIRUN, PROGRAM, "throw"])
    expect(code, output, "rank 1: example", "of the shard is corrupt")
elif CASE == "kill":
    code, output = run([*MPIRUN, PROGRAM, "kill"])
    expect(code, output, "rank 1", "signal 9")
elif CASE == "no_mpirun":
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    code, output = run([PROGRAM, "throw"], env)
    expect(code, output, "distributed_fault: Environment: this process was not started by mpirun",
           "mpirun -np N")
else:
    fail("unknown case")
print(f"check_faults {CASE}: ok")
