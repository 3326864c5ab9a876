"""The config schema: types and defaults (structured configs) plus the range checks Hydra cannot express.

`conf/train.yaml` composes on top of `schema`, so OmegaConf rejects unknown keys, wrong types and
unknown enum values at composition; `validate` then checks that every interpolation resolves and
every value is in range. Both end in a `ConfigError` that names the key and what is allowed.
Path keys (`path_keys`, marked in the schema) mean a place relative to the folder the command ran in.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import os
import re
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, read_write
from omegaconf.errors import (
    GrammarParseError,
    InterpolationKeyError,
    InterpolationResolutionError,
    InterpolationValidationError,
    UnsupportedInterpolationType,
)

from . import objective
from .errors import ConfigError


class ScheduleName(str, Enum):
    constant = "constant"
    cosine = "cosine"


class ObjectiveMetric(str, Enum):
    val_acc = "val_acc"
    val_loss = "val_loss"
    train_acc = "train_acc"
    train_loss = "train_loss"
    test_acc = "test_acc"
    test_loss = "test_loss"


class ObjectiveAt(str, Enum):
    final = "final"
    best = "best"


class ModelName(str, Enum):
    mobilenetv2 = "mobilenetv2"
    mobilenetv1 = "mobilenetv1"
    tiny = "tiny"


@dataclass
class OptimConfig:
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass
class ScheduleConfig:
    name: ScheduleName = ScheduleName.constant


@dataclass
class AugmentationConfig:
    crop_flip: bool = True
    mixup_alpha: Optional[float] = None


@dataclass
class DataConfig:
    """CIFAR-100 through torchvision (conf/data/cifar100.yaml): `root` holds cifar-100-python/."""

    root: str = field(default="data", metadata={"path": True})  # relative: to the folder the command ran in
    download: bool = True  # fetch (and md5-check) the archive when it is missing
    val_size: int = 10000  # validation images split off the 50,000 training images
    split_seed: int = 0  # the seed of that split
    verify_checksums: bool = True


@dataclass
class ModelConfig:
    name: ModelName = ModelName.mobilenetv2


@dataclass
class TrainerConfig:
    """How a run executes (conf/trainer/default.yaml); none of these change what it computes (up to float rounding)."""

    device: str = "auto"  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N
    progress: str = "auto"  # progress bar over batches: auto (on a terminal), true, false
    num_workers: int = 0  # unused by the on-device pipeline; kept for the classic benchmark
    compile: str = "auto"  # CUDA graphs via torch.compile(mode="reduce-overhead"): auto (on for CUDA), true, false
    # auto (bf16 on GPUs with native bf16, fp16 + loss scaling on older ones, fp32 on CPU), fp32, bf16, fp16
    precision: str = "auto"
    tf32: bool = True  # CUDA: fp32 matmuls and convolutions in TF32 (false: full fp32)
    # true: a run with trained epochs but no usable checkpoint starts again at epoch 1 instead of refusing
    restart: bool = False


@dataclass
class ObjectiveConfig:
    """What the training job returns to Hydra's search sweepers (experiment=lr_wd_search; hw_hparams/objective.py):
    a history metric (val_acc, val_loss, train_acc, train_loss) or test_acc / test_loss (with eval_test=true), at
    its final epoch or its best one. Never part of a run folder's name."""

    metric: ObjectiveMetric = ObjectiveMetric.val_acc
    at: ObjectiveAt = ObjectiveAt.final


@dataclass
class TensorBoardConfig:
    enabled: bool = False


@dataclass
class MlflowConfig:
    enabled: bool = False
    tracking_uri: Optional[str] = None  # null: sqlite:///<logger.dir>/mlflow.db
    experiment: Optional[str] = None  # null: experiment_name (adhoc without one)


@dataclass
class WandbConfig:
    enabled: bool = False
    mode: str = "offline"  # offline (upload later with `wandb sync`) or online
    project: str = "hw_hparams"
    entity: Optional[str] = None


