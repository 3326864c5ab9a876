"""TensorBoard: a run's event files in <root>/tensorboard/<run>/; `tensorboard --logdir <root>/tensorboard`.

Per epoch, the METRICS at step = epoch, as float64 scalars (the values of history.csv exactly); at
the start, the run's settings and tags as its hparams (session start info, so the HParams dashboard
compares a sweep's runs); once finished, its best and test figures at step = epochs completed; the
status as text and as the session's end info. A resumed run reads what its folder holds (with
TensorBoard's own reader, which applies purges), starts a new event file with
purge_step = the first trained epoch missing there (else the next epoch), and logs from that step on.
"""

from __future__ import annotations

import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from hw_hparams.trackers import METRICS, TrackedRun, final_figures, metrics_of

END_STATUS = {"completed": api_pb2.STATUS_SUCCESS, "diverged": api_pb2.STATUS_FAILURE, "failed": api_pb2.STATUS_FAILURE}


def held_steps(folder: Path) -> dict[str, set[int]]:
    """tag -> the steps TensorBoard shows for it in `folder` (empty when there is nothing yet)."""
    if not any(folder.glob("events.out.tfevents.*")):
        return {}
    acc = EventAccumulator(str(folder), size_guidance={TENSORS: 0})
    acc.Reload()
    return {tag: {e.step for e in acc.Tensors(tag)} for tag in acc.Tags()[TENSORS]}


def _after_older_files(folder: Path) -> None:
    """Wait (at most 2 s) until a new event file's name sorts after the folder's others: readers take
    files in name order, which starts with the creating second, and a purge must come after what it purges."""
    stamps = [int(p.name.split(".")[3]) for p in folder.glob("events.out.tfevents.*") if p.name.split(".")[3].isdigit()]
    deadline = time.monotonic() + 2
    while stamps and int(time.time()) <= max(stamps) and time.monotonic() < deadline:
        time.sleep(0.05)


def _hparams_summary(tag: str, **data) -> Summary:
    """An hparams plugin summary (as TensorBoard's own hparams API writes it, without its TensorFlow import)."""
    content = plugin_data_pb2.HParamsPluginData(**data)
    return Summary(
        value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(content), tensor=metadata.NULL_TENSOR)]
    )


def session_start(hparams: dict, group: str) -> Summary:
    info = plugin_data_pb2.SessionStartInfo(group_name=group, start_time_secs=time.time())
    for k, v in hparams.items():
        if isinstance(v, bool):
            info.hparams[k].bool_value = v
        elif isinstance(v, (int, float)):
            info.hparams[k].number_value = v
        else:
            info.hparams[k].string_value = "null" if v is None else str(v)
    return _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=info)


def session_end(status: str) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(
        status=END_STATUS.get(status, api_pb2.STATUS_UNKNOWN), end_time_secs=time.time()
    )
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=info)


class TensorBoardTracker:
    def __init__(self, run: TrackedRun, epochs_done: int):
        folder = run.root / "tensorboard" / run.name
        held = held_steps(folder)
        missing = [e for e in range(1, epochs_done + 1) if any(e not in held.get(t, ()) for t in METRICS.values())]
        purge = missing[0] if missing else epochs_done + 1
        self.held = {tag: {s for s in steps if s < purge} for tag, steps in held.items()}
        folder.mkdir(parents=True, exist_ok=True)
        _after_older_files(folder)
        self.writer = SummaryWriter(str(folder), purge_step=purge)
        if metadata.SESSION_START_INFO_TAG not in self.held:
            self.writer.file_writer.add_summary(session_start({**run.params, **run.tags}, run.name), 0)
        self.writer.flush()

    def _scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            if step not in self.held.get(tag, ()):
                self.writer.add_scalar(tag, value, step, new_style=True, double_precision=True)
        self.writer.flush()

    def epoch(self, row: dict) -> None:
        self._scalars(metrics_of(row), row["epoch"])

    def set_status(self, summary: dict) -> None:
        if summary["status"] == "running":
            return
        step = summary["epochs_completed"]
        self._scalars(final_figures(summary), step)
        self.writer.add_text("status", summary["status"], step)
        self.writer.file_writer.add_summary(session_end(summary["status"]), step)
        self.writer.flush()

    def close(self, status) -> None:
        self.writer.close()
