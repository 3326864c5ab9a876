"""SIGKILL a CPU training run at many instants, re-run it each time, and check that nothing was lost or doubled.

    python tests/kill_harness.py [--kills 27] [--seed 0] [--epochs 4] [--spawn] [--workdir DIR]
        [--override KEY=VALUE ...]

A reference run trains without interruption (counting its optimizer steps, validation forwards,
file writes and renames). Then, round after round, a fresh run folder is trained by attempts that
are each SIGKILLed at a seeded random instant: the k-th optimizer step (inside an epoch), the k-th
validation forward, the k-th atomic file write (whole or truncated to half: checkpoint, history,
summary), the k-th rename (publishing a file, rotating the checkpoint), or a random wall-clock
delay from outside. Each attempt re-runs the same command until one completes. After every kill,
every file of the folder must parse and history.csv must be a prefix of the reference's; after a
completed round, history.csv must equal the reference's in every column but epoch_time_s
(exactly), epochs 1..E once each, summary.json `completed` with the reference's figures, the
checkpoint must load with the reference's weights bit for bit, and no temporary, lock or damaged
file may remain.

Attempts are forked from this process after it has imported what an attempt imports (torch, torchvision, Hydra, the
training command, the trackers named in `--override logger=...`; `--spawn`: each a fresh
`python tests/fault_inject.py ...`, slower), so the time goes to kills rather than imports.
Every process runs with OMP_NUM_THREADS=1, so runs are bitwise reproducible. Exit status 0 and a
JSON report as the last line of stdout when every check passed; an AssertionError otherwise.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HISTORY_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_time_s"]
# Kinds of kill: fault_inject sites (":checkpoint": only on checkpoint files), and a random delay from outside.
KINDS = [
    "step",
    "eval",
    "write",
    "write:checkpoint",
    "partial",
    "partial:checkpoint",
    "rename",
    "rename:checkpoint",
    "timer",
]
TEMP = re.compile(r"^\..+\.tmp\d+$")
# What a tracker imports when a run first uses it (~0.5 s of CPU each), imported once before the attempts fork.
FIRST_USE = {"wandb": "wandb.sdk.launch", "mlflow": "mlflow.store.tracking.sqlalchemy_store"}


def overrides(data_root: Path, run_dir: Path, epochs: int, extra: tuple = ()) -> list[str]:
    """A tiny run with many steps per epoch: 200 training images in batches of 8 (25 steps), 40 validation images
    (and `extra`, e.g. trackers: logger=[tensorboard,mlflow])."""
    return [
        *extra,
        "model=tiny",
        f"epochs={epochs}",
        "batch_size=8",
        "schedule=cosine",
        "augmentation=mixup",
        "regularization=wd5e-4",
        f"data.root={data_root}",
        "data.verify_checksums=false",
        "data.download=false",
        "data.val_size=40",
        "trainer.device=cpu",
        "trainer.progress=false",
        f"hydra.run.dir={run_dir}",
    ]


class Runner:
    """Starts one attempt of the training CLI, with a fault, or killed from outside after a delay."""

    def __init__(self, spawn: bool, logs: Path, extra: tuple = ()):
        self.spawn, self.logs, self.n = spawn, logs, 0
        if not spawn:  # what every attempt imports: the training command, the data's reader, the trackers `extra` names
            import torchvision  # noqa: F401 (~1.2 s of CPU, as much as torch)

            import hw_hparams.train.__main__  # noqa: F401
            from hw_hparams import trackers

            logger = ",".join(o.partition("=")[2] for o in extra if o.startswith("logger="))
            for name in trackers.KINDS:
                if name in logger:
                    trackers.tracker_class(name)
                    if name in FIRST_USE:
                        importlib.import_module(FIRST_USE[name])

    def run(
        self, argv: list[str], fault: str | None = None, kill_after: float | None = None, counts: Path | None = None
    ) -> tuple[int, float]:
        """(exit status, seconds); a signal's death is -signum, as in subprocess."""
        self.n += 1
        log = self.logs / f"attempt{self.n:03d}.log"
        log.write_text(f"fault={fault} kill_after={kill_after} argv={argv}\n")
        t0 = time.perf_counter()
        if self.spawn:
            env = {**os.environ, "HW_FAULT": fault or "", "HW_FAULT_COUNTS": str(counts or "")}
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, str(HERE / "fault_inject.py"), *argv],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
                try:
                    proc.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
            return proc.returncode, time.perf_counter() - t0
        pid = os.fork()
        if pid == 0:  # the attempt
            code = 70
            try:
                fd = os.open(log, os.O_WRONLY | os.O_APPEND)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.environ["HW_FAULT"] = fault or ""
                os.environ["HW_FAULT_COUNTS"] = str(counts or "")
                import fault_inject

                code = fault_inject.main(argv)
            except BaseException:  # noqa: BLE001 - report anything, then leave without running the parent's cleanup
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = None if kill_after is None else t0 + kill_after
        while True:
            done, status = os.waitpid(pid, 0 if deadline is None else os.WNOHANG)
            if done:
                break
            if time.perf_counter() >= deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = None
            else:
                time.sleep(0.005)
        return os.waitstatus_to_exitcode(status), time.perf_counter() - t0


