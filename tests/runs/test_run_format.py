"""The run folder's format is defined once (hw_hparams/runs/format.py): the trainer writes its history
rows in that order, and the trackers' metric names are derived from its columns."""

from __future__ import annotations

import math

from hw_hparams import trackers
from hw_hparams.engine.step import EpochMetrics
from hw_hparams.runs.format import HISTORY_COLUMNS
from hw_hparams.train.loop import _row


def test_a_training_row_has_the_history_columns_in_order():
    row = _row(3, 0.05, EpochMetrics(1.5, 0.25, 10), EpochMetrics(2.5, 0.125, 5), 7.0)
    assert tuple(row) == HISTORY_COLUMNS
    assert row == {
        "epoch": 3,
        "lr": 0.05,
        "train_loss": 1.5,
        "train_acc": 0.25,
        "val_loss": 2.5,
        "val_acc": 0.125,
        "epoch_time_s": 7.0,
    }
    assert math.isnan(
        _row(1, 0.5, EpochMetrics(math.nan, math.nan, 0), EpochMetrics(math.nan, math.nan, 0), 1.0)["val_acc"]
    )


def test_every_tracker_logs_each_history_column_but_the_step_under_its_own_name():
    assert trackers.METRICS == {
        "lr": "lr",
        "train_loss": "train/loss",
        "train_acc": "train/acc",
        "val_loss": "val/loss",
        "val_acc": "val/acc",
        "epoch_time_s": "epoch_time_s",
    }
