"""`python -m hw_hparams.homework [settings] [train overrides]`: the whole assignment in one command.

The four sections run in order, each as the sweep of its experiment config (conf/experiment/) into
outputs/<study>/<section>/: lr_sweep -> the lr by `select_by` -> schedule_sweep and wd_sweep at that
lr -> the weight decay by `select_wd_by` -> mixup with both -> the test split of the mixup run, once,
at the end -> outputs/<study>/choices.json (what analysis needs beyond the run folders) ->
outputs/<study>/report/ (tables, figures, report.md, paper.tex and paper.pdf; `python -m analysis.paper
outputs/<study>` rebuilds it without training).
Re-running the same command continues where it stopped: finished sections are not launched again,
finished runs are skipped, interrupted ones resume.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import sweeps
from .cli import fail
from .config import allowed
from .data import check_dataset
from .data.cifar import check_val_size
from .errors import ConfigError
from .naming import compose_train
from .progress import StudyProgress
from .data.fake import write_fake_cifar100
from .run_folder import is_finished, read_json, read_summary, write_json
from .selection import Choice, Metric, choose

log = logging.getLogger("hw_hparams.homework")

SECTIONS = ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup")
LOG_FORMAT = "[%(asctime)s][%(name)s] %(message)s"
# Keys the study sets itself (per section, or from an earlier section's choice).
RESERVED = {
    "experiment", "experiment_name", "lr", "optim.lr", "schedule", "schedule.name", "regularization",
    "optim.weight_decay", "augmentation", "augmentation.mixup_alpha", "augmentation.crop_flip",
    "eval_test", "hydra.sweep.dir", "hydra.sweep.subdir", "hydra/launcher",
}
SWEEPABLE = {"seed"}  # swept on the command line, every section runs every value (error bars)


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class Settings:
    """The homework's own settings (everything else on the command line goes to every training run)."""

    study: Optional[str] = _setting(None, "the study's folder: <out>/<study>/{<section>/,report/}; homework, or homework-demo with demo=true")
    out: str = _setting("outputs", "folder that holds studies")
    demo: bool = _setting(False, "generated data, model=tiny, every section's epochs x demo_epoch_scale")
    select_by: Metric = _setting(Metric.val_acc, "final-epoch metric that picks section 3's lr: val_acc, val_loss, train_loss, train_acc")
    select_wd_by: Metric = _setting(Metric.val_acc, "final-epoch metric that picks section 5's weight decay for the mixup run")
    launcher: Optional[str] = _setting(None, "hydra/launcher of every sweep: basic, joblib, submitit_local, slurm, ...")
    figures: bool = _setting(True, "draw the report's figures (PNG + PDF); false also leaves paper.tex uncompiled")
    paper_style: Optional[str] = _setting(None, "an AAAI author-kit style file (aaai*.sty) for paper.tex; default: an aaai*.sty in the report folder, else a look-alike")
    demo_epoch_scale: float = _setting(0.04, "demo epochs = ceil(epochs x scale): 15 -> 1, 300 -> 12")
    demo_train: int = _setting(2000, "demo dataset: training images (the validation split is taken from them)")
    demo_val: int = _setting(400, "demo validation images")
    demo_test: int = _setting(1000, "demo test images")


def _default(f) -> str:
    return str(getattr(f.default, "value", f.default))


HELP = __doc__ + "\nSettings (key=value, default in brackets):\n" + "\n".join(
    f"  {f.name}=[{_default(f)}]".ljust(32) + f.metadata["help"] for f in fields(Settings)
) + """

Any other key=value is a training override for every run (see hw-train --help): most used are
data.root (data), data.download (true), trainer.device (auto, cpu, cuda, cuda:job), seed (0; seed=0,1,2
runs every section for each seed), hydra.launcher.n_jobs=3 (with launcher=joblib). The study sets
lr, schedule, weight decay, augmentation and eval_test itself.

Folders (relative to where you run it):
  <out>/<study>/<section>/<name>/   the runs of each section (lr_sweep, schedule_sweep, wd_sweep, mixup),
                                    each named by its settings, e.g. optim.lr=0.05,schedule.name=cosine
  <out>/<study>/report/             report.md, choices.json, tables/, figures/, runs.csv, history.csv
  <out>/<study>/homework.log        one line per finished run, with the study's progress
  <out>/<study>/data/               the generated dataset of a demo

Examples:
  python -m hw_hparams.homework demo=true                  # offline quickstart on the CPU
  python -m hw_hparams.homework launcher=joblib hydra.launcher.n_jobs=3 trainer.device=cuda:job
  python -m hw_hparams.homework study=v1 launcher=slurm hydra.launcher.partition=gpu
"""


