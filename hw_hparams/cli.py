"""Command-line guard rails: a command is checked whole before Hydra writes anything.

`preflight` reads the command line with Hydra's own argument parser, composes the config of every
job it would run (sweeps expanded, the experiment's own `hydra.sweeper.params` included),
validates each, and checks each job's run folder without writing to it (writable, no run of another
configuration, no live process holding it); then it moves folders made by the previous naming to
their canonical names. Every user error is one line on stderr and exit status 2.
`exit_on_user_error` does the same for errors only a job can find (missing data, a val_size
larger than the dataset) and removes the empty folder Hydra made for a run that never started.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import Any

from hydra._internal.utils import get_args_parser  # Hydra's own command-line parser (pinned by a test)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ConfigTypeError, OmegaConfBaseException

from . import naming
from .config import allowed, schema_keys
from .config_checks import check_resolvable, raw_leaves, validate
from .data import check_dataset
from .device import check_available
from .errors import ConfigError, fail
from .lock import check_free
from .objective import SEARCH_EXTRA_MISSING, optuna_missing
from .roles import max_fused_problem
from .run_folder import check_usable, read_summary, run_settings
from .trackers import check_installed

log = logging.getLogger(__name__)

MAX_CHECKED_JOBS = 256
# Run folder -> the highest of its folders that did not exist when preflight checked it (in this
# process): what a refused job may remove again, when empty.
_NEW_FOLDERS: dict[Path, Path] = {}
# Hydra's flags that print something instead of running (left to Hydra, unchecked).
# Hydra's keys every job resolves to find its folder (checked for interpolations that do not resolve).
RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "hydra.sweep.subdir")
_NO_RUN_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")


def parse_command_line(argv: list[str]) -> Any:
    """Hydra's reading of `argv` (overrides, -m, --cfg, ...); a malformed flag is a ConfigError."""
    parser = get_args_parser()

    def error(message: str) -> None:
        raise ConfigError(f"{message} (see --help)")

    parser.error = error  # argparse would print its usage text and exit
    return parser.parse_args(argv)


def _config_loader():
    return GlobalHydra.instance().config_loader()


@functools.cache
def _group_options(group: str) -> tuple[str, ...] | None:
    """The options of config group `group` (e.g. `lr`, `hydra/launcher`), or None if it is no group.
    Cached: the packaged configs do not change in a process, and each lookup copies Hydra's repository."""
    parent, _, _ = group.rpartition("/")
    if group.split("/")[-1] not in _config_loader().list_groups(parent):
        return None
    return tuple(sorted(_config_loader().get_group_options(group)))


@functools.cache
def _value_key(group: str) -> str | None:
    """The one config key a group's options set (lr -> optim.lr), if exactly one; for the hint."""
    settings = [
        run_settings(naming.task_dict(naming.compose_train([f"{group}={o}"]))) for o in _group_options(group) or []
    ]
    keys = {k for s in settings for k, v in s.items() if v != settings[0].get(k)}
    return keys.pop() if len(keys) == 1 else None


def _option_error(group: str, value: Any, given: str, options: tuple[str, ...]) -> ConfigError:
    key = _value_key(group) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    hint = f" (or give a value: {key}={given})" if key and allowed(key).startswith("must be a number") else ""
    shown = naming.spell(value) if not isinstance(value, str) else value
    return ConfigError(f"{group}={shown} is not an option: choose one of {', '.join(options)}{hint}")


def check_group_overrides(overrides: list[str]) -> None:
    """Every override of a config group names one of its options (numbers are not options)."""
    for o in _parse(overrides):
        if o.is_delete():
            continue
        options = _group_options(o.key_or_group)
        if options is None:
            continue
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        # a list: several (logger=[a,b])
        for v in [x for value in values for x in (value if isinstance(value, list) else [value])]:
            if not (isinstance(v, str) and v in options):  # Hydra takes no null here, not even where train.yaml has one
                raise _option_error(o.key_or_group, v, o.input_line.split("=", 1)[1], options)


def cannot_remove(key: str) -> ConfigError:
    """`~key` of a key every run has: it cannot be removed; what to set instead (its value in the composed config)."""
    node: Any = OmegaConf.to_container(naming.compose_train([], hydra=True), resolve=False)
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        return ConfigError(
            f"~{key}: {key} cannot be removed, every run needs it; set its keys instead: "
            + ", ".join(f"{key}.{k}" for k in node)
        )
    example = f", e.g. {key}={node if isinstance(node, str) else naming.spell(node)}" if node is not None else ""
    return ConfigError(f"~{key}: {key} cannot be removed, every run needs it; set it instead{example}")


