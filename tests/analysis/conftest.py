"""Fixtures for tests/analysis: a synthetic study of run folders and the report written from it."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_synth import make_config, make_history, write_run


def pytest_configure(config):
    config.addinivalue_line("markers", "timing: wall-clock checks on large synthetic studies")


@pytest.fixture(scope="session")
def study(tmp_path_factory):
    """A study folder outputs/<study>/<section>/<job>/ with edge cases; returns its path."""
    root = tmp_path_factory.mktemp("outputs") / "hw"
    rng = np.random.default_rng(0)
    lr = root / "lr_sweep"
    for v in (0.5, 0.05, 0.01):
        cfg = make_config(lr=v)
        if v == 0.5:
            write_run(lr / f"optim.lr={v}", cfg, make_history(cfg, rng, 4, diverge_at=3), status="diverged")
        else:
            write_run(lr / f"optim.lr={v}", cfg, make_history(cfg, rng))
    sch = root / "schedule_sweep"
    cfg = make_config(schedule="constant", epochs=8)
    write_run(sch / "schedule=constant", cfg, make_history(cfg, rng))
    for seed in (0, 1, 2):
        cfg = make_config(schedule="cosine", epochs=8, seed=seed)
        write_run(sch / f"schedule=cosine,seed={seed}", cfg, make_history(cfg, rng))
    wd = root / "wd_sweep"
    for v in (5e-4, 1e-4):
        cfg = make_config(wd=v, schedule="cosine", eval_test=True)
        write_run(
            wd / f"wd={v}",
            cfg,
            make_history(cfg, rng),
            test={"loss": float(rng.uniform(1, 2)), "acc": float(rng.uniform(0.4, 0.6))},
        )
    mix = root / "mixup"
    cfg = make_config(mixup=0.2, schedule="cosine", wd=5e-4)
    write_run(mix / "mixup=0.2", cfg, make_history(cfg, rng))
    cfg = make_config(mixup=0.4, crop_flip=False)
    write_run(mix / "failed_run", cfg, [], status="failed")  # header-only history
    cfg = make_config(crop_flip=False)
    write_run(mix / "no_summary", cfg, make_history(cfg, rng), summary=False)
    return root


@pytest.fixture(scope="session")
def report(study, tmp_path_factory):
    """Output folder of `python -m analysis <study> --out ...` run through the Python API."""
    import analysis

    out = tmp_path_factory.mktemp("report")
    written = analysis.write_all([study], out)
    return out, written