class StudyError(Exception):
    """A section could not finish; `code` is the exit status (2: user error already printed)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def parse_args(argv: list[str]) -> tuple[Settings, list[str]]:
    """(settings, training overrides) from `key=value` arguments; ConfigError on a bad one."""
    names = {f.name for f in fields(Settings)}
    mine, train = [], []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"{arg!r} is not a key=value setting (see --help)")
        (mine if arg.split("=", 1)[0] in names else train).append(arg)
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Settings), OmegaConf.from_dotlist(mine)))
    except OmegaConfBaseException as err:
        value = dict(a.split("=", 1) for a in mine).get(err.full_key)
        raise ConfigError(f"{err.full_key}={value!r} is not allowed: {allowed(err.full_key, Settings)}") from None
    if settings.study is None:  # a demo never lands in the folders of the real study
        settings.study = "homework-demo" if settings.demo else "homework"
    _check_settings(settings)
    _check_train_overrides(train)
    return settings, train


def _check_settings(s: Settings) -> None:
    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"{key}={getattr(s, key)!r} is not allowed: {allowed}")

    need(bool(re.fullmatch(r"[A-Za-z0-9_.-]+", s.study)) and s.study not in (".", ".."), "study", "letters, digits, _ . - only")
    need(0 < s.demo_epoch_scale <= 1, "demo_epoch_scale", "must be in (0, 1]")
    need(s.demo_val >= 1, "demo_val", "must be >= 1")
    need(s.demo_train > s.demo_val, "demo_train", f"must be > demo_val ({s.demo_val})")
    need(s.demo_test >= 1, "demo_test", "must be >= 1")
    need(s.paper_style is None or (Path(s.paper_style).is_file() and re.fullmatch(r"aaai[A-Za-z0-9_-]*\.sty", Path(s.paper_style).name) is not None),
         "paper_style", "an existing AAAI author-kit style file named aaai*.sty")


def _check_train_overrides(overrides: list[str]) -> None:
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(str(err).splitlines()[0]) from None
    for o in parsed:
        key = o.key_or_group
        if key in RESERVED:
            hint = "use launcher=..." if key == "hydra/launcher" else "run your own sweep with `python -m hw_hparams.train -m experiment=...`"
            raise ConfigError(f"{key} is set by the study itself, section by section: {hint}")
        if o.is_sweep_override() and key not in SWEEPABLE:
            raise ConfigError(f"{o.input_line}: only {', '.join(sorted(SWEEPABLE))} may be swept across the study")


def write_demo_data(s: Settings, root: Path) -> None:
    """The generated dataset of a demo study, written once into `root` (<study>/data)."""
    marker, want = root / "demo.json", {"train": s.demo_train, "test": s.demo_test, "seed": 0}
    if marker.exists():
        if read_json(marker) != want:
            raise ConfigError(f"{root} holds a demo dataset of {read_json(marker)} images, not {want}: use another study= or delete it")
        return
    write_fake_cifar100(root, train=s.demo_train, test=s.demo_test, seed=0)
    write_json(marker, want)


def section_epochs(section: str) -> int:
    """The epochs of a section's experiment config."""
    return int(compose_train([f"experiment={section}"]).epochs)


@dataclass
class Study:
    """Where a study lives and what every section's sweep gets."""

    settings: Settings
    root: Path
    common: list[str]  # training overrides of every run
    per_section: dict[str, list[str]]  # extra overrides by section (demo epochs)
    launcher: list[str]  # hydra/launcher=... (not part of any folder name)
    progress: Optional[StudyProgress] = None  # one line per finished run

    def overrides(self, section: str, chosen: list[str]) -> list[str]:
        return [f"experiment={section}", *self.common, *self.per_section.get(section, []), *chosen]

    def run(self, section: str, chosen: list[str], need_test: bool = False) -> list[Path]:
        """Run (or continue) one section's sweep; its run folders once all are finished."""
        overrides = self.overrides(section, chosen) + (["eval_test=true"] if need_test else []) + self.launcher
        sweep_dir = self.root / section
        dirs = sweeps.run_dirs(overrides, sweep_dir)
        todo = [d for d in dirs if not is_finished(read_summary(d), need_test)]
        watch = self.progress.watch(section, dirs, need_test) if self.progress else contextlib.nullcontext()
        if not todo:
            with watch:
                log.info("%s: all %d run(s) finished; nothing to run", section, len(dirs))
            return dirs
        log.info("%s: %d of %d run(s) to run or continue in %s", section, len(todo), len(dirs), sweep_dir)
        with watch:
            code = sweeps.launch(overrides, sweep_dir)
        if code == 2:
            raise StudyError("", code)  # the sweep printed its one-line user error
        left = [d for d in dirs if not is_finished(read_summary(d), need_test)]
        if code or left:
            s = read_summary(left[0]) if left else None
            state = f"{left[0]} is {s['status']}: {s['message']}" if s else f"the sweep exited with status {code}"
            raise StudyError(f"{section} did not finish ({state}); fix it and re-run the same command to continue")
        return dirs


