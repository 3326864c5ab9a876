"""The run folder's format, defined once: its files, history.csv's columns, a run's statuses and the
metrics a run reports. The training code writes by it and analysis/ reads by it, so it imports the
standard library only (tests/test_imports.py).

    <run>/history.csv         one row per completed epoch (HISTORY_COLUMNS); accuracies are fractions
    <run>/summary.json        status (STATUSES), progress, final and best metrics, test result, timing
                              (started_at, finished_at: ISO 8601 UTC), config, versions, SLURM job
    <run>/data_stats.json     split sizes and seed, channel mean/std in [0, 1] units, class counts and proportions
    <run>/checkpoint.pt       everything needed to resume (checkpoint.py); checkpoint.prev.pt is the one before
    <run>/.hydra/, train.log  the command's record and log, written only once the run trains (train/job.py)
    <run>/.run.lock           held by the one process training the run (lock.py)
    <run>/trackers.json       the run's ids in its trackers (MLflow run id, W&B run id), so a resumed run continues them
    <run>/old-N/              the files of an earlier history (N = 1, 2, ...), moved there whole when
                              trainer.restart trains the run again from epoch 1; nothing reads them
"""

HISTORY = "history.csv"
SUMMARY = "summary.json"
DATA_STATS = "data_stats.json"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREV = "checkpoint.prev.pt"
HYDRA_RECORD = ".hydra"
LOG = "train.log"
LOCK = ".run.lock"
TRACKERS = "trackers.json"
OLD = "old-"  # + N: an earlier history's files

# Metrics: mean cross-entropy in nats (losses) and fractions in [0, 1] (accuracies). Training figures are
# means over the epoch's batches as trained (lambda-weighted accuracy under mixup), the others over a split.
TRAIN_METRICS = ("train_loss", "train_acc")
VAL_METRICS = ("val_loss", "val_acc")
TEST_METRICS = ("test_loss", "test_acc")  # summary.json's `test`, only with eval_test=true
HISTORY_METRICS = TRAIN_METRICS + VAL_METRICS  # one value per epoch
METRICS = HISTORY_METRICS + TEST_METRICS
HISTORY_COLUMNS = ("epoch", "lr", *HISTORY_METRICS, "epoch_time_s")  # epoch from 1; lr used in that epoch

RUNNING, COMPLETED, DIVERGED, PRUNED, FAILED, INTERRUPTED, REQUEUED = (
    "running",
    "completed",
    "diverged",  # a non-finite training loss stopped it
    "pruned",  # a search's pruner stopped it at an epoch's end (hydra/sweeper=search): a losing run, not a failure
    "failed",  # an error ended it
    "interrupted",  # Ctrl-C, SIGTERM (scancel): the same command resumes it
    "requeued",  # by SLURM at its time limit, waiting to resume
)
STATUSES = (RUNNING, COMPLETED, DIVERGED, PRUNED, FAILED, INTERRUPTED, REQUEUED)
FINISHED = (COMPLETED, DIVERGED, PRUNED)  # never trained again


def higher_is_better(metric: str) -> bool:
    """Accuracies are maximised, losses (and anything else) minimised."""
    return metric.endswith("_acc")
