"""The command line read before anything is composed: Hydra's own parser, each override checked against
the config groups and the schema (what Hydra would misread or fail on late), the names a command line
may use, and the list of jobs a command would run (sweeps expanded, the experiment's own
`hydra.sweeper.params` and the stage sweeper's jobs included). Every refusal is a `ConfigError`: one
line naming the key and what is allowed; compose_errors.py words the errors of composition itself."""

from __future__ import annotations

import functools
import re
from typing import Any

from hydra._internal.utils import get_args_parser  # Hydra's own command-line parser (pinned by a test)
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf

from hw_hparams.config import naming
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.roles import run_settings
from hw_hparams.config.schema import allowed, no_value, schema_keys, schema_names
from hw_hparams.config.suggest import did_you_mean

SWEEP_PARAMS = "hydra.sweeper.params"  # the sweeper's {key: sweep}, keys holding dots
NOT_AN_OVERRIDE = (
    "is not a valid override: write key=value, a sweep as key=a,b,c, and quote a value that holds , = [ ] ( ) "
    "or spaces: key='...'"
)


def parse_command_line(argv: list[str]) -> Any:
    """Hydra's reading of `argv` (overrides, -m, --cfg, ...); a malformed flag is a ConfigError."""
    parser = get_args_parser()

    def error(message: str) -> None:
        missing = re.fullmatch(r"argument (\S+): expected one argument", message)
        flag = missing and parser._option_string_actions.get(missing[1].split("/")[0])
        choices = f": {', '.join(flag.choices)}" if flag and flag.choices else ""  # --cfg: job, hydra, all
        raise ConfigError(f"{message}{choices} (see --help)")

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
    """`group=value` names no option: the options, and the close ones, or for a number the key it may have meant."""
    key = _value_key(group) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if key and allowed(key).startswith("must be a number"):
        hint = f" (or give a value: {key}={given})"
    else:
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
    shown = naming.spell(value) if not isinstance(value, str) else value
    return ConfigError(f"{group}={shown} is not an option: choose one of {', '.join(options)}{hint}")


@functools.cache
def config_groups(parent: str = "") -> tuple[str, ...]:
    """Every config group below `parent`, as a path: lr, experiment, hydra/launcher, ..."""
    paths = [f"{parent}/{g}" if parent else g for g in _config_loader().list_groups(parent)]
    return tuple(p for path in paths for p in (path, *config_groups(path)))


@functools.cache
def training_names() -> frozenset[str]:
    """What a training command line may name besides Hydra's keys: every schema key and group of keys
    (optim, optim.lr), every config group (lr, hydra/launcher)."""
    with naming.hydra_context():
        return frozenset(schema_names()) | frozenset(config_groups())


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


def _default(key: str) -> Any:
    """`key`'s value (a plain container for a group of keys) as the command line without overrides composes it."""
    node: Any = OmegaConf.to_container(naming.compose_train([], hydra=True), resolve=False)
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _typed_default(key: str) -> str | None:
    """`key`'s value without overrides, as one types it (None when it has none)."""
    node = _default(key)
    return None if node is None else node if isinstance(node, str) else naming.spell(node)


def cannot_remove(key: str) -> ConfigError:
    """`~key` of a key every run has: it cannot be removed; what to set instead (its value in the composed config)."""
    node = _default(key)
    if isinstance(node, dict):
        return ConfigError(
            f"~{key}: {key} cannot be removed, every run needs it; set its keys instead: "
            + ", ".join(f"{key}.{k}" for k in node)
        )
    example = _typed_default(key)
    return ConfigError(
        f"~{key}: {key} cannot be removed, every run needs it; set it instead"
        + (f", e.g. {key}={example}" if example is not None else "")
    )


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


def check_values(overrides: list[str]) -> None:
    """What Hydra would take and fail on later, or silently misread: an empty value (`key=`), a config
    group's option given with a dot (`hydra.launcher=joblib`: it would replace the launcher's keys), a
    key of the sweeper's params (they are keys with dots: a sweep is given on the command line)."""
    for o in parse(overrides):
        key = o.key_or_group
        if o.is_delete() or _group_options(key) is not None:
            continue
        if not key:
            raise ConfigError(f"{o.input_line!r} {NOT_AN_OVERRIDE}")
        value = o.value()
        if key.startswith(f"{SWEEP_PARAMS}."):  # hydra.sweeper.params.optim.lr: it has a key `optim.lr`, not `optim`
            swept = f"{key.removeprefix(f'{SWEEP_PARAMS}.')}={o.input_line.split('=', 1)[1]}"
            raise ConfigError(
                f"{o.input_line}: a sweeper's params are not set one by one; "
                f"sweep on the command line instead: -m {swept}"
            )
        if value == "":
            raise ConfigError(no_value(key, _typed_default(key)))
        group = key.replace(".", "/")
        options = _group_options(group)
        if options is not None and not isinstance(value, dict):
            given = o.input_line.split("=", 1)[1]
            if value in options:
                raise ConfigError(
                    f"{o.input_line} is not allowed: a config group's option is chosen with /: {group}={given}"
                )
            raise ConfigError(
                f"{o.input_line} is not allowed: {group} is a config group: choose one of {', '.join(options)}"
                f" with {group}=OPTION{did_you_mean(given, options)}"
            )


def parse(overrides: list[str]) -> list:
    """The parsed overrides; a malformed one is a ConfigError naming it."""
    parser = OverridesParser.create()
    for line in overrides:
        try:
            parser.parse_overrides([line])
        except OverrideParseException:
            raise ConfigError(f"{line!r} {NOT_AN_OVERRIDE}") from None
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
