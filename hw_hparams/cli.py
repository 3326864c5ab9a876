"""Command-line guard rails: every user error ends in one line naming the key and what is allowed.

`preflight` composes the config of every job a command line would run (sweeps expanded, the
experiment's own `hydra.sweeper.params` included) before Hydra creates any folder, and exits 2
with one line on the first bad override or value. `exit_on_user_error` does the same for errors
found once a job runs (missing data, a val_size larger than the dataset), and removes the folder
Hydra made for a run that never started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError, validate

CONFIG_MODULE = "hw_hparams.conf"
MAX_CHECKED_JOBS = 256
# Hydra flags after which we leave the command line to Hydra alone (help, config printing, ...).
_HYDRA_ONLY = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--config", "-cp", "-cn", "-cd", "--resolve", "--shell-completion", "-sc", "--version", "--package", "-p", "--experimental-rerun")


def fail(message: str) -> None:
    """Print `error: message` as one line on stderr and exit with status 2."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def _describe(err: Exception, overrides: list[str]) -> str:
    """One line for a composition error: the key, and what is allowed."""
    if isinstance(err, MissingConfigException) and err.options:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=")[0] == group), name)
        hint = f" (or give a value: optim.lr={given})" if group == "lr" else ""
        return f"{group}={given} is not an option: choose one of {', '.join(sorted(err.options))}{hint}"
    if "Config group override must be a string" in str(err):
        group, given = next((o.split("=", 1) for o in overrides if o.split("=")[0] in _groups()), ("?", "?"))
        hint = f" (or give a value: optim.lr={given})" if group == "lr" else ""
        return f"{group}={given} is not an option: choose one of {', '.join(_groups()[group])}{hint}"
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            msg = str(getattr(cause, "msg", cause)).splitlines()[0]
            if msg.startswith("Key '") and " not in " in msg:
                return f"{cause.full_key} is not a config key (see `python -m hw_hparams.train --cfg job` for the keys)"
            return f"{cause.full_key}: {msg}"
        cause = cause.__cause__ or cause.__context__
    return str(err).strip().splitlines()[0]


def _groups() -> dict[str, list[str]]:
    """Config group -> its option names, read from the shipped conf/ folder."""
    root = resources.files(CONFIG_MODULE)
    return {
        d.name: sorted(f.name[: -len(".yaml")] for f in d.iterdir() if f.name.endswith(".yaml"))
        for d in root.iterdir() if d.is_dir() and not d.name.startswith("_")
    }


def _jobs(config_name: str, overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the command line would run."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    if not multirun:
        return [overrides]
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    cfg = compose(config_name, overrides=plain, return_hydra_config=True)
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    given = {o.get_key_element() for o in parsed}
    from_config = [f"{k}={v}" for k, v in params.items() if k not in given]
    all_overrides = parser.parse_overrides(from_config) + parsed
    return BasicSweeper.split_arguments(all_overrides, None)[0]


def check_overrides(config_name: str, overrides: list[str], multirun: bool = False, limit: int | None = MAX_CHECKED_JOBS) -> list[DictConfig]:
    """Compose and validate every job of the command line (the first `limit`; None: all), Hydra's own
    config included; returns the composed configs, or raises ConfigError for the first bad job."""
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        try:
            jobs = _jobs(config_name, overrides, multirun)
        except (HydraException, OmegaConfBaseException) as err:
            raise ConfigError(_describe(err, overrides)) from None
        configs = []
        for job in jobs[:limit]:
            try:
                cfg = compose(config_name, overrides=job, return_hydra_config=True)
            except (HydraException, OmegaConfBaseException, ValueError) as err:
                raise ConfigError(_describe(err, job)) from None
            validate(cfg)
            configs.append(cfg)
        return configs


def _check_output_folder(cfg: DictConfig, multirun: bool) -> None:
    """Raise ConfigError when the folder Hydra would create for `cfg` cannot be made (Hydra itself
    would end in a traceback)."""
    try:
        folder = Path(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
    except OmegaConfBaseException:  # an interpolation only Hydra's runtime can resolve: Hydra will say
        return
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        raise ConfigError(f"cannot create the output folder {folder}: {existing} is not a writable folder; choose another with {key}=...")


def plain_experiment(argv: list[str]) -> list[str]:
    """`+experiment=X` (Hydra's append syntax, common in docs) means `experiment=X` here:
    train.yaml lists `experiment: null`, so Hydra itself would reject the `+` form."""
    return [a[1:] if a.startswith("+experiment=") else a for a in argv]


def preflight(config_name: str, argv: list[str]) -> None:
    """Check a command line before Hydra runs it (every job's config, the output folder); on a user
    error print one line and exit 2."""
    if any(a.split("=")[0] in _HYDRA_ONLY for a in argv):
        return
    multirun = any(a in ("-m", "--multirun") for a in argv)
    overrides = [a for a in argv if not a.startswith("-")]
    try:
        configs = check_overrides(config_name, overrides, multirun)
        if configs:  # every job of a sweep shares its sweep folder
            _check_output_folder(configs[0], multirun)
    except ConfigError as err:
        fail(str(err))


@contextlib.contextmanager
def exit_on_user_error(run_dir: Path):
    """Turn a ConfigError raised inside a job into one line and exit 2.

    If no run had started in `run_dir` (no summary.json), the folder Hydra made for it is removed.
    """
    try:
        yield
    except ConfigError as err:
        if not (run_dir / "summary.json").exists():
            for name in (".hydra", "train.log", "data_stats.json"):
                path = run_dir / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()
        fail(str(err))
