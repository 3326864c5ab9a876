"""Shared fixtures: small generated datasets in CIFAR-100's on-disk format, one tiny demo study;
tests marked with a tool marker (`tex`) or an extra's marker (`optuna`, `tensorboard`, `mlflow`, `wandb`) skip
without the tool or the extra's packages, and fail without them in CI (HW_CI=1).

In parallel (pytest-xdist, `-n auto --dist loadfile` in pyproject.toml's addopts): a test module runs whole on
one worker (its module fixtures are made once, its tests run one after another: the SLURM tests share the
cluster's node), each worker trains on one CPU thread (and so do the commands its tests start), and the
demo study is made once for all workers (`made_once`)."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import DEMO, LONG_PATIENCE_S, ONE_THREAD, run_cli, run_in_terminal, shared_folder, stamps

from hw_hparams.data.fake import write_fake_cifar100

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # Workers share the CPU cores: one thread each, in this process and in the commands its tests start (the
    # commands that compare runs bit for bit set one thread themselves, with or without workers).
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


# The modules that take longest (minutes of a worker: whole studies, SLURM's time limits, the kill harnesses), started
# first, one per worker, so that no worker is left alone with one at the end; the SLURM ones wait on the scheduler.
LONGEST = (
    "slurm/test_slurm.py",
    "study/test_study_graph.py",
    "train/test_fused.py",
    "trackers/test_trackers_reliability.py",
    "runs/test_terminal.py",
    "plugins/test_search_launchers.py",
    "engine/test_cuda_path.py",
    "engine/test_steps.py",
    "train/test_train_run.py",
    "train/test_reliability_kill.py",
    "bench/test_bench_search.py",
    "slurm/test_slurm_search.py",
    "slurm/test_requeue.py",
)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: a worker more than the CPU cores, since some tests wait (on SLURM's scheduler, a rendezvous, a
    slot of a search) and leave their core to the others."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(session, config, items) -> None:
    """The LONGEST modules first (xdist hands modules out in this order), the rest as collected."""
    first = {name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: first.get(Path(item.path).relative_to(Path(__file__).parent).as_posix(), len(first)))


def _make_once(base: Path, name: str, make) -> dict:
    """{"value": make(folder)} or {"error": why it failed}, made once per test session however many xdist workers
    (or threads) ask: the first to ask makes it in a folder they all share, under a file lock, while the others
    wait; then each reads it (JSON)."""
    result = base / f"{name}.json"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():  # a new folder each time: a maker that died may have left a part behind
            folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
            try:
                made = {"value": make(folder)}
            except BaseException as err:  # an assertion, a timeout: each test that asks fails with it
                made = {"error": f"making {folder} failed: {type(err).__name__}: {err}"}
            result.write_text(json.dumps(made))
    return json.loads(result.read_text())


def made_once(tmp_path_factory, name: str, make):
    """`make(folder)`'s JSON-able result, made once per test session (`_make_once`); fails the test if it failed."""
    made = _make_once(shared_folder(tmp_path_factory), name, make)
    if "error" in made:
        pytest.fail(made["error"], pytrace=False)
    return made["value"]


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


def _make_demo(cwd: Path) -> dict:
    """The README's quickstart in `cwd` as a person runs it, at a terminal with its bars (DEMO's sizes), then the same
    command again piped (figures off); what each printed, and the state between."""
    status, screen = run_in_terminal(
        [a for a in DEMO if a != "trainer.progress=false"],
        cwd,
        module="hw_hparams.homework",
        env=ONE_THREAD,
        timeout=LONG_PATIENCE_S,
    )
    assert status == 0, screen[-3000:]
    before = {str(p): t for p, t in stamps(cwd / "outputs" / "t").items()}
    report = (cwd / "outputs" / "t" / "report" / "report.md").read_text()
    again = run_cli(
        DEMO + ["figures=false"], cwd, module="hw_hparams.homework", timeout=LONG_PATIENCE_S, env=ONE_THREAD
    )
    assert again.returncode == 0, again.stderr[-3000:]
    printed = {"again": {"stdout": again.stdout, "stderr": again.stderr}}
    return {"cwd": str(cwd), "screen": screen, **printed, "before": before, "report": report}


@pytest.fixture(scope="session", autouse=True)
def _demo_starts_early(request, tmp_path_factory):
    """When any collected test asks for the demo study, start making it with the first test, beside the others (a
    thread that waits for its commands), so that the tests that ask for it seldom wait. Not a daemon: a worker whose
    tests end first finishes it for the others."""
    if any("demo" in getattr(item, "fixturenames", ()) for item in request.session.items):
        # the folder found here, in the main thread: pytest makes a worker's temporary folder on first use,
        # emptying it, so a first use in the thread could delete what a test's fixture has just written there
        base = shared_folder(tmp_path_factory)
        threading.Thread(target=_make_once, args=(base, "homework", _make_demo)).start()


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The tiny demo study run once at a terminal ("screen": all it wrote there), then the same command again piped
    (figures off; "again"), and the state between. One thread per process (ONE_THREAD), so that its runs are bitwise
    those of the same demo under other launchers. Made once for all workers (`made_once`): tests read it, and copy
    what they change."""
    made = made_once(tmp_path_factory, "homework", _make_demo)
    study = Path(made["cwd"]) / "outputs" / "t"
    return {
        "study": study,
        "screen": made["screen"],
        "again": subprocess.CompletedProcess(DEMO, 0, made["again"]["stdout"], made["again"]["stderr"]),
        "before": {Path(p): t for p, t in made["before"].items()},
        "report": made["report"],
    }


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """600 training + 100 test images, 100 classes (val_size 100 leaves 500 for training)."""
    root = tmp_path_factory.mktemp("fake_cifar")
    write_fake_cifar100(root, train=600, test=100, seed=0)
    return root


@pytest.fixture(scope="session")
def small_root(tmp_path_factory) -> Path:
    """140 training + 20 test images (support.small_data_overrides: 40 of them for validation, 100 for training)."""
    root = tmp_path_factory.mktemp("small_cifar")
    write_fake_cifar100(root, train=140, test=20, seed=0)
    return root


@pytest.fixture(scope="session")
def learnable_root(tmp_path_factory) -> Path:
    """3000 training + 200 test images, for the learnability check."""
    root = tmp_path_factory.mktemp("learnable_cifar")
    write_fake_cifar100(root, train=3000, test=200, seed=1)
    return root
