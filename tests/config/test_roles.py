"""Every schema key has one role (hw_hparams/config/roles.py), and what the roles decide holds: runs that
differ in a shared key never train as one network, runs that differ only in their own settings do.

The reference is written out here by hand: which keys a fused group must share, and why; and the
RunSpec a config gives, value by value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from support import compose_train, fake_data_overrides, run_cli

from hw_hparams.config import roles
from hw_hparams.config.schema import schema_keys
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.engine.group import RunSpec, run_spec
from hw_hparams.train.lifecycle import run_group
from hw_hparams.train.loop import Member

# The keys one fused network cannot hold two values of, with another value each.
SHARED = {
    "model.name": "tiny",  # the network's shape
    "epochs": "3",  # one epoch loop
    "batch_size": "64",  # one batch of every run per step
    "data.val_size": "500",  # one split of the data for all
    "data.split_seed": "3",
    "data.root": "/other",  # one dataset loaded once
    "data.download": "false",
    "data.verify_checksums": "false",
    "trainer.device": "cpu",  # one device
    "trainer.precision": "bf16",  # one numeric format, one compiled step
    "trainer.compile": "false",
    "trainer.tf32": "false",
    "trainer.progress": "true",  # one progress bar for the group's epochs
}
# What each run of one network trains with on its own (tests/train/test_fused.py trains such groups
# against each run alone).
OWN = {
    "seed": "4",
    "optim.lr": "0.3",
    "schedule.name": "cosine",
    "optim.momentum": "0.8",
    "optim.weight_decay": "1e-3",
    "augmentation.crop_flip": "false",
    "augmentation.mixup_alpha": "0.4",
    "eval_test": "true",
    "experiment_name": "elsewhere",
    "trainer.restart": "true",
    "objective.metric": "val_loss",
    "logger.tensorboard.enabled": "true",
}


def test_every_schema_key_has_exactly_one_role_and_every_role_a_key():
    keys = schema_keys()
    for key in keys:
        assert len(roles.entries(key)) == 1, (
            f"{key}: declared {roles.entries(key) or 'nowhere'} in hw_hparams/config/roles.py"
        )
    for entry in roles.ROLES:
        assert any(k == entry or k.startswith(entry + ".") for k in keys), (
            f"roles.py declares {entry}, not a schema key"
        )
    assert roles.role("no.such.key") is None and not roles.run_invariant("no.such.key")  # an old run's key counts


def test_the_shared_keys_are_those_one_network_cannot_hold_two_values_of():
    assert set(roles.SHARED_KEYS) == set(SHARED)
    assert not set(OWN) & set(SHARED)


def test_a_run_spec_holds_each_run_s_own_training_settings_from_its_config():
    cfg = compose_train([f"{k}={v}" for k, v in OWN.items() if k in roles.RUN_KEYS])
    assert run_spec(cfg) == RunSpec(
        seed=4, lr=0.3, schedule="cosine", momentum=0.8, weight_decay=1e-3, crop_flip=False, mixup_alpha=0.4
    )


def test_a_run_spec_s_fields_are_exactly_the_per_run_keys_one_each():
    """Each RUN key changes exactly one field of the spec, a field no other key changes, and every field is
    changed by one: the spec holds the per-run keys, no more and no fewer."""
    base = run_spec(compose_train([]))
    changed = {}
    for key in roles.RUN_KEYS:
        spec = run_spec(compose_train([f"{key}={OWN[key]}"]))
        changed[key] = [f.name for f in dataclasses.fields(RunSpec) if getattr(spec, f.name) != getattr(base, f.name)]
        assert len(changed[key]) == 1, f"{key} changes {changed[key] or 'no field'} of RunSpec"
    fields = sorted(f for names in changed.values() for f in names)
    assert fields == sorted(f.name for f in dataclasses.fields(RunSpec)), "a RunSpec field no RUN key sets"


@pytest.mark.parametrize("key", sorted(SHARED))
def test_runs_that_differ_in_a_shared_key_are_never_put_in_one_group(key):
    configs = [compose_train([]), compose_train([f"{key}={SHARED[key]}"]), compose_train([])]
    assert roles.fused_groups(configs, None) == [[0, 2], [1]]
    with pytest.raises(ValueError, match=rf"^runs of one fused group differ in {key} "):
        roles.check_one_group(configs)


@pytest.mark.parametrize("key", sorted(OWN))
def test_runs_that_differ_only_in_their_own_settings_share_a_group(key):
    configs = [compose_train([]), compose_train([f"{key}={OWN[key]}"])]
    assert roles.fused_groups(configs, None) == [[0, 1]]
    roles.check_one_group(configs)
    assert roles.fused_groups(configs, 1) == [[0], [1]]  # max_fused cuts a group, in order


def test_run_group_refuses_a_group_that_disagrees_before_it_trains(tmp_path):
    root = tmp_path / "data"
    write_fake_cifar100(root, train=120, test=10, seed=0)
    base = [*fake_data_overrides(root, val_size=20), "model=tiny", "epochs=1", "trainer.progress=false"]
    members = [Member(compose_train([*base, f"batch_size={b}"]), tmp_path / f"run{b}") for b in (10, 20)]
    with pytest.raises(ValueError, match="differ in batch_size"):
        run_group(members)
    assert not any(m.run_dir.exists() for m in members)


def test_the_fused_launcher_groups_a_sweep_by_the_shared_keys(tmp_path):
    root = tmp_path / "data"
    write_fake_cifar100(root, train=120, test=10, seed=0)
    args = [
        "-m",
        *fake_data_overrides(root, val_size=20),
        "model=tiny",
        "epochs=1",
        "trainer.progress=false",
        "hydra/launcher=fused",
        "batch_size=25,50",
        "optim.lr=0.01,0.005",
    ]
    result = run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Launching 4 jobs as 2 fused group(s) of 2, 2" in result.stdout + result.stderr
    summaries = [json.loads(p.read_text()) for p in Path(tmp_path, "outputs/multirun/adhoc").glob("*/summary.json")]
    assert sorted((s["config"]["batch_size"], s["config"]["optim"]["lr"]) for s in summaries) == [
        (25, 0.005),
        (25, 0.01),
        (50, 0.005),
        (50, 0.01),
    ]
