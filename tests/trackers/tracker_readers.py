"""Each tracker read back with its own reader (not ours): TensorBoard's EventAccumulator, MLflow's
client, W&B's `wandb leet inspect --json`; and history.csv as the reference they must equal."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from support import read_rows

# history.csv column -> the metric every tracker logs (hw_hparams/trackers METRICS, spelled out again here).
COLUMNS = {
    "train_loss": "train/loss",
    "train_acc": "train/acc",
    "val_loss": "val/loss",
    "val_acc": "val/acc",
    "lr": "lr",
    "epoch_time_s": "epoch_time_s",
}


def expected(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(epoch, value)] from history.csv, the reference."""
    rows = read_rows(run_dir / "history.csv")
    return {metric: [(int(r["epoch"]), float(r[col])) for r in rows] for col, metric in COLUMNS.items()}


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard shows a run folder (purged events left out)."""
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()[TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            out[tag] = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
    return out


def tensorboard_hparams(folder: Path) -> dict:
    """The hparams of the run's last session start info, through the hparams plugin's own parser."""
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
    acc.Reload()
    info = metadata.parse_session_start_info_plugin_data(
        acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    )
    return {k: getattr(v, v.WhichOneof("kind")) for k, v in info.hparams.items()}


def tensorboard_text(folder: Path, tag: str) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
    acc.Reload()
    return [tensor_util.make_ndarray(e.tensor_proto).item().decode() for e in acc.Tensors(f"{tag}/text_summary")]


def mlflow_runs(db: Path, run_name: str | None = None) -> list:
    """The MLflow runs in the SQLite store `db` (named `run_name`, if given), through MLflow's client."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db.absolute()}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    where = f"attributes.run_name = '{run_name}'" if run_name else ""
    return client.search_runs(experiments, where)


def mlflow_experiments(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    return sorted(MlflowClient(tracking_uri=f"sqlite:///{db.absolute()}").search_experiments(), key=lambda e: e.name)


def mlflow_history(db: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db.absolute()}")
    run = client.get_run(run_id)
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in run.data.metrics}


def wandb_records(wandb_dir: Path, run_id: str) -> list[dict]:
    """Every record of every transaction log of W&B run `run_id`, through `wandb leet inspect --json`.

    A run killed between W&B making its folder and writing `run-<id>.wandb` leaves a folder with no log:
    it holds no record (given such a folder, `leet inspect` would look for a `latest-run` link instead)."""
    records = []
    env = {**os.environ, "WANDB_MODE": "offline"}  # the CLI uploads nothing then
    for log in sorted(wandb_dir.glob(f"*run-*-{run_id}/run-{run_id}.wandb")):
        out = subprocess.run(
            [str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(log)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        records += [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return records


def wandb_history(wandb_dir: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] over all offline folders of the run, as W&B's reader shows them."""
    out: dict[str, list] = {}
    for r in wandb_records(wandb_dir, run_id):
        if r["type"] == "history":
            item, step = r["history"]["item"], r["history"]["step"]["num"]
            for k, v in item.items():
                if not k.startswith("_"):
                    out.setdefault(k, []).append((step, float(v)))
    return out


def ids(run_dir: Path) -> dict:
    return json.loads((run_dir / "trackers.json").read_text())


def assert_each_epoch_once(run_dir: Path, root: Path, trackers: tuple = ("tensorboard", "mlflow", "wandb")) -> None:
    """Each tracker of the run in `run_dir` (its files under `root`) holds each epoch of history.csv once, as it is."""
    want = expected(run_dir)
    name = run_dir.name
    if "tensorboard" in trackers:
        got = tensorboard_scalars(root / "tensorboard" / name)
        assert {k: got.get(k) for k in want} == want, f"TensorBoard of {run_dir} differs from history.csv"
    if "mlflow" in trackers:
        runs = mlflow_runs(root / "mlflow.db", name)
        assert [r.info.run_id for r in runs] == [ids(run_dir)["mlflow"]["run_id"]], f"not one MLflow run for {run_dir}"
        got = mlflow_history(root / "mlflow.db", runs[0].info.run_id)
        assert {k: got.get(k) for k in want} == want, f"MLflow's run of {run_dir} differs from history.csv"
    if "wandb" in trackers:
        got = wandb_history(root / "wandb", ids(run_dir)["wandb"]["id"])
        assert {k: sorted(got.get(k, [])) for k in want} == want, f"W&B's run of {run_dir} differs from history.csv"
        assert got["epoch"] == [(e, float(e)) for e, _ in want["lr"]], (
            f"W&B holds an epoch of {run_dir} twice, or out of order"
        )


@contextlib.contextmanager
def a_listener_for_every_server():
    """(environment, connections): every proxy and W&B's server address point at a local listener,
    which counts who connects to it while the block runs (a process run with that environment)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    address, connections, done = f"http://127.0.0.1:{listener.getsockname()[1]}", [], threading.Event()

    def accept():
        while not done.is_set():
            try:
                connections.append(listener.accept()[1])
            except TimeoutError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "WANDB_BASE_URL")
    env = {**dict.fromkeys(names, address), "NO_PROXY": "", "no_proxy": ""}
    try:
        yield env, connections
    finally:
        done.set()
        thread.join()
        listener.close()
