"""Two run folders compared as the same run: their histories and their final networks (the fused and
the alone tests, tests/train/test_fused.py and tests/engine/test_cuda_path.py, hold runs to it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from support import read_rows, without_timing

from hw_hparams.runs.format import HISTORY_METRICS as METRICS


def parameters(run_dir: Path, running: bool) -> torch.Tensor:
    """Every trained parameter (or every BatchNorm running statistic) of a run's final network, as one vector."""
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]
    return torch.cat(
        [t.flatten().double() for n, t in state.items() if t.is_floating_point() and ("running" in n) == running]
    )


def assert_same_run(alone: Path, fused: Path, loss_rtol: float, images: int, param_rtol: float) -> None:
    """Histories agree (losses to `loss_rtol`, accuracies within `images` images, epochs and lrs exactly),
    and so do the final parameters (relative norm of the difference) and BatchNorm statistics (10x looser)."""
    a, b = without_timing(read_rows(alone / "history.csv")), without_timing(read_rows(fused / "history.csv"))
    assert len(a) == len(b) and [(r["epoch"], r["lr"]) for r in a] == [(r["epoch"], r["lr"]) for r in b]
    n_train = json.loads((alone / "data_stats.json").read_text())["sizes"]
    for ra, rb in zip(a, b):
        for key in METRICS:
            x, y = float(ra[key]), float(rb[key])
            if key.endswith("loss"):
                assert math.isclose(x, y, rel_tol=loss_rtol), (key, ra, rb)
            else:
                assert abs(x - y) <= images / n_train["train" if key.startswith("train") else "val"] + 1e-12, (
                    key,
                    ra,
                    rb,
                )
    for running, rtol in ((False, param_rtol), (True, 10 * param_rtol)):
        pa, pb = parameters(alone, running), parameters(fused, running)
        assert (pa - pb).norm() <= rtol * pa.norm(), (
            "running statistics" if running else "parameters",
            ((pa - pb).norm() / pa.norm()).item(),
        )
    assert (
        json.loads((fused / "summary.json").read_text())["status"]
        == json.loads((alone / "summary.json").read_text())["status"]
    )