def check_deletes(overrides: list[str]) -> None:
    """Refuse `~key` (Hydra's delete) of a schema key or group of keys; a config group may be deleted."""
    for o in _parse(overrides):
        key = o.key_or_group
        if (
            o.is_delete()
            and _group_options(key) is None
            and any(k == key or k.startswith(f"{key}.") for k in schema_keys())
        ):
            raise cannot_remove(key)


def _describe(err: Exception, overrides: list[str]) -> str:
    """One line for a composition error: the key, and what is allowed (from the schema)."""
    if isinstance(err, MissingConfigException) and err.options:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        return f"{group}={name} is not an option: choose one of {', '.join(sorted(err.options))}"
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            key = cause.full_key
            if isinstance(cause, ConfigTypeError) and "does not support deletion" in str(cause):
                return str(cannot_remove(key))  # Hydra's own keys (structured configs): `~hydra.run.dir`
            given = next(
                (o.split("=", 1)[1] for o in overrides if "=" in o and o.lstrip("+~").split("=", 1)[0] == key), None
            )
            if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
                return (
                    f"{key} is not a config key (see `python -m hw_hparams.train "
                    f"--cfg {'hydra' if key.startswith('hydra.') else 'job'}` for the keys)"
                )
            if key.startswith("hydra."):  # Hydra's and its plugins' own keys: their schema, their words
                reason = str(getattr(cause, "msg", cause)).splitlines()[0]
                return f"{key}={given} is not allowed: {reason}"
            if not any(k == key or k.startswith(f"{key}.") for k in schema_keys()):
                return f"{key} is not a config key (see `python -m hw_hparams.train --cfg job` for the keys)"
            return (
                f"{key}={given} is not allowed: {allowed(key)}"
                if given is not None
                else f"{key} is not allowed: {allowed(key)}"
            )
        cause = cause.__cause__ or cause.__context__
    return str(err).strip().splitlines()[0]


def _parse(overrides: list[str]) -> list:
    """The parsed overrides; a malformed one is a ConfigError naming it."""
    parser = OverridesParser.create()
    for line in overrides:
        try:
            parser.parse_overrides([line])
        except OverrideParseException:
            raise ConfigError(
                f"{line!r} is not a valid override: write key=value, a sweep as key=a,b,c, and quote a value "
                "that holds , = [ ] ( ) or spaces: key='...'"
            ) from None
    return parser.parse_overrides(overrides)


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the command line would run."""
    if not multirun:
        return [overrides]
    parsed = _parse(overrides)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeper = OmegaConf.select(naming.compose_train(plain, hydra=True), "hydra.sweeper")
    if sweeper is not None and "jobs" in sweeper:  # hydra/sweeper=stage: its listed jobs under the line's expansion
        return naming.stage_jobs(naming.expand(list(overrides)), OmegaConf.to_container(sweeper.jobs))
    params = OmegaConf.select(sweeper, "params") or {}
    given = {o.get_key_element() for o in parsed}
    return naming.expand([f"{k}={v}" for k, v in params.items() if k not in given] + list(overrides))


def check_overrides(
    overrides: list[str], multirun: bool = False, limit: int | None = MAX_CHECKED_JOBS
) -> list[DictConfig]:
    """Compose and validate every job of the command line (the first `limit`; None: all), Hydra's own
    config included; returns the composed configs, or raises ConfigError for the first bad job."""
    with naming.hydra_context():
        try:
            check_deletes(overrides)
            check_group_overrides(overrides)
            jobs = _jobs(overrides, multirun)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_describe(err, overrides)) from None
        configs = []
        for job in jobs[:limit]:
            try:
                check_group_overrides(job)
                cfg = naming.compose_train(job, hydra=True)
            except (HydraException, OmegaConfBaseException) as err:
                raise ConfigError(_describe(err, job)) from None
            with _as_hydra_config(cfg):  # `${hydra:runtime.cwd}` resolves as it will in the job
                validate(cfg)
                check_resolvable(cfg, [*RUN_DIR_KEYS, *(o.split("=", 1)[0] for o in job if o.startswith("hydra."))])
                pinned = _hydra_resolved(cfg)
            with read_write(cfg):
                for key, value in pinned.items():
                    OmegaConf.update(cfg, key, value, merge=False)
            check_installed(cfg)  # logger=...: its package (an extra)
            check_available(cfg.trainer.device)
            _check_launcher(cfg)
            configs.append(cfg)
        return configs


@contextlib.contextmanager
def _as_hydra_config(cfg: DictConfig):
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


def _hydra_resolved(cfg: DictConfig) -> dict[str, Any]:
    """Where the config uses `${hydra:...}`: the value of each interpolated key and of the run folder's
    keys, so that the composed config resolves as it does here once HydraConfig holds another."""
    raw = raw_leaves(cfg)
    if not any(isinstance(v, str) and "${hydra:" in v for v in raw.values()):
        return {}
    keys = [k for k, v in raw.items() if not k.startswith("hydra.") and isinstance(v, str) and "${" in v]
    return {k: OmegaConf.select(cfg, k) for k in [*keys, *RUN_DIR_KEYS]}


def _check_launcher(cfg: DictConfig) -> None:
    """The launcher (and sweeper) settings Hydra would only see once it instantiates them."""
    if str(OmegaConf.select(cfg, "hydra.sweeper._target_", default="")).endswith(".SearchSweeper") and optuna_missing():
        raise ConfigError(SEARCH_EXTRA_MISSING)
    if str(OmegaConf.select(cfg, "hydra.launcher._target_", default="")).endswith("FusedLauncher"):
        problem = max_fused_problem(OmegaConf.select(cfg, "hydra.launcher.max_fused", default=None))
        if problem:
            raise ConfigError(problem)


def job_folder(cfg: DictConfig, multirun: bool) -> Path:
    """The run folder Hydra will use for the job composed as `cfg`."""
    if multirun:
        return Path(cfg.hydra.sweep.dir) / str(cfg.hydra.sweep.subdir)
    return Path(cfg.hydra.run.dir)


def _legacy_move(run_dir: Path, cfg: DictConfig, multirun: bool, config: dict) -> tuple[Path, Path] | None:
    """(old, new) when `run_dir` does not exist but this job's folder under the previous naming does."""
    if run_dir.exists():
        return None
    parent = Path(cfg.hydra.sweep.dir) if multirun else Path(cfg.hydra.run.dir).parent
    for name in naming.legacy_names(OmegaConf.to_container(cfg.hydra.overrides.task, resolve=False)):  # as typed
        old = parent / name
        summary = read_summary(old, warn=False) if old.is_dir() and old != run_dir else None
        if summary is not None:
            check_free(old)
            try:
                check_usable(old, config)
            except ConfigError:
                continue  # another run under that name: not ours
            return old, run_dir
    return None


