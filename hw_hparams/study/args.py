"""The homework's command line: its own settings, their help text, and the checks of everything else
on the line (training overrides given to every run) before the study starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.overrides import training_names
from hw_hparams.config.schema import allowed, no_value
from hw_hparams.config.suggest import did_you_mean
from hw_hparams.runs.folder import check_creatable
from hw_hparams.study.selection import Metric

# Keys the study sets itself (per section, or from an earlier section's choice).
RESERVED = {
    "experiment",
    "experiment_name",
    "lr",
    "optim.lr",
    "schedule",
    "schedule.name",
    "regularization",
    "optim.weight_decay",
    "augmentation",
    "augmentation.mixup_alpha",
    "augmentation.crop_flip",
    "eval_test",
    "hydra.sweep.dir",
    "hydra.sweep.subdir",
    "hydra/launcher",
    "hydra/sweeper",
    "hydra.sweeper.jobs",
}
SWEEPABLE = {"seed"}  # swept on the command line, every section runs every value (error bars)


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class StudySettings:
    """The homework's own settings (everything else on the command line goes to every training run)."""

    study: Optional[str] = _setting(
        None, "the study's folder: <out>/<study>/{<section>/,report/}; homework, or homework-demo with demo=true"
    )
    out: str = _setting("outputs", "folder that holds studies")
    demo: bool = _setting(False, "generated data, model=tiny, every section's epochs x demo_epoch_scale")
    select_by: Metric = _setting(
        Metric.val_acc, "final-epoch metric that picks section 3's lr: val_acc, val_loss, train_loss, train_acc"
    )
    select_wd_by: Metric = _setting(
        Metric.val_acc, "final-epoch metric that picks section 5's weight decay for the mixup run"
    )
    launcher: str = _setting(
        "auto",
        "hydra/launcher of every sweep: auto (fused on CUDA, basic on the CPU, as measured), "
        "fused, basic, joblib, slurm, ...",
    )
    speculate: str = _setting(
        "auto",
        "mixup under both weight-decay candidates alongside wd_sweep: "
        "auto (where runs train at once: not basic), true, false",
    )
    plan: bool = _setting(False, "print the stages, the critical path and an estimate; train and write nothing")
    bench: Optional[str] = _setting(
        None, "with plan=true: a JSON of `python -m hw_hparams.bench --out` for the estimate (default: benchmarks/)"
    )
    figures: bool = _setting(True, "draw the report's figures (PNG + PDF); false also leaves paper.tex uncompiled")
    paper_style: Optional[str] = _setting(
        None,
        "an AAAI author-kit style file (aaai*.sty) for paper.tex; "
        "default: an aaai*.sty in the report folder, else a look-alike",
    )
    demo_epoch_scale: float = _setting(0.04, "demo epochs = ceil(epochs x scale): 15 -> 1, 300 -> 12")
    demo_train: int = _setting(2000, "demo dataset: training images (the validation split is taken from them)")
    demo_val: int = _setting(400, "demo validation images")
    demo_test: int = _setting(1000, "demo test images")


_FIELDS = {f.name: f for f in fields(StudySettings)}


def _default(f) -> str:
    """A setting's default as one types it: true/false, an enum's name, a number as written."""
    value = f.default
    return str(value).lower() if isinstance(value, bool) else str(getattr(value, "value", value))


SETTINGS_HELP = (
    "StudySettings (key=value, default in brackets):\n"
    + "\n".join(f"  {f.name}=[{_default(f)}]".ljust(32) + f.metadata["help"] for f in fields(StudySettings))
    + """

Any other key=value is a training override for every run (see hw-train --help): most used are
data.root (data), data.download (true), trainer.device (auto, cpu, cuda, cuda:job), seed (0; seed=0,1,2
runs every section for each seed), hydra.launcher.n_jobs=3 (with launcher=joblib). The study sets
lr, schedule, weight decay, augmentation and eval_test itself, and runs every stage of its plan
(sections whose choices are known) as one sweep: see plan=true.

Folders (relative to where you run it):
  <out>/<study>/<section>/<name>/   the runs of each section (lr_sweep, schedule_sweep, wd_sweep, mixup),
                                    each named by its settings, e.g. optim.lr=0.05,schedule.name=cosine
  <out>/<study>/choices.json        what the study chose, and which run folders make each section
  <out>/<study>/report/             report.md, paper.tex, paper.pdf, author.md, tables/, figures/, runs.csv, history.csv
  <out>/<study>/homework.log        one line per finished run, with the study's progress
  <out>/<study>/data/               the generated dataset of a demo

Examples:
  python -m hw_hparams.homework demo=true                  # offline quickstart on the CPU
  python -m hw_hparams.homework launcher=joblib hydra.launcher.n_jobs=3 trainer.device=cuda:job
  python -m hw_hparams.homework study=v1 launcher=slurm hydra.launcher.partition=gpu
"""
)


