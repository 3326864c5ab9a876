"""Hydra's and OmegaConf's composition errors, each as one line that names the key and what to type
instead: Hydra's words for its own syntax (`+key`, `~key`, a group's package), a key or config group
the config does not have (with the close names: suggest.py), a value the schema does not allow, and
a key set below a null one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from hydra.errors import HydraException, MissingConfigException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ConfigTypeError, OmegaConfBaseException

from hw_hparams.config import naming
from hw_hparams.config.errors import ConfigError
from hw_hparams.config.overrides import SWEEP_PARAMS, cannot_remove, config_groups, parse, training_names
from hw_hparams.config.schema import allowed, not_a_key, schema_keys
from hw_hparams.config.suggest import did_you_mean

# Hydra's composition errors a command line can cause, in Hydra 1.3's words (each row of
# tests/config/test_user_errors.py that causes one pins it).
_ADD_EXISTING = re.compile(r"Could not append to config\. An item is already at '(.+?)'")
_ADD_GROUP_TWICE = re.compile(r"Multiple values for (\S+)\. To override a value use")
_DELETE_MISSING = re.compile(r"Could not delete from config\. '(.+?)' does not exist")
_DELETE_OTHER_OPTION = re.compile(r"Could not delete '(.+?)=(.+)'\. No match in the defaults list")
_NO_GROUP = re.compile(r"but config group '(.+?)' does not exist")
_NOT_SETTABLE = re.compile(r"Could not override '(.+?)'")


def dotted_names(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain container (below `prefix`, itself included when given)."""
    if not isinstance(node, dict):
        return [prefix]
    below = [n for k, v in node.items() for n in dotted_names(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix, *below] if prefix else below


def _names_near(key: str, overrides: list[str]) -> Iterable[str]:
    """The names `key` may have meant: Hydra's keys as this command line composes them (a launcher's
    own keys), else the training names."""
    if not key.startswith("hydra."):
        return training_names()
    others = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != key]
    try:
        cfg = naming.compose_train(others, hydra=True)
    except (HydraException, OmegaConfBaseException):
        cfg = naming.compose_train([], hydra=True)
    return dotted_names(OmegaConf.to_container(cfg.hydra, resolve=False), "hydra")


def unknown(key: str, overrides: list[str]) -> str:
    """One line for a key or config group the config does not have, with the close names."""
    if "/" in key:
        where = "--hydra-help" if key.startswith("hydra/") else "--help"
        hint = did_you_mean(key, config_groups()) or f" (see `python -m hw_hparams.train {where}` for the groups)"
        return f"{key} is not a config group{hint}"
    return not_a_key(key, _names_near(key, overrides))


def below_null(overrides: list[str]) -> ConfigError:
    """The override that sets a key below a null one, or merges keys into a null one (OmegaConf fails
    those with an AssertionError or AttributeError, not one of its own errors)."""
    parsed = parse(overrides)
    for o in parsed:
        if o.is_delete():
            continue
        others = [x.input_line for x in parsed if x is not o and not x.is_sweep_override()]
        try:
            node: Any = OmegaConf.to_container(naming.compose_train(others, hydra=True), resolve=False)
        except (HydraException, OmegaConfBaseException, AssertionError, AttributeError):
            continue  # not this one alone
        parts, value = o.key_or_group.split("."), o.value()
        for n in range(1, len(parts) + isinstance(value, dict)):
            node = node.get(parts[n - 1]) if isinstance(node, dict) else node
            if node is not None:
                continue
            null = ".".join(parts[:n])
            instead = (
                "sweep on the command line instead: -m " + " ".join(f"{k}={v}" for k, v in value.items())
                if null == SWEEP_PARAMS  # its keys are checked before (check_values): here it is given whole
                else f"set {null} itself"
            )
            return ConfigError(f"{o.input_line}: {null} is null here, so it has no keys to set; {instead}")
    return ConfigError(f"{' '.join(overrides)}: Hydra cannot apply these overrides (see `--cfg job` for the keys)")


def _typed(overrides: list[str], key: str) -> str | None:
    """The value `key` is given on the command line, as typed (None when it is not given one)."""
    return next((o.split("=", 1)[1] for o in overrides if "=" in o and o.lstrip("+~").split("=", 1)[0] == key), None)


def _hydra_says(text: str, overrides: list[str]) -> str | None:
    """One line for a composition error Hydra words for its own syntax (+key, ~key, a group's package), if it is one."""
    if m := _ADD_EXISTING.search(text):
        key, value = m[1], _typed(overrides, m[1])
        return f"+{key}={value}: {key} is already in the config: set it without +, {key}={value}"
    if m := _ADD_GROUP_TWICE.search(text):
        group, value = m[1], _typed(overrides, m[1])
        return f"+{group}={value}: {group} already has an option: choose another without +, {group}={value}"
    if m := _DELETE_MISSING.search(text):
        return f"~{m[1]}: nothing to remove, {unknown(m[1], overrides)}"
    if m := _DELETE_OTHER_OPTION.search(text):
        group, option = m[1], m[2]
        return f"~{group}={option}: {group} is not {option} here; remove whichever option it has with ~{group}"
    if m := _NO_GROUP.search(text):
        return unknown(m[1].replace(".", "/"), overrides)
    if m := _NOT_SETTABLE.search(text):
        key, value = m[1], _typed(overrides, m[1])
        if "@" in key:
            group = key.split("@")[0]
            return f"{key}={value}: a config group's package (@...) cannot be changed here; write {group}={value}"
        if key == "hydra":
            return (
                f"hydra={value} is not allowed: it is a group of keys: set one of them, e.g. hydra.run.dir=... "
                "(see `python -m hw_hparams.train --cfg hydra` for the keys)"
            )
    return None


def describe(err: Exception, overrides: list[str]) -> str:
    """One line for a composition error: the key, and what is allowed (from the schema)."""
    if isinstance(err, MissingConfigException) and err.options:
        group, _, name = (err.missing_cfg_file or "").rpartition("/")
        options = sorted(err.options)
        return f"{group}={name} is not an option: choose one of {', '.join(options)}{did_you_mean(name, options)}"
    said = _hydra_says(str(err), overrides)
    if said:
        return said
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            key = cause.full_key
            if isinstance(cause, ConfigTypeError) and "does not support deletion" in str(cause):
                return str(cannot_remove(key))  # Hydra's own keys (structured configs): `~hydra.run.dir`
            given = _typed(overrides, key)
            if isinstance(cause, (ConfigKeyError, ConfigAttributeError)):
                return unknown(key, overrides)
            if key.startswith("hydra."):  # Hydra's and its plugins' own keys: their schema, their words
                reason = str(getattr(cause, "msg", cause)).splitlines()[0]
                return f"{key}={given} is not allowed: {reason}"
            if not any(k == key or k.startswith(f"{key}.") for k in schema_keys()):
                return unknown(key, overrides)
            return (
                f"{key}={given} is not allowed: {allowed(key, given=given)}"
                if given is not None
                else f"{key} is not allowed: {allowed(key)}"
            )
        cause = cause.__cause__ or cause.__context__
    return str(err).strip().splitlines()[0]
