"""The SLURM cluster a test module needs (`pytestmark = pytest.mark.usefixtures("cluster")`): skipped
without one, with the reason; under HW_CI=1 (.ci/run) a missing cluster fails them. Its one node is
held by one test module at a time, whichever pytest-xdist worker runs it (a lock in the session's shared
folder): a module's time limits, rendezvous and slot counts assume no other test's jobs on the node."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess

import pytest
from support import shared_folder

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
def cluster(tmp_path_factory):
    problem = _cluster_problem()
    if problem and os.environ.get("HW_CI") == "1":
        pytest.fail(f"HW_CI=1 needs a SLURM cluster: {problem}", pytrace=False)
    if problem:
        pytest.skip(problem)
    with open(shared_folder(tmp_path_factory) / "slurm-node.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