def read_history(path: Path) -> list[dict[str, str]]:
    """history.csv rows; asserts the header and that every row has every column."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == HISTORY_COLUMNS, (path, reader.fieldnames)
        rows = list(reader)
    for r in rows:
        assert None not in r and all(r[c] not in (None, "") for c in HISTORY_COLUMNS), (path, r)
    return rows


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]


def check_after_kill(run_dir: Path, reference: list[dict]) -> int:
    """Every file of a killed run parses and agrees with the reference so far; returns history rows on disk."""
    if (run_dir / "data_stats.json").exists():
        json.loads((run_dir / "data_stats.json").read_text())
    rows = without_timing(read_history(run_dir / "history.csv")) if (run_dir / "history.csv").exists() else []
    assert rows == reference[: len(rows)], f"{run_dir}: history.csv is not a prefix of the reference"
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
        n = summary["epochs_completed"]
        assert n <= len(reference) and n in (len(rows), len(rows) - 1), f"{run_dir}: summary.json counts {n} epochs"
        final = {k: repr(v) if isinstance(v, float) else str(v) for k, v in (summary["final"] or {}).items()}
        assert final == (reference[n - 1] if n else {}), f"{run_dir}: summary.json's final row is not epoch {n}'s"
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        if (run_dir / name).exists():
            with zipfile.ZipFile(run_dir / name) as z:
                assert z.testzip() is None, f"{run_dir / name} has a corrupt member"
    assert not list(run_dir.glob("*.damaged")), f"{run_dir}: a checkpoint was found damaged"
    return len(rows)


def check_completed(run_dir: Path, ref_dir: Path) -> None:
    """A completed round's folder equals the reference's (all but timings); nothing half-written or left over."""
    import torch
    import yaml

    rows, ref_rows = read_history(run_dir / "history.csv"), read_history(ref_dir / "history.csv")
    assert without_timing(rows) == without_timing(ref_rows), f"{run_dir}: history differs from the uninterrupted run"
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(ref_rows) + 1)), "an epoch is missing or counted twice"
    summary, ref = (json.loads((d / "summary.json").read_text()) for d in (run_dir, ref_dir))
    same = ("status", "epochs", "epochs_completed", "final", "best_val_acc", "best_epoch", "test", "config")
    assert {k: summary[k] for k in same} == {k: ref[k] for k in same}, f"{run_dir}: summary.json differs"
    assert summary["status"] == "completed" and summary["epochs_completed"] == len(ref_rows)
    json.loads((run_dir / "data_stats.json").read_text())
    for f in (run_dir / ".hydra").glob("*.yaml"):
        yaml.safe_load(f.read_text())
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    ref_state = torch.load(ref_dir / "checkpoint.pt", weights_only=False)
    assert state["epoch"] == len(ref_rows) and without_timing(state["history"]) == without_timing(ref_state["history"])
    assert all(torch.equal(state["model"][k], v) for k, v in ref_state["model"].items()), "weights differ"
    assert torch.load(run_dir / "checkpoint.prev.pt", weights_only=False)["epoch"] == len(ref_rows) - 1
    left = [
        p.name for p in run_dir.iterdir() if TEMP.match(p.name) or p.name.endswith(".damaged") or p.name == ".run.lock"
    ]
    assert not left, f"{run_dir}: left over: {left}"


def harness(workdir: Path, kills: int, seed: int, epochs: int, spawn: bool, extra: tuple = ()) -> dict:
    """Run the reference, then rounds of killed attempts until `kills` kills; check everything; return a report."""
    from hw_hparams.data.fake import write_fake_cifar100

    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    write_fake_cifar100(data, train=240, test=40, seed=0)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    runner = Runner(spawn, logs, extra)
    ref_dir = workdir / "reference"
    code, ref_seconds = runner.run(overrides(data, ref_dir, epochs, extra), counts=workdir / "counts.json")
    assert code == 0, f"the reference run failed (exit {code}); see {logs}"
    counts = json.loads((workdir / "counts.json").read_text())
    reference = without_timing(read_history(ref_dir / "history.csv"))
    assert len(reference) == epochs

    rng = random.Random(seed)
    by_kind = dict.fromkeys(KINDS, 0)
    rounds: list[Path] = []
    attempts = 0
    plan: list[str] = []  # kinds to come: every kind once per cycle, in a seeded random order

    def enough() -> bool:
        return sum(by_kind.values()) >= kills and min(by_kind.values()) > 0

    while not enough():
        run_dir = workdir / f"round{len(rounds)}"
        rounds.append(run_dir)
        while True:
            attempts += 1
            assert attempts < 10 * kills + 50, "the run does not complete"
            done = check_after_kill(run_dir, reference) if run_dir.exists() else 0
            left = (epochs - done) / epochs
            plan = plan or rng.sample(KINDS, len(KINDS))
            kind = None if enough() else plan.pop()
            fault, delay = None, None
            if kind == "timer":
                delay = rng.uniform(0, ref_seconds * max(left, 0.25))
            elif kind is not None:
                site, _, only = kind.partition(":")
                calls = counts[kind.replace("partial", "write")]
                fault = f"{site}:{rng.randint(1, max(1, round(calls * left)))}:kill" + (f":{only}" if only else "")
            code, _ = runner.run(overrides(data, run_dir, epochs, extra), fault=fault, kill_after=delay)
            if code == 0:  # the run ended before the kill's instant: that kind comes first in the next round
                if kind is not None:
                    plan.append(kind)
                break
            assert code == -signal.SIGKILL, (
                f"an attempt ended with exit {code}, not by SIGKILL; see {logs}/attempt{runner.n:03d}.log"
            )
            by_kind[kind] += 1
    for run_dir in rounds:
        check_completed(run_dir, ref_dir)
    return {
        "kills": sum(by_kind.values()),
        "by_kind": by_kind,
        "rounds": len(rounds),
        "attempts": attempts,
        "seconds": round(time.perf_counter() - started, 1),
        "mode": "spawn" if spawn else "fork",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--kills", type=int, default=27, help="SIGKILLs in all, at least one of each kind (rounds go on until then)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the kill instants")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--spawn", action="store_true", help="start each attempt as a fresh interpreter")
    p.add_argument(
        "--workdir", type=Path, default=None, help="where to put data and runs (default: a temporary folder)"
    )
    p.add_argument("--override", action="append", default=[], help="one more override of every run (repeatable)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch is imported: bitwise-reproducible CPU runs
    sys.path.insert(0, str(HERE))
    if args.workdir is None:
        import tempfile

        args.workdir = Path(tempfile.mkdtemp(prefix="kill_harness_"))
    report = harness(args.workdir, args.kills, args.seed, args.epochs, args.spawn, tuple(args.override))
    print(json.dumps({**report, "workdir": str(args.workdir)}))


if __name__ == "__main__":
    main()
