"""What each config key is to a run, declared once (`ROLES`); every list that must agree is derived here.

Two questions per key of the schema (schema.py):
- In a fused group (several runs trained as one network, hydra_plugins/hw_hparams_fused), is it
  SHARED (one network, one data split, one device and numerics: every run of the group must have the
  same value, read from the group's first run), RUN (each run of the group trains with its own value:
  a field of engine/group.py's RunSpec) or JOB (each job's own bookkeeping, read per run; it never changes training)?
- Is it part of what the run computes (`identity`)? Such a key names the run folder (naming.py) and
  must match when a run resumes (runs/folder.py); the others may differ between resumes.

Derived: `SHARED_KEYS` (the fused launcher's and the study plan's grouping, `fused_groups`, checked again
by `check_one_group` where a group trains), `RUN_KEYS` (what engine/group.py's RunSpec holds), `run_invariant` (folder
names, the resume check). tests/config/test_roles.py fails when a schema key has no role or two.
Standard library only (no torch, Hydra or OmegaConf): analysis/ reads `run_invariant` from here too
(tests/test_imports.py), so the keys that never count are the same for a folder's name and for the
analysis' grouping.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

SHARED, RUN, JOB = "shared", "run", "job"


class Role(NamedTuple):
    fused: str  # SHARED, RUN or JOB (above)
    identity: bool  # changes what the run computes: names its folder, must match on resume


# A key, or a group of the schema standing for every key under it ("logger": logger.dir, logger.mlflow.*, ...).
ROLES: dict[str, Role] = {
    # one network, one data split, one numeric format
    "model.name": Role(SHARED, True),
    "epochs": Role(SHARED, True),
    "batch_size": Role(SHARED, True),
    "data.val_size": Role(SHARED, True),
    "data.split_seed": Role(SHARED, True),
    "trainer.precision": Role(SHARED, True),
    # where the data lies, whether it is fetched or md5-checked (the data itself is checked through
    # data_stats.json), the device, compiled or not, TF32 (float rounding only), the progress bar
    "data.root": Role(SHARED, False),
    "data.download": Role(SHARED, False),
    "data.verify_checksums": Role(SHARED, False),
    "trainer.device": Role(SHARED, False),
    "trainer.compile": Role(SHARED, False),
    "trainer.tf32": Role(SHARED, False),
    "trainer.progress": Role(SHARED, False),
    # what each run of a fused network trains with: engine/group.py's run_spec reads each by name into
    # the run's RunSpec (grep a key's name for every place that uses it)
    "seed": Role(RUN, True),
    "optim.lr": Role(RUN, True),
    "schedule.name": Role(RUN, True),
    "optim.momentum": Role(RUN, True),
    "optim.weight_decay": Role(RUN, True),
    "augmentation.crop_flip": Role(RUN, True),
    "augmentation.mixup_alpha": Role(RUN, True),
    # each job's own: never changes what a run computes
    "experiment_name": Role(JOB, False),  # the folder the run is filed under
    "eval_test": Role(JOB, False),  # the test split after the last epoch; the training is the same
    "trainer.restart": Role(JOB, False),  # train a run again from epoch 1 (its earlier files kept aside)
    "objective": Role(JOB, False),  # what the job returns to a search sweeper (objective.py)
    "search": Role(JOB, False),  # the search trial the job reports its epochs to (runs/trial.py)
    "logger": Role(JOB, False),  # the trackers a run logs to (trackers/)
}


# Keys the schema no longer has that a saved config (summary.json of an older run) may still hold: they
# never changed what a run computes, so such a run still resumes and is still compared as before.
RETIRED = frozenset({"trainer.num_workers"})


def entries(key: str) -> list[str]:
    """The `ROLES` entries that declare `key`: the key itself and any group above it (one, when declared)."""
    parts = key.split(".")
    return [e for e in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if e in ROLES]


def role(key: str) -> Optional[Role]:
    """The role of a dotted config key (None: no schema key has that name, e.g. one of an older run)."""
    found = entries(key)
    return ROLES[found[-1]] if found else None


def run_invariant(key: str) -> bool:
    """Whether `key` may differ without making another run: kept out of folder names and the resume check.
    A key the schema no longer has counts as part of the run (its old folders are never mixed up), but
    for the RETIRED ones, which never did."""
    r = role(key)
    return key in RETIRED or (r is not None and not r.identity)


def flat(config: dict, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'lr': 0.1}} -> {'optim.lr': 0.1}."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_settings(config: dict) -> dict[str, Any]:
    """The flat config keys that make a run this run: every key but the run-invariant ones (roles.py)."""
    return {k: v for k, v in flat(config).items() if not run_invariant(k)}


SHARED_KEYS = tuple(k for k, r in ROLES.items() if r.fused == SHARED)
RUN_KEYS = tuple(k for k, r in ROLES.items() if r.fused == RUN)  # engine/group.py's RunSpec: one field each


def config_value(cfg: Any, key: str) -> Any:
    """The value of dotted `key` in a config (a DictConfig or a dict; interpolations resolved), None where
    it has none."""
    for part in key.split("."):
        cfg = None if cfg is None else cfg.get(part)
    return cfg


def shared_values(cfg: Any) -> tuple:
    """A config's values of SHARED_KEYS: runs with equal ones can train as one network."""
    return tuple(config_value(cfg, k) for k in SHARED_KEYS)


def fused_groups(configs: list, max_fused: Optional[int]) -> list[list[int]]:
    """Indices of `configs` grouped by equal shared values (first appearance order), each group cut into
    parts of at most `max_fused` runs (None: no limit)."""
    by_key: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        by_key.setdefault(shared_values(cfg), []).append(i)
    size = max_fused or len(configs) or 1
    return [idx[start : start + size] for idx in by_key.values() for start in range(0, len(idx), size)]


def check_one_group(configs: list) -> None:
    """Raise ValueError naming the first shared key on which `configs` differ: a fused group reads these
    from its first run, so a group that disagrees would train every run with run 0's value."""
    first = shared_values(configs[0])
    for cfg in configs[1:]:
        for key, a, b in zip(SHARED_KEYS, first, shared_values(cfg)):
            if a != b:
                raise ValueError(
                    f"runs of one fused group differ in {key} ({a!r} vs {b!r}); every shared key must agree"
                )


def max_fused_problem(max_fused: Optional[int]) -> Optional[str]:
    """Why `hydra.launcher.max_fused` is not allowed, or None (checked before a sweep writes anything, and by
    the launcher)."""
    if max_fused is not None and max_fused < 1:
        return (
            f"hydra.launcher.max_fused={max_fused} is not allowed: must be an integer >= 1, "
            "or null for every run that can share a network"
        )
    return None
