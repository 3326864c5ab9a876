"""Command-line guard rails: a command is checked whole before Hydra writes anything.

`preflight` reads the command line with Hydra's own argument parser and its flags (hydra_flags.py),
composes the config of every job it would run (the overrides and the job list: overrides.py),
validates each (config/checks.py, runs/objective.py), and checks each job's run folder without
writing to it (writable, no run of another configuration, no live process holding it). With a flag
that prints instead of running (--cfg, --help, --info) the configs are checked the same way, nothing
else; `-m ... --cfg job` prints every job's config (Hydra itself takes no -m with --cfg). Every user
error is one line on stderr and exit status 2. `exit_on_user_error` does the same for errors only a
job can find (missing data, a val_size larger than the dataset) and removes the empty folder Hydra
made for a run that never started.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import OmegaConfBaseException

from hw_hparams.config import naming
from hw_hparams.config.checks import check_resolvable, raw_leaves, validate
from hw_hparams.config.compose_errors import below_null, describe
from hw_hparams.config.errors import ConfigError, fail
from hw_hparams.config.hydra_flags import check_config_flags, check_flags, print_configs
from hw_hparams.config.overrides import (
    check_deletes,
    check_group_overrides,
    check_values,
    command_jobs,
    parse_command_line,
)
from hw_hparams.config.roles import max_fused_problem
from hw_hparams.data import check_dataset
from hw_hparams.engine.device import check_available
from hw_hparams.runs import objective, trial
from hw_hparams.runs.folder import check_usable
from hw_hparams.runs.lock import check_free
from hw_hparams.runs.objective import SEARCH_EXTRA_MISSING, optuna_missing
from hw_hparams.trackers import check_installed

log = logging.getLogger(__name__)

MAX_CHECKED_JOBS = 256
# Run folder -> the highest of its folders that did not exist when preflight checked it (in this
# process): what a refused job may remove again, when empty.
_NEW_FOLDERS: dict[Path, Path] = {}
# Hydra's keys every job resolves to find its folder (checked for interpolations that do not resolve).
RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
# Hydra's flags that print something instead of running (the overrides checked, nothing else).
_SHOW_FLAGS = ("help", "hydra_help", "cfg", "info")


def check_config(cfg: DictConfig) -> None:
    """Every value of one job's config in its range (config/checks.py) and an objective it can give
    (runs/objective.py); ConfigError for the first that is not."""
    validate(cfg)
    objective.check(cfg)


def check_overrides(
    overrides: list[str], multirun: bool = False, limit: int | None = MAX_CHECKED_JOBS, here: bool = True
) -> list[DictConfig]:
    """Compose and validate every job of the command line (the first `limit`; None: all), Hydra's own
    config included, and with `here` what this machine must have for them (a device, a tracker's or a
    sweeper's package); returns the composed configs, or raises ConfigError for the first bad job."""
    with naming.hydra_context():
        try:
            check_deletes(overrides)
            check_values(overrides)
            check_group_overrides(overrides)
            jobs = command_jobs(overrides, multirun)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(describe(err, overrides)) from None
        except (AssertionError, AttributeError):  # OmegaConf, setting a key below a null one
            raise below_null(overrides) from None
        configs = []
        for job in jobs[:limit]:
            try:
                check_group_overrides(job)
                cfg = naming.compose_train(job, hydra=True)
            except (HydraException, OmegaConfBaseException) as err:
                raise ConfigError(describe(err, job)) from None
            except (AssertionError, AttributeError):
                raise below_null(job) from None
            with naming.as_hydra_config(cfg):  # `${hydra:runtime.cwd}` resolves as it will in the job
                check_config(cfg)
                check_resolvable(cfg, [*RUN_DIR_KEYS, *(o.split("=", 1)[0] for o in job if o.startswith("hydra."))])
                pinned = _hydra_resolved(cfg)
            with read_write(cfg):
                for key, value in pinned.items():
                    OmegaConf.update(cfg, key, value, merge=False)
            _check_launcher(cfg, here)
            if here:
                check_installed(cfg)  # logger=...: its package (an extra)
                check_available(cfg.trainer.device)
            configs.append(cfg)
        return configs


def _hydra_resolved(cfg: DictConfig) -> dict[str, Any]:
    """Where the config uses `${hydra:...}`: the value of each interpolated key and of the run folder's
    keys, so that the composed config resolves as it does here once HydraConfig holds another."""
    raw = raw_leaves(cfg)
    if not any(isinstance(v, str) and "${hydra:" in v for v in raw.values()):
        return {}
    keys = [k for k, v in raw.items() if not k.startswith("hydra.") and isinstance(v, str) and "${" in v]
    return {k: OmegaConf.select(cfg, k) for k in [*keys, *RUN_DIR_KEYS]}


def _check_launcher(cfg: DictConfig, here: bool) -> None:
    """The launcher (and sweeper) settings Hydra would only see once it instantiates them (with `here`:
    the sweeper's package too)."""
    search = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="")).endswith(".SearchSweeper")
    if here and search and optuna_missing():
        raise ConfigError(SEARCH_EXTRA_MISSING)
    if here and search:
        trial.check_classes(cfg.hydra)
    if str(OmegaConf.select(cfg, "hydra.launcher._target_", default="")).endswith("FusedLauncher"):
        problem = max_fused_problem(OmegaConf.select(cfg, "hydra.launcher.max_fused", default=None))
        if problem:
            raise ConfigError(problem)


