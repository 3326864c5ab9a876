"""The command line read before anything is composed: Hydra's own parser, each override checked against
the config groups and the schema, Hydra's composition errors in one line, and the list of jobs a
command would run (sweeps expanded, the experiment's own `hydra.sweeper.params` and the stage
sweeper's jobs included). Every refusal is a `ConfigError`: one line naming the key and what is allowed."""

from __future__ import annotations

import functools
from typing import Any

from hydra._internal.utils import get_args_parser  # Hydra's own command-line parser (pinned by a test)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ConfigTypeError, OmegaConfBaseException

from . import naming
from .config import allowed, schema_keys
from .errors import ConfigError
from .run_folder import run_settings


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
    for o in parse(overrides):
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
    for o in parse(overrides):
        key = o.key_or_group
        if (
            o.is_delete()
            and _group_options(key) is None
            and any(k == key or k.startswith(f"{key}.") for k in schema_keys())
        ):
            raise cannot_remove(key)


def describe(err: Exception, overrides: list[str]) -> str:
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


def parse(overrides: list[str]) -> list:
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


def command_jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the command line would run."""
    if not multirun:
        return [overrides]
    parsed = parse(overrides)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    sweeper = OmegaConf.select(naming.compose_train(plain, hydra=True), "hydra.sweeper")
    if sweeper is not None and "jobs" in sweeper:  # hydra/sweeper=stage: its listed jobs under the line's expansion
        return naming.stage_jobs(naming.expand(list(overrides)), OmegaConf.to_container(sweeper.jobs))
    params = OmegaConf.select(sweeper, "params") or {}
    given = {o.get_key_element() for o in parsed}
    return naming.expand([f"{k}={v}" for k, v in params.items() if k not in given] + list(overrides))
