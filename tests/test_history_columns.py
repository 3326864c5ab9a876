"""One list of history.csv's columns: run_folder.HISTORY_COLUMNS. The trainer builds its rows from it,
every other list of history metrics in hw_hparams is a part of it, and analysis/ (which reads run
folders without importing hw_hparams, so keeps its own copy) holds the same list in the same order."""

from __future__ import annotations

import math

import analysis
from hw_hparams import objective, selection, trackers
from hw_hparams.config import ObjectiveMetric
from hw_hparams.engine import EpochMetrics
from hw_hparams.run_folder import HISTORY_COLUMNS
from hw_hparams.training import _row


def test_analysis_reads_the_columns_the_trainer_writes():
    assert analysis.HIST_COLS == HISTORY_COLUMNS


def test_a_training_row_has_the_history_columns_in_order():
    row = _row(3, 0.05, EpochMetrics(1.5, 0.25, 10), EpochMetrics(2.5, 0.125, 5), 7.0)
    assert list(row) == HISTORY_COLUMNS
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


def test_every_list_of_history_metrics_is_part_of_the_columns():
    assert set(trackers.METRICS) == set(HISTORY_COLUMNS) - {"epoch"}  # every column but the step
    assert set(objective.HISTORY_METRICS) <= set(HISTORY_COLUMNS)
    assert {m.value for m in selection.Metric} <= set(HISTORY_COLUMNS)
    assert {m.value for m in ObjectiveMetric} == set(objective.METRICS)
