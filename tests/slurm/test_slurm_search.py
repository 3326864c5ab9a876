"""hydra/sweeper=search through sbatch on a real SLURM cluster: the study in a journal file in the sweep
folder (Optuna's storage for a shared file system), every epoch reported from the node, the hopeless trial
pruned there and final. The study is read with Optuna's own JournalStorage, not through the code under test.
"""

from __future__ import annotations

import json

import pytest
import rendezvous
import search_plan
from search_plan import search_args
from support import LONG_PATIENCE_S, read_rows, run_cli

pytestmark = [pytest.mark.slurm, pytest.mark.optuna, pytest.mark.usefixtures("cluster")]  # cluster: conftest.py

CPU_JOB = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def test_a_search_on_slurm_keeps_its_study_in_a_journal_file_and_prunes_on_the_node(small_root, tmp_path):
    """One trial at a time: two that learn, then lr 1e-5 (hopeless), pruned by the median of those two after
    epoch 2; the same command again trains nothing (the pruned run is final)."""
    import optuna
    from optuna.trial import TrialState

    sweep = tmp_path / "sweep"
    args = [
        *search_args(small_root, 3, "hydra.sweeper.n_jobs=1", *CPU_JOB, f"hydra.sweep.dir={sweep}"),
        "hydra/sweeper/pruner=median",
        "hydra.sweeper.pruner.n_startup_trials=2",
        "hydra.sweeper.pruner.n_warmup_steps=2",  # judged from epoch 2 on
    ]
    env = search_plan.env("0.03:0,0.03:1,1e-5:2")
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


def test_a_slot_submits_the_next_trial_while_a_slower_one_of_its_batch_still_runs(small_root, tmp_path):
    """2 slots, 3 trials of one epoch: trial 0's job holds at its start until trial 2's job has started, which
    only the slot that trial 1 freed can submit; behind a batch barrier trial 0 would give up waiting."""
    sweep = tmp_path / "sweep"
    args = [
        *search_args(small_root, 3, "hydra.sweeper.n_jobs=2", *CPU_JOB, f"hydra.sweep.dir={sweep}"),
        *rendezvous.overrides(waits="0", for_="2", key="search.trial"),
    ]
    args[args.index("epochs=3")] = "epochs=1"
    res = run_cli(args, tmp_path, env=search_plan.env("0.03:0,0.03:1,0.03:2", MEET_DIR=str(tmp_path / "meet")))
    assert res.returncode == 0, res.stderr[-3000:]
    marks = sorted(p.name for p in (tmp_path / "meet").iterdir())
    assert len([m for m in marks if m.startswith("0.") and m.endswith(".met")]) == 1, marks
    assert not [m for m in marks if m.endswith(".gave-up")], marks
    assert [r["state"] for r in read_rows(sweep / "trials.csv")] == ["COMPLETE"] * 3