def check_data(configs: list[DictConfig]) -> None:
    """What can be known of each job's data before it runs (files there, val_size fits), once per dataset."""
    for data in {(c.data.root, c.data.download, c.data.val_size) for c in configs}:
        check_dataset(*data)


def check_folders(configs: list[DictConfig], multirun: bool) -> None:
    """Check every job's run folder without writing (ConfigError)."""
    for cfg in configs:
        run_dir, config = naming.job_folder(cfg, multirun), naming.task_dict(cfg)
        missing = [p for p in [run_dir.absolute(), *run_dir.absolute().parents] if not p.exists()]
        if missing:
            _NEW_FOLDERS[run_dir.absolute()] = missing[-1]
        check_usable(run_dir, config, "hydra.sweep.dir" if multirun else "hydra.run.dir")
        check_free(run_dir)


def normalize_argv(argv: list[str]) -> list[str]:
    """Forgiving readings of a command line, as Hydra takes it: `+experiment=X` (Hydra's append syntax,
    common in docs) means `experiment=X` (train.yaml lists `experiment: null`, so Hydra would reject
    the `+` form), `-m`/`--multirun` may stand anywhere, and so may the overrides around Hydra's other
    flags (Hydra's parser takes them in one run, and `--info key=value` as --info's argument)."""
    argv = [a[1:] if a.startswith("+experiment=") else a for a in argv]
    multirun = [a for a in argv if a in ("-m", "--multirun")]
    rest = [a for a in argv if a not in ("-m", "--multirun")]
    overrides = [a for a in rest if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    return multirun[:1] + overrides + [a for a in rest if a not in overrides]


def preflight(argv: list[str]) -> None:
    """Check a command line before Hydra runs it (every job's config and run folder); on a user
    error print one line and exit 2.
    `--cfg` is answered here (exit 0): each job's config with -m, which Hydra refuses."""
    try:
        args = parse_command_line(argv)
        if args.config_path or args.config_dir or args.config_name or args.experimental_rerun:
            check_config_flags(args)
            return  # a config of one's own: Hydra's to compose
        check_flags(args, argv)
        if args.shell_completion:
            return
        shows = any(getattr(args, flag) for flag in _SHOW_FLAGS)
        # --cfg is printed here, not by Hydra (a sweep's jobs; --resolve of the run folders), unless a help comes first
        prints = args.cfg is not None and not (args.help or args.hydra_help)
        limit = None if prints else 1 if shows else MAX_CHECKED_JOBS
        configs = check_overrides(args.overrides, args.multirun, limit, here=not shows)
        if prints:
            print_configs(configs, args)
            sys.exit(0)
        if shows:
            return
        check_folders(configs, args.multirun)
        check_data(configs)
    except ConfigError as err:
        fail(str(err))


@contextlib.contextmanager
def exit_on_user_error(run_dir: Path):
    """Turn a ConfigError raised inside a job into one line and exit 2; the folder Hydra made for a
    run that never started is removed when it is still empty."""
    try:
        yield
    except ConfigError as err:
        top = _NEW_FOLDERS.get(run_dir.absolute(), run_dir.absolute())
        for folder in [run_dir.absolute(), *run_dir.absolute().parents]:
            try:
                folder.rmdir()  # only when empty: nothing of an existing run is touched
            except OSError:
                break
            if folder == top:
                break
        fail(str(err))