def prepare(s: Settings, train_overrides: list[str]) -> Study:
    """Resolve the demo setup and check every section's command line before anything runs."""
    root = Path(s.out) / s.study
    common = list(train_overrides)
    per_section: dict[str, list[str]] = {}
    data = root / "data"
    if s.demo:
        common = ["model=tiny", f"data.root='{data}'", "data.download=false", "data.verify_checksums=false",
                  f"data.val_size={s.demo_val}", *common]
        if not any(o.split("=")[0] == "epochs" for o in train_overrides):
            for section in SECTIONS:
                epochs = section_epochs(section)
                per_section[section] = [f"epochs={max(1, math.ceil(epochs * s.demo_epoch_scale))}"]
    study = Study(s, root, common, per_section, [f"hydra/launcher={s.launcher}"] if s.launcher else [])
    chosen_later = {"schedule_sweep": ["optim.lr=0.05"], "wd_sweep": ["optim.lr=0.05"], "mixup": ["optim.lr=0.05", "optim.weight_decay=5e-4"]}
    plan, configs = {}, []  # checked with stand-ins for the values earlier sections will choose
    for section in SECTIONS:
        configs += sweeps.check(study.overrides(section, chosen_later.get(section, [])) + study.launcher)
        plan[section] = [int(c.epochs) for c in configs if c.experiment_name == section]
    for val_size in {int(c.data.val_size) for c in configs}:  # what the data allows, before any is written
        if s.demo:
            check_val_size(val_size, s.demo_train)
        else:
            check_dataset(configs[0].data.root, configs[0].data.download, val_size)
    if s.demo:
        write_demo_data(s, data)
    study.progress = StudyProgress(plan, log)
    return study


def log_to_file(root: Path) -> None:
    """The study's own lines (not the runs' epochs) also go to <study>/homework.log."""
    root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(root / "homework.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)


@dataclass
class Outcome:
    """What the study chose and where its runs are."""

    sections: dict[str, list[Path]]
    lr: Choice
    wd: Choice


def _pick(dirs: list[Path], key: str, metric: Metric, section: str) -> Choice:
    chosen = choose(dirs, key, metric)
    if chosen is None:
        raise StudyError(f"{section}: no run completed with a finite {metric.value}, so nothing to choose {key} from")
    log.info("%s: %s=%s (best final %s)", section, key, chosen.value, metric.value)
    return chosen


def run_study(study: Study) -> Outcome:
    """Sections 3-6 in order, each choice feeding the next, then the test split of the final run."""
    s = study.settings
    dirs = {"lr_sweep": study.run("lr_sweep", [])}
    lr = _pick(dirs["lr_sweep"], "optim.lr", s.select_by, "lr_sweep")
    at_lr = [f"optim.lr={lr.value}"]
    dirs["schedule_sweep"] = study.run("schedule_sweep", at_lr)
    dirs["wd_sweep"] = study.run("wd_sweep", at_lr)
    wd = _pick(dirs["wd_sweep"], "optim.weight_decay", s.select_wd_by, "wd_sweep")
    # The last section is the final configuration: its runs evaluate the test split once, after their last epoch.
    dirs["mixup"] = study.run("mixup", at_lr + [f"optim.weight_decay={wd.value}"], need_test=True)
    return Outcome(dirs, lr, wd)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(HELP)
        return
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    try:
        settings, train_overrides = parse_args(argv)
        study = prepare(settings, train_overrides)
        log_to_file(study.root)
        log.info("study %s: %s", study.root, study.progress.status())
        outcome = run_study(study)
        from .study_contract import hand_over  # matplotlib and pandas only when it gets that far

        report = hand_over(study, outcome, "python -m hw_hparams.homework " + shlex.join(argv))
    except ConfigError as err:
        fail(str(err))
    except StudyError as err:
        if str(err):
            print(f"error: {err}", file=sys.stderr)
        sys.exit(err.code)
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to continue", file=sys.stderr)
        sys.exit(130)
    for line in report.lines:
        print(line, file=sys.stderr if line.startswith(("error:", "warning:")) else sys.stdout)
    if report.compiled is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
