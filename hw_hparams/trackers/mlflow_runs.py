"""MLflow: one run per run folder in the store `logger.mlflow.tracking_uri` (default: the SQLite file
<root>/mlflow.db; MLflow's file store is deprecated); `mlflow ui --backend-store-uri sqlite:///<root>/mlflow.db`.

The MLflow experiment is `logger.mlflow.experiment`, else the run's experiment_name, else `adhoc`.
Params: the run's settings; tags: experiment, section, study, status; per epoch the METRICS at
step = epoch; once finished, its best and test figures at step = epochs completed; the MLflow run
status follows ours (FINISHED, FAILED, KILLED for pruned, interrupted or requeued). Resuming: the run id in
<run>/trackers.json names the run to continue; before a run is created, a random key is kept there
and set as a tag, so a process killed between the two still finds its run. What the run holds
(metric, step) is never logged twice. Nothing is sent anywhere else: MLflow's telemetry is off
unless MLFLOW_DISABLE_TELEMETRY says otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported

from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from hw_hparams.trackers import TrackedRun, final_figures, metrics_of, read_ids, write_ids  # noqa: E402

KEY_TAG = "hw_hparams.run_key"
STATUS = {
    "completed": "FINISHED",
    "diverged": "FAILED",
    "pruned": "KILLED",  # stopped early by a search's pruner: not a failure (its status tag says pruned)
    "failed": "FAILED",
    "interrupted": "KILLED",
    "requeued": "KILLED",
}
SQLITE = "sqlite:///"

logging.getLogger("alembic").setLevel(logging.WARNING)  # MLflow's schema migrations, one INFO line each


@contextlib.contextmanager
def _store_lock(uri: str):
    """Processes starting at once (a parallel sweep) must not create the same SQLite store or experiment together."""
    if not uri.startswith(SQLITE):
        yield
        return
    path = Path(uri[len(SQLITE) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


class MlflowTracker:
    def __init__(self, run: TrackedRun, epochs_done: int):
        self.uri = run.logger.mlflow.tracking_uri or f"{SQLITE}{run.root / 'mlflow.db'}"
        ids = read_ids(run.run_dir).get("mlflow") or {}
        if ids.get("tracking_uri") != self.uri or "key" not in ids:
            ids = {"tracking_uri": self.uri, "key": uuid.uuid4().hex}
            write_ids(run.run_dir, "mlflow", ids)  # before the run exists: the tag that finds it
        with _store_lock(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri)
            self.run_id = self._stored(ids.get("run_id")) or self._find_or_create(run, ids["key"])
        if ids.get("run_id") != self.run_id:
            write_ids(run.run_dir, "mlflow", {**ids, "run_id": self.run_id})
        self.client.update_run(self.run_id, status="RUNNING")
        data = self.client.get_run(self.run_id).data
        self.held = {key: {m.step for m in self.client.get_metric_history(self.run_id, key)} for key in data.metrics}
        params = [Param(k, str(v)) for k, v in run.params.items() if k not in data.params]
        tags = [RunTag(k, str(v)) for k, v in {**run.tags, "status": "running"}.items() if v is not None]
        self.client.log_batch(self.run_id, params=params, tags=tags)

    def _stored(self, run_id):
        if run_id is None:
            return None
        try:
            return self.client.get_run(run_id).info.run_id
        except MlflowException:  # not in this store (deleted, or the store was replaced)
            return None

    def _find_or_create(self, run: TrackedRun, key: str) -> str:
        name = run.logger.mlflow.experiment or run.tags["experiment"] or "adhoc"
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            where = (run.root / "mlartifacts").as_uri() if self.uri.startswith(SQLITE) else None
            experiment_id = self.client.create_experiment(name, artifact_location=where)
        else:
            experiment_id = experiment.experiment_id
        found = self.client.search_runs([experiment_id], f"tags.`{KEY_TAG}` = '{key}'")
        if found:
            return found[0].info.run_id
        tags = {KEY_TAG: key, "hw_hparams.run_dir": str(run.run_dir.absolute())}
        return self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items() if step not in self.held.get(k, ())]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)  # one transaction: all of them or none
        for m in metrics:
            self.held.setdefault(m.key, set()).add(step)

    def epoch(self, row: dict) -> None:
        self._metrics(metrics_of(row), row["epoch"])

    def set_status(self, summary: dict) -> None:
        self._metrics(final_figures(summary), summary["epochs_completed"])
        self.client.set_tag(self.run_id, "status", summary["status"])

    def close(self, status) -> None:
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))
