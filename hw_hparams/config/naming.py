"""A run's folder name: the settings that make it this run, each spelled one way.

The name lists, as `key=value` joined by commas and sorted by key, the run's learning rate and
every other setting (`roles.run_settings`: every config key but the run-invariant ones) that
differs from its experiment's base config or is swept by that experiment itself.

- An experiment's base is its config with nothing on the command line (`experiment=X` alone, or
  the composed defaults without an experiment). Its swept keys are the settings its own
  `hydra.sweeper.params` change. So every job of `-m experiment=lr_sweep` is named by its lr,
  including lr 0.05 (the base value), and anything else a command changes shows up too. A plain
  `python -m hw_hparams.train` run is `optim.lr=0.05`; an ad-hoc sweep over momentum names its
  jobs `optim.lr=0.05` and `optim.lr=0.05,optim.momentum=0.5` (0.9 is the default).
- Names come from the resolved config, not from the command line: `lr=lr0.5`, `optim.lr=0.5` and
  `optim.lr=5e-1` are all `optim.lr=0.5`; group options appear as the keys they set
  (`schedule=cosine` -> `schedule.name=cosine`). Values: bools `true`/`false`, `null`, ints as
  written, floats in the shorter of their shortest round-trip decimal and scientific forms
  (`0.05`, `5e-4`), other text with `/ , = %` and spaces %-escaped. A name is a valid set of overrides.

Hydra fills `hydra.run.dir` and `hydra.sweep.subdir` through the resolvers registered here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import math
from collections.abc import Sequence
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from hw_hparams.config.roles import run_settings

CONFIG_NAME = "train"


def _config_dir() -> Path:
    """conf/: at the top of the checkout (what an editable install runs from), else the copy an installed
    wheel carries as the package hw_hparams.conf (setup.py)."""
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / f"{CONFIG_NAME}.yaml").is_file():
        return checkout
    return Path(str(resources.files("hw_hparams.conf")))


CONFIG_DIR = _config_dir()  # Hydra's primary config folder (hydra.main, and the compose API here)
JOB_NAME = "train"  # hydra.job.name, as Hydra names a job of `python -m hw_hparams.train` (after train.py)
DEFAULT_NAME = "default"  # only if ALWAYS_SHOWN were empty
ALWAYS_SHOWN = ("optim.lr",)  # every run of the study has one, and the study always varies it
MAX_NAME_BYTES = 200  # file systems allow 255; a longer name keeps its start and gets a hash


def spell(value: Any) -> str:
    """The one spelling of a config value in a folder name (see the module docstring)."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        positional = np.format_float_positional(value, trim="-")
        scientific = np.format_float_scientific(value, trim="-", exp_digits=1).replace("e+", "e")
        return scientific if len(scientific) < len(positional) else positional
    return quote(str(value), safe="")


def hydra_context():
    """Hydra's compose API for our configs: as it is inside a running Hydra app, else set up for the
    block (Hydra's plugin scan registers our plugins' configs, e.g. hydra/launcher=fused; the entry
    points also register them by name: plugins.py)."""
    if GlobalHydra.instance().is_initialized():
        return contextlib.nullcontext()
    return initialize_config_dir(str(CONFIG_DIR), job_name=JOB_NAME, version_base="1.3")


@contextlib.contextmanager
def as_hydra_config(cfg: DictConfig):
    """Hydra's config of the running job is `cfg`'s for the block (what the `${hydra:...}` resolver
    reads), then as it was."""
    instance, readonly = HydraConfig.instance(), True if OmegaConf.is_readonly(cfg.hydra) else None
    before = instance.cfg
    instance.set_config(cfg)  # makes cfg.hydra read-only
    try:
        yield
    finally:
        instance.cfg = before
        OmegaConf.set_readonly(cfg.hydra, readonly)


def job_folder(cfg: DictConfig, multirun: bool) -> Path:
    """The run folder Hydra will use for the job composed (with its `hydra` node) as `cfg`."""
    if multirun:
        return Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
    return Path(cfg.hydra.run.dir)