@dataclass
class LoggerConfig:
    """Trackers (hw_hparams/trackers/); none of this changes what a run computes (roles.py)."""

    dir: Optional[str] = field(
        default=None, metadata={"path": True}
    )  # where tracker files go; null: the run folder's parent
    study: Optional[str] = None  # the study the run belongs to, a tag (set by hw_hparams.homework)
    tensorboard: TensorBoardConfig = field(default_factory=TensorBoardConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class TrainConfig:
    """The whole config, with every default (the assignment's section-3 setting); conf/ picks group options."""

    epochs: int = 15
    batch_size: int = 128
    seed: int = 0
    eval_test: bool = False
    experiment_name: Optional[str] = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


ConfigStore.instance().store(name="schema", node=TrainConfig)

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|cuda:job(/[1-9]\d*)?)$")
# One GPU per sweep job: cuda:job = GPU (job number mod GPU count); cuda:job/K: K consecutive jobs share a GPU.
JOB_DEVICE = re.compile(r"^cuda:job(?:/([1-9]\d*))?$")
_CHOICES = {
    "trainer.progress": ("auto", "true", "false"),
    "trainer.compile": ("auto", "true", "false"),
    "trainer.precision": ("auto", "fp32", "bf16", "fp16"),
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
        need(str(OmegaConf.select(cfg, key)).lower() in choices, key, "one of " + ", ".join(choices))
    need(cfg.trainer.num_workers >= 0, "trainer.num_workers", "must be >= 0")
    bad = objective.problem(cfg.objective.metric.value, cfg.objective.at.value, cfg.eval_test)
    if bad:
        raise ConfigError(bad)


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
        why = f"{missing.group(1) if missing else 'the key it names'} is not a config key"
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


@functools.cache
def path_keys(node: Any = TrainConfig, prefix: str = "") -> tuple[str, ...]:
    """The dotted keys the schema marks as paths (`metadata={"path": True}`)."""
    keys: list[str] = []
    for f in dataclasses.fields(node):
        t = typing.get_type_hints(node)[f.name]
        keys += (
            path_keys(t, f"{prefix}{f.name}.")
            if dataclasses.is_dataclass(t)
            else [f"{prefix}{f.name}"] * bool(f.metadata.get("path"))
        )
    return tuple(keys)


def paths_from(cfg: DictConfig, folder: str) -> DictConfig:
    """A copy of `cfg` whose relative path keys are made absolute against `folder` (where the command
    ran), for a job that Hydra runs in another folder (hydra.job.chdir=true)."""
    cfg = copy.deepcopy(cfg)
    with read_write(cfg):
        for key in path_keys():
            value = OmegaConf.select(cfg, key)
            if value is not None and not os.path.isabs(value):
                OmegaConf.update(cfg, key, os.path.join(folder, value), merge=False)
    return cfg


def _field_type(dotted: str, schema: Any = TrainConfig) -> Any:
    """A schema's type annotation of a dotted key (None for a key the schema does not have)."""
    node: Any = schema
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        node = typing.get_type_hints(node).get(part)
    return node


@functools.cache
def schema_keys(node: Any = TrainConfig, prefix: str = "") -> tuple[str, ...]:
    """Every leaf key of the schema, dotted (cached: validate asks for every job)."""
    keys: list[str] = []
    for f in dataclasses.fields(node):
        t = typing.get_type_hints(node)[f.name]
        keys += schema_keys(t, f"{prefix}{f.name}.") if dataclasses.is_dataclass(t) else [f"{prefix}{f.name}"]
    return tuple(keys)


def allowed(dotted: str, schema: Any = TrainConfig) -> str:
    """What a schema (a dataclass) allows for a key, in words ('must be a number', 'one of constant, cosine', ...)."""
    t = _field_type(dotted, schema)
    optional = typing.get_origin(t) is typing.Union and type(None) in typing.get_args(t)
    if optional:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    if dataclasses.is_dataclass(t):
        return "it is a group of keys: set one of " + ", ".join(schema_keys(t, f"{dotted}."))
    if isinstance(t, type) and issubclass(t, Enum):
        words = "one of " + ", ".join(m.value for m in t)
    else:
        words = {
            bool: "must be true or false",
            int: "must be an integer",
            float: "must be a number",
            str: "must be text",
        }.get(t, "see --cfg job")
    return words + (", or null" if optional else "")


def check_known_keys(cfg: DictConfig) -> None:
    """Refuse keys the schema does not have (Hydra's `+key=value` can add them)."""
    known = set(schema_keys())
    for key in _leaf_keys(cfg):
        if key not in known:
            raise ConfigError(f"{key} is not a config key (see `python -m hw_hparams.train --cfg job` for the keys)")


def _leaf_keys(cfg: Any, prefix: str = "") -> list[str]:
    keys = []
    for k in cfg:
        if k == "hydra" and not prefix:
            continue
        keys += _leaf_keys(cfg[k], f"{prefix}{k}.") if isinstance(cfg[k], DictConfig) else [f"{prefix}{k}"]
    return keys


def flag(value: str, default: bool) -> bool:
    """An auto/true/false setting as a bool, `default` standing for auto."""
    value = str(value).lower()
    return default if value == "auto" else value == "true"


def as_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (enums as their names)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
