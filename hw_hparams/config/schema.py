"""The config schema: types and defaults (structured configs), and what it allows for each key, in words.

`conf/train.yaml` composes on top of `schema`, so OmegaConf rejects unknown keys, wrong types and
unknown enum values at composition; checks.validate then checks that every interpolation
resolves and every value is in range. Both end in a `ConfigError` that names the key and what is
allowed (`allowed`). Path keys (`path_keys`, marked in the schema) mean a place relative to the
folder the command ran in.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, read_write

from hw_hparams.config.suggest import did_you_mean


class ScheduleName(str, Enum):
    constant = "constant"
    cosine = "cosine"


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
    progress: str = "auto"  # a bar over each epoch's batches: auto (on a terminal, not in a pool's worker), true, false
    compile: str = "auto"  # CUDA graphs via torch.compile(mode="reduce-overhead"): auto (on for CUDA), true, false
    # auto (bf16 on GPUs with native bf16, fp16 + loss scaling on older ones, fp32 on CPU), fp32, bf16, fp16
    precision: str = "auto"
    tf32: bool = True  # CUDA: fp32 matmuls and convolutions in TF32 (false: full fp32)
    # false: resume (a finished run is not trained again); true: a run with trained epochs but no usable
    # checkpoint starts again at epoch 1 instead of refusing; force: every run starts again at epoch 1.
    # Restarted runs' earlier files go to <run>/old-N/ (folder.move_aside).
    restart: str = "false"


@dataclass
class ObjectiveConfig:
    """What the training job returns to Hydra's search sweepers (experiment=lr_wd_search; hw_hparams/runs/objective.py):
    a history metric (val_acc, val_loss, train_acc, train_loss) or test_acc / test_loss (with eval_test=true), at
    its final epoch or its best one. Never part of a run folder's name."""

    metric: str = "val_acc"  # a metric of runs/format.py (METRICS); checked by runs/objective.py
    at: str = "final"  # final or best


@dataclass
class SearchConfig:
    """The trial of a search this job trains (set by hydra/sweeper=search for each job; null outside a
    search): the run reports its objective to the trial after every epoch and the study's pruner may stop
    it (hw_hparams/runs/trial.py). Never part of a run folder's name."""

    trial: Optional[int] = None  # the trial's number in the study
    storage: Optional[str] = None  # the study's storage: an RDB URL (sqlite:///...) or a journal file's path
    study: Optional[str] = None  # the study's name


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
    search: SearchConfig = field(default_factory=SearchConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


ConfigStore.instance().store(name="schema", node=TrainConfig)


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


@functools.cache
def schema_names(node: Any = TrainConfig) -> tuple[str, ...]:
    """Every key of the schema, dotted: its leaves and the groups of keys above them (optim, optim.lr, ...)."""
    return tuple(sorted({k.rsplit(".", n)[0] for k in schema_keys(node) for n in range(k.count(".") + 1)}))


def not_a_key(key: str, known: Any) -> str:
    """One line for a key no config has: the close names among `known` (suggest.py), else where to see them."""
    where = "hydra" if key.startswith("hydra") else "job"
    return f"{key} is not a config key" + (
        did_you_mean(key, known) or f" (see `python -m hw_hparams.train --cfg {where}` for the keys)"
    )


def no_value(key: str, example: str | None) -> str:
    """One line for `key=` with nothing after the =: a value to give (`example`, as one is typed)."""
    if example is None:
        return f"{key}= has no value: give one, {key}=VALUE, or leave {key} out"
    return f"{key}= has no value: give one, e.g. {key}={example}"


def allowed(dotted: str, schema: Any = TrainConfig, given: Any = None) -> str:
    """What a schema (a dataclass) allows for a key, in words ('must be a number', 'one of constant, cosine', ...);
    for a `given` text that is not one of a key's choices, the close ones (suggest.py)."""
    t = _field_type(dotted, schema)
    optional = typing.get_origin(t) is typing.Union and type(None) in typing.get_args(t)
    if optional:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    if dataclasses.is_dataclass(t):
        return "it is a group of keys: set one of " + ", ".join(schema_keys(t, f"{dotted}."))
    choices = [m.value for m in t] if isinstance(t, type) and issubclass(t, Enum) else []
    words = (
        "one of " + ", ".join(choices)
        if choices
        else {
            bool: "must be true or false",
            int: "must be an integer",
            float: "must be a number",
            str: "must be text",
        }.get(t, "see --cfg job")
    )
    hint = did_you_mean(given, choices) if isinstance(given, str) else ""
    return words + (", or null" if optional else "") + hint


def flag(value: str, default: bool) -> bool:
    """An auto/true/false setting as a bool, `default` standing for auto."""
    value = str(value).lower()
    return default if value == "auto" else value == "true"


def as_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (enums as their names)."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