def check_data(configs: list[DictConfig]) -> None:
    """What can be known of each job's data before it runs (files there, val_size fits), once per dataset."""
    for data in {(c.data.root, c.data.download, c.data.val_size) for c in configs}:
        check_dataset(*data)


def check_folders(configs: list[DictConfig], multirun: bool) -> list[tuple[Path, Path]]:
    """Check every job's run folder without writing (ConfigError); the legacy folders to move."""
    moves = []
    for cfg in configs:
        run_dir, config = job_folder(cfg, multirun), naming.task_dict(cfg)
        missing = [p for p in [run_dir.absolute(), *run_dir.absolute().parents] if not p.exists()]
        if missing:
            _NEW_FOLDERS[run_dir.absolute()] = missing[-1]
        check_usable(run_dir, config, "hydra.sweep.dir" if multirun else "hydra.run.dir")
        check_free(run_dir)
        move = _legacy_move(run_dir, cfg, multirun, config)
        if move:
            moves.append(move)
    return moves


def normalize_argv(argv: list[str]) -> list[str]:
    """Two forgiving readings of a command line, as Hydra takes it: `+experiment=X` (Hydra's append
    syntax, common in docs) means `experiment=X` (train.yaml lists `experiment: null`, so Hydra
    would reject the `+` form), and `-m`/`--multirun` may stand anywhere (Hydra wants it before the
    overrides)."""
    argv = [a[1:] if a.startswith("+experiment=") else a for a in argv]
    multirun = [a for a in argv if a in ("-m", "--multirun")]
    return multirun[:1] + [a for a in argv if a not in ("-m", "--multirun")]


def preflight(argv: list[str]) -> None:
    """Check a command line before Hydra runs it (every job's config and run folder); on a user
    error print one line and exit 2. Then move any run folder of the previous naming into place."""
    try:
        args = parse_command_line(argv)
        if (
            any(getattr(args, flag, None) for flag in _NO_RUN_FLAGS)
            or args.config_path
            or args.config_dir
            or args.config_name
        ):
            return
        configs = check_overrides(args.overrides, args.multirun)
        moves = check_folders(configs, args.multirun)
        check_data(configs)
    except ConfigError as err:
        fail(str(err))
    for old, new in moves:
        new.parent.mkdir(parents=True, exist_ok=True)
        os.rename(old, new)
        log.warning("moved %s to %s (run folders are now named by their settings)", old, new)


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
