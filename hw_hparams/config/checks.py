"""The checks Hydra cannot express: every value in its range, every interpolation resolved, no key
the schema lacks. Each refusal is a `ConfigError`: one line naming the key and what is allowed."""

from __future__ import annotations

import math
import re
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    GrammarParseError,
    InterpolationKeyError,
    InterpolationResolutionError,
    InterpolationValidationError,
    UnsupportedInterpolationType,
)

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.schema import allowed, not_a_key, schema_keys, schema_names
from hw_hparams.config.suggest import did_you_mean

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|cuda:job(/[1-9]\d*)?)$")
# One GPU per sweep job: cuda:job = GPU (job number mod GPU count); cuda:job/K: K consecutive jobs share a GPU.
JOB_DEVICE = re.compile(r"^cuda:job(?:/([1-9]\d*))?$")
_CHOICES = {
    "trainer.progress": ("auto", "true", "false"),
    "trainer.compile": ("auto", "true", "false"),
    "trainer.precision": ("auto", "fp32", "bf16", "fp16"),
    "trainer.restart": ("false", "true", "force"),
    "logger.wandb.mode": ("offline", "online"),
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value outside its allowed range."""

    check_resolvable(cfg)
    check_known_keys(cfg)

    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            value = OmegaConf.select(cfg, key)
            raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")

    finite = math.isfinite  # a float key takes inf and nan (and 1e400, which is inf): none of them is a setting
    need(finite(cfg.optim.lr) and cfg.optim.lr > 0, "optim.lr", "must be a finite number > 0")
    need(0 <= cfg.optim.momentum < 1, "optim.momentum", "must be in [0, 1)")
    need(
        finite(cfg.optim.weight_decay) and cfg.optim.weight_decay >= 0,
        "optim.weight_decay",
        "must be a finite number >= 0",
    )
    alpha = cfg.augmentation.mixup_alpha
    need(
        alpha is None or (finite(alpha) and alpha > 0),
        "augmentation.mixup_alpha",
        "must be a finite number > 0, or null for no mixup",
    )
    need(cfg.epochs >= 1, "epochs", "must be an integer >= 1")
    need(cfg.batch_size >= 1, "batch_size", "must be an integer >= 1")
    need(cfg.data.val_size >= 1, "data.val_size", "must be an integer >= 1")
    need(0 <= cfg.seed < 2**32, "seed", "must be an integer in [0, 2**32 - 1]")
    need(0 <= cfg.data.split_seed < 2**63, "data.split_seed", "must be an integer in [0, 2**63 - 1]")
    need(
        bool(_DEVICE.match(cfg.trainer.device)),
        "trainer.device",
        "one of auto, cpu, cuda, cuda:N, cuda:job, cuda:job/K (K jobs per GPU)",
    )
    for key, choices in _CHOICES.items():
        value = str(OmegaConf.select(cfg, key)).lower()
        need(value in choices, key, "one of " + ", ".join(choices) + did_you_mean(value, choices))


def raw_leaves(cfg: DictConfig) -> dict[str, Any]:
    """Dotted key -> the value as written (interpolations unresolved) of every leaf of `cfg`."""

    def leaves(node: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            return {prefix[:-1]: node}
        return {k: v for key, value in node.items() for k, v in leaves(value, f"{prefix}{key}.").items()}

    return leaves(OmegaConf.to_container(cfg, resolve=False), "")


def check_resolvable(cfg: DictConfig, keys: Optional[list[str]] = None) -> None:
    """Refuse (ConfigError) the first of `keys` (default: every key but Hydra's) whose interpolation,
    `${...}`, does not resolve: a missing key, an unknown resolver, a resolver that fails."""
    raw = raw_leaves(cfg)
    for key in keys if keys is not None else [k for k in raw if not k.startswith("hydra.")]:
        written = raw.get(key)
        if not (isinstance(written, str) and "${" in written):
            continue
        try:
            OmegaConf.select(cfg, key)
        except (InterpolationResolutionError, GrammarParseError) as err:
            raise ConfigError(unresolvable(key, written, err)) from None


def unresolvable(key: str, written: str, err: Exception) -> str:
    """One line for `key=written` whose interpolation failed with `err`: the key, the interpolation, why."""
    message = str(getattr(err, "msg", err)).splitlines()[0]
    named = re.search(r"\$\{([\w.]+):", written)
    resolver = named.group(1) if named else "?"
    if isinstance(err, InterpolationKeyError):
        missing = re.search(r"'(.*)'", message)
        name = missing.group(1) if missing else "the key it names"
        why = f"{name} is not a config key{did_you_mean(name, schema_names())}"
    elif isinstance(err, UnsupportedInterpolationType):
        why = f"there is no resolver {message.rsplit(' ', 1)[-1]} (OmegaConf's are oc.env, oc.select, oc.decode, ...)"
    elif isinstance(err, InterpolationValidationError):
        return f"{key}={written} is not allowed: {allowed(key)}"  # it resolves, to a value of another type
    elif isinstance(err, GrammarParseError):
        why = f"it is not a valid interpolation ({message})"
    elif "TypeError raised" in message:
        why = f"wrong arguments to the resolver {resolver}"
    else:
        why = (
            f"the resolver {resolver} failed: {message.split(' while resolving interpolation: ', 1)[-1].strip(chr(34))}"
        )
    return f"{key}={written} cannot be resolved: {why}"


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not have (Hydra's `+key=value` can add them)."""
    known = set(schema_keys())
    for key in _leaf_keys(cfg):
        if key not in known:
            raise ConfigError(not_a_key(key, schema_names()))


def _leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg:
        if k == "hydra" and not prefix:
            continue
        keys += _leaf_keys(cfg[k], f"{prefix}{k}.") if isinstance(cfg[k], DictConfig) else [f"{prefix}{k}"]
    return keys
