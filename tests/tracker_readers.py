"""Each tracker read back with its own reader (not ours): TensorBoard's EventAccumulator, MLflow's
client, W&B's `wandb leet inspect --json`; and history.csv as the reference they must equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import read_rows

# history.csv column -> the metric every tracker logs (hw_hparams/trackers METRICS, spelled out again here).
COLUMNS = {"train_loss": "train/loss", "train_acc": "train/acc", "val_loss": "val/loss", "val_acc": "val/acc",
           "lr": "lr", "epoch_time_s": "epoch_time_s"}


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
    info = metadata.parse_session_start_info_plugin_data(acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content)
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


def mlflow_history(db: Path, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{db.absolute()}")
    run = client.get_run(run_id)
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in run.data.metrics}


def wandb_records(wandb_dir: Path, run_id: str) -> list[dict]:
    """Every record of every offline folder of W&B run `run_id`, through `wandb leet inspect --json`."""
    records = []
    env = {**os.environ, "WANDB_MODE": "offline"}  # the CLI uploads nothing then
    for folder in sorted(wandb_dir.glob(f"*run-*-{run_id}")):
        out = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(folder)],
                             capture_output=True, text=True, timeout=120, env=env)
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
