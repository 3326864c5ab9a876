"""hydra/sweeper=search through sbatch on a real SLURM cluster: the study in a journal file in the sweep
folder (Optuna's storage for a shared file system), every epoch reported from the node, the hopeless trial
pruned there and final. The study is read with Optuna's own JournalStorage, not through the code under test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import LONG_PATIENCE_S, TINY_RUN, fake_data_overrides, read_rows, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.optuna, pytest.mark.usefixtures("cluster")]  # cluster: conftest.py

TESTS = Path(__file__).resolve().parents[1]
CPU_JOB = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def test_a_search_on_slurm_keeps_its_study_in_a_journal_file_and_prunes_on_the_node(fake_root, tmp_path):
    """One trial at a time: two that learn, then lr 1e-5 (hopeless), pruned by the median of those two after
    epoch 2; the same command again trains nothing (the pruned run is final)."""
    import optuna
    from optuna.trial import TrialState

    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/sweeper=search",
        *TINY_RUN,
        *fake_data_overrides(fake_root),
        *CPU_JOB,
        "epochs=3",
        "trainer.device=cpu",
        "objective.metric=train_loss",
        "hydra.sweeper.custom_search_space=search_plan.by_trial",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.n_jobs=1",
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=1",
        f"hydra.sweep.dir={sweep}",
    ]
    path = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {"PYTHONPATH": path, "SEARCH_PLAN": "0.03:0,0.03:1,1e-5:2", "OMP_NUM_THREADS": "1"}
    res = run_cli(args, tmp_path, env=env, timeout=LONG_PATIENCE_S)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (sweep / "optuna-journal.log").is_file() and not (sweep / "optuna.db").exists()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(sweep / "optuna-journal.log"))
    )
    trials = optuna.load_study(study_name="sweep", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED]
    assert [sorted(t.intermediate_values) for t in trials] == [[1, 2, 3], [1, 2, 3], [1, 2]]
    rows = read_rows(sweep / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = json.loads((sweep / rows[2]["run_dir"] / "summary.json").read_text())
    assert pruned["status"] == "pruned" and pruned["slurm"]["job_id"] and pruned["epochs_completed"] == 2
    again = run_cli(args, tmp_path, env=env, timeout=LONG_PATIENCE_S)
    assert again.returncode == 0 and "3 trial(s) finished, 0 to go" in again.stdout + again.stderr, again.stderr[-3000:]
