"""The SLURM cluster a test module needs (`pytestmark = pytest.mark.usefixtures("cluster")`): skipped
without one, with the reason; under HW_CI=1 (.ci/run) a missing cluster fails them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

START = "sudo .ci/slurm-cluster.sh up"


def _cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs from here, or None."""
    for cmd in ("sinfo", "sbatch", "squeue", "scancel", "srun"):
        if shutil.which(cmd) is None:
            return f"no SLURM cluster: {cmd} is not on PATH (a local one: {START})"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return f"no SLURM cluster: sinfo did not answer in 120 s (a local one: {START})"
    if proc.returncode != 0:
        return (
            f"no SLURM cluster answers: {(proc.stderr.strip().splitlines() or ['sinfo failed'])[0]} "
            f"(a local one: {START})"
        )
    states = proc.stdout.split()
    if not any(s.rstrip("*~#!%$@^-") in ("idle", "mix", "alloc", "comp") for s in states):
        return f"no SLURM node takes jobs (sinfo says {', '.join(states) or 'no nodes'})"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem and os.environ.get("HW_CI") == "1":
        pytest.fail(f"HW_CI=1 needs a SLURM cluster: {problem}", pytrace=False)
    if problem:
        pytest.skip(problem)