def compose_train(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The training config for `overrides` (with Hydra's own node when `hydra`)."""
    with hydra_context():
        return compose(CONFIG_NAME, overrides=overrides, return_hydra_config=hydra)


def task_dict(cfg: DictConfig) -> dict:
    """The run's config (without the `hydra` node) as plain resolved data, enums as their names."""
    keys = [k for k in cfg if k != "hydra"]
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True, enum_to_str=True)


def expand(overrides: list[str]) -> list[list[str]]:
    """Every job of a sweep as its override list, as Hydra's basic sweeper makes them (the cartesian
    product of the overrides' values in order, a later override of a key replacing an earlier one in
    its place), so that each job composes exactly as Hydra will compose it. An interval (a search
    sweeper's space, `interval(a, b)`) stands for its two ends: the jobs that bound the search."""
    choices: dict[str, list[str]] = {}  # key -> its jobs' spellings; a later override replaces an earlier in place
    for o in OverridesParser.create().parse_overrides([_interval_ends(o) for o in overrides]):
        key = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            raise HydraException(f"a sweep of {key} ({o.input_line}) can only be a list of values here")
        values = o.sweep_string_iterator() if o.is_sweep_override() else [o.get_value_element_as_str()]
        choices[key] = [f"{key}={v}" for v in values]
    return [list(job) for job in itertools.product(*choices.values())]


def stage_jobs(expanded: Sequence[Sequence[str]], jobs: Sequence[Sequence[str]]) -> list[list[str]]:
    """The jobs of a `hydra/sweeper=stage` sweep, in order: each listed job (outer) under each job of the
    command line's expansion (inner), as hydra_plugins/hw_hparams_stage runs them."""
    return [[*args, *job] for job in jobs for args in expanded]


def _interval_ends(override: str) -> str:
    """`key=tag(log, interval(a, b))` -> `key=a,b`; any other override as it is."""
    (o,) = OverridesParser.create().parse_overrides([override])
    if not o.is_interval_sweep():
        return override
    value = o.value()
    return f"{o.get_key_element()}={value.start!r},{value.end!r}"


@functools.cache
def reference(experiment: Optional[str]) -> tuple[dict, frozenset]:
    """(base settings, swept keys) of an experiment (None: the composed defaults, nothing swept)."""
    base_overrides = [f"experiment={experiment}"] if experiment else []
    cfg = compose_train(base_overrides, hydra=True)
    base = run_settings(task_dict(cfg))
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    swept: set[str] = set()
    for job in expand([f"{k}={v}" for k, v in params.items()]) if params else []:
        settings = run_settings(task_dict(compose_train(base_overrides + job)))
        swept |= {k for k, v in settings.items() if k not in base or base[k] != v}
    return base, frozenset(swept)


def run_name(config: dict, experiment: Optional[str]) -> str:
    """The folder name of the run with resolved `config` (a plain dict) under `experiment`."""
    base, swept = reference(experiment)
    settings = run_settings(config)
    keys = sorted(k for k, v in settings.items() if k in ALWAYS_SHOWN or k in swept or k not in base or base[k] != v)
    name = ",".join(f"{k}={spell(settings[k])}" for k in keys) or DEFAULT_NAME
    if len(name.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = name.encode()[: MAX_NAME_BYTES - 14].decode(errors="ignore") + "+h" + digest
    return name


def _experiment(root: DictConfig) -> Optional[str]:
    return OmegaConf.select(root, "hydra.runtime.choices.experiment", default=None)


def _run_name(*, _root_: DictConfig) -> str:
    return run_name(task_dict(_root_), _experiment(_root_))


def _run_path(*, _root_: DictConfig) -> str:
    """A single run's folder below outputs/run/: `<experiment>/<name>`, or `<name>` without one."""
    name, experiment = _run_name(_root_=_root_), OmegaConf.select(_root_, "experiment_name", default=None)
    return f"{experiment}/{name}" if experiment else name


def _sweep_path(experiment_name: Optional[str]) -> str:
    return experiment_name or "adhoc"


OmegaConf.register_new_resolver("hw_run_path", _run_path, replace=True)
OmegaConf.register_new_resolver("hw_run_name", _run_name, replace=True)
OmegaConf.register_new_resolver("hw_sweep_path", _sweep_path, replace=True)
