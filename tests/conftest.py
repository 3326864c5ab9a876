"""Shared fixtures: small generated datasets in CIFAR-100's on-disk format, one tiny demo study;
tests marked with a tool marker (`tex`) or an extra's marker (`optuna`, `tensorboard`, `mlflow`, `wandb`) skip
without the tool or the extra's packages, and fail without them in CI (HW_CI=1)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import DEMO, LONG_PATIENCE_S, ONE_THREAD, run_cli, stamps

from hw_hparams.data.fake import write_fake_cifar100

# Property tests judge results, never speed: no per-example deadline and no "too slow" health check,
# which a machine busy with other work would trip (a test's own @settings may add to this).
settings.register_profile("any_speed", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("any_speed")

#: Marker -> the programs its tests need on PATH (see pyproject.toml's markers).
TOOLS = {"tex": ("latexmk", "pdflatex", "pdftotext", "pdfinfo")}
#: Marker -> (the modules its tests need, the extra of pyproject.toml that installs them; .ci/run installs all).
EXTRAS = {
    "optuna": (("optuna", "optuna_dashboard"), "optuna"),
    "tensorboard": (("tensorboard",), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
    "wandb": (("wandb",), "wandb"),
}


@pytest.fixture(autouse=True)
def _no_hydra_job_left_over():
    """A test that runs a Hydra job in this process leaves Hydra's job config set; clear it after every
    test, so code that asks "am I under Hydra?" (job.record) answers the same in any test order."""
    yield
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().cfg = None


@pytest.fixture(autouse=True)
def _needs_tools(request):
    """Skip a marked test whose tools are missing, saying which; under HW_CI=1 fail it instead."""
    for marker, tools in TOOLS.items():
        if request.node.get_closest_marker(marker) is None:
            continue
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            reason = f"`{marker}` test needs {', '.join(missing)} on PATH"
            if os.environ.get("HW_CI") == "1":
                pytest.fail(f"{reason}, and CI (HW_CI=1) must run it: see .ci/install-tex.sh", pytrace=False)
            pytest.skip(reason)
    for marker, (modules, extra) in EXTRAS.items():
        if request.node.get_closest_marker(marker) is None:
            continue
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        if missing:
            reason = f'`{marker}` test needs {", ".join(missing)}: pip install -e ".[{extra}]"'
            if os.environ.get("HW_CI") == "1":
                pytest.fail(f"{reason}, and CI (HW_CI=1) must run it: install the `{extra}` extra", pytrace=False)
            pytest.skip(reason)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The tiny demo study run once, then the same command again (figures off): both outputs and the state between.
    One thread per process (ONE_THREAD), so that its runs are bitwise those of the same demo under other launchers."""
    cwd = tmp_path_factory.mktemp("homework")
    t0 = time.perf_counter()
    first = run_cli(DEMO, cwd, module="hw_hparams.homework", timeout=LONG_PATIENCE_S, env=ONE_THREAD)
    seconds = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr[-3000:]
    study = cwd / "outputs" / "t"
    before = stamps(study)
    report = (study / "report" / "report.md").read_text()
    again = run_cli(
        DEMO + ["figures=false"], cwd, module="hw_hparams.homework", timeout=LONG_PATIENCE_S, env=ONE_THREAD
    )
    assert again.returncode == 0, again.stderr[-3000:]
    print(f"demo study: {seconds:.1f} s")
    return {"study": study, "first": first, "again": again, "before": before, "report": report, "seconds": seconds}


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """600 training + 100 test images, 100 classes (val_size 100 leaves 500 for training)."""
    root = tmp_path_factory.mktemp("fake_cifar")
    write_fake_cifar100(root, train=600, test=100, seed=0)
    return root


@pytest.fixture(scope="session")
def small_root(tmp_path_factory) -> Path:
    """140 training + 20 test images (val_size 40 leaves 100 for training: support.small_cfg)."""
    root = tmp_path_factory.mktemp("small_cifar")
    write_fake_cifar100(root, train=140, test=20, seed=0)
    return root


@pytest.fixture(scope="session")
def learnable_root(tmp_path_factory) -> Path:
    """3000 training + 200 test images, for the learnability check."""
    root = tmp_path_factory.mktemp("learnable_cifar")
    write_fake_cifar100(root, train=3000, test=200, seed=1)
    return root