def parse_args(argv: list[str]) -> tuple[StudySettings, list[str]]:
    """(settings, training overrides) from `key=value` arguments; ConfigError on a bad one."""
    names = {f.name for f in fields(StudySettings)}
    mine, train = [], []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if arg in ("-m", "--multirun"):
            raise ConfigError(
                f"{arg}: the study runs its sweeps itself; drop {arg} (seed=0,1,2 runs every section per seed)"
            )
        if arg.startswith("-"):
            raise ConfigError(
                f"{arg}: the study takes key=value settings only; plan=true shows what it would run (see --help)"
            )
        if arg.startswith("~") and key[1:] in names:
            f = _FIELDS[key[1:]]
            example = "" if f.default is None else f", e.g. {f.name}={_default(f)}"
            raise ConfigError(f"{arg}: {f.name} cannot be removed; set it instead{example}")
        if "=" not in arg and not arg.startswith("~"):  # `~key` (Hydra's delete) goes to the runs, which refuse it
            raise ConfigError(f"{arg!r} is not a key=value setting (see --help)")
        if key in names and arg == f"{key}=":
            raise ConfigError(no_value(key, None if _FIELDS[key].default is None else _default(_FIELDS[key])))
        (mine if key in names else train).append(arg)
    try:
        settings = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(StudySettings), OmegaConf.from_dotlist(mine))
        )
    except OmegaConfBaseException as err:
        value = dict(a.split("=", 1) for a in mine).get(err.full_key)
        raise ConfigError(
            f"{err.full_key}={value!r} is not allowed: {allowed(err.full_key, StudySettings, given=value)}"
        ) from None
    if settings.study is None:  # a demo never lands in the folders of the real study
        settings.study = "homework-demo" if settings.demo else "homework"
    _check_settings(settings)
    _check_train_overrides(train)
    return settings, train


def _check_settings(s: StudySettings) -> None:
    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={getattr(s, key)!r} is not allowed: {allowed}")

    need(
        bool(re.fullmatch(r"[A-Za-z0-9_.-]+", s.study)) and s.study not in (".", ".."),
        "study",
        "letters, digits, _ . - only",
    )
    s.speculate = str(s.speculate).lower()  # speculate=true reads as a bool
    need(s.speculate in ("auto", "true", "false"), "speculate", "one of auto, true, false")
    need(
        s.bench is None or Path(s.bench).is_file(),
        "bench",
        "an existing JSON file written by `python -m hw_hparams.bench --out`",
    )
    need(0 < s.demo_epoch_scale <= 1, "demo_epoch_scale", "must be in (0, 1]")
    need(s.demo_val >= 1, "demo_val", "must be >= 1")
    need(s.demo_train > s.demo_val, "demo_train", f"must be > demo_val ({s.demo_val})")
    need(s.demo_test >= 1, "demo_test", "must be >= 1")
    check_creatable(Path(s.out) / s.study, "the study folder", "out")
    need(
        s.paper_style is None
        or (
            Path(s.paper_style).is_file()
            and re.fullmatch(r"aaai[A-Za-z0-9_-]*\.sty", Path(s.paper_style).name) is not None
        ),
        "paper_style",
        "an existing AAAI author-kit style file named aaai*.sty",
    )


def _check_train_overrides(overrides: list[str]) -> None:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    for o in parsed:
        key = o.key_or_group
        if key in RESERVED or key.replace(".", "/") in RESERVED:  # hydra.launcher=joblib meant hydra/launcher
            hint = (
                "use launcher=..."
                if key.replace(".", "/") == "hydra/launcher"
                else "run your own sweep with `python -m hw_hparams.train -m experiment=...`"
            )
            raise ConfigError(f"{key} is set by the study itself, section by section: {hint}")
        if key == "trainer.restart" and str(o.value()).lower() == "force":
            raise ConfigError(
                "trainer.restart=force cannot apply to a study (its finished stages are not run again): to "
                "train the whole study again, give it another folder with study=NAME, or move the old one away"
            )
        if not o.is_add() and not o.is_force_add() and not key.startswith("hydra") and key not in training_names():
            near = did_you_mean(key, {*_FIELDS, *training_names()}) or " (see --help)"
            removed = f"~{key}: nothing to remove, " if o.is_delete() else ""
            raise ConfigError(f"{removed}{key} is not a setting of the study or a training key{near}")
        if o.is_sweep_override() and key not in SWEEPABLE:
            raise ConfigError(f"{o.input_line}: only {', '.join(sorted(SWEEPABLE))} may be swept across the study")
