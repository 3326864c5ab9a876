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
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from . import sweeps
from .cli import check_data, fail
from .data.cifar import check_val_size
from .data.fake import write_fake_cifar100
from .errors import ConfigError
from .homework_args import SETTINGS_HELP, Settings, parse_args
from .naming import compose_train
from .progress import StudyProgress
from .run_folder import is_finished, read_json, read_summary, write_json
from .selection import Choice, Metric, choose

log = logging.getLogger("hw_hparams.homework")

SECTIONS = ("lr_sweep", "schedule_sweep", "wd_sweep", "mixup")
LOG_FORMAT = "[%(asctime)s][%(name)s] %(message)s"
HELP = __doc__ + "\n" + SETTINGS_HELP


class StudyError(Exception):
    """A section could not finish; `code` is the exit status (2: user error already printed)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


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
    progress: StudyProgress | None = None  # one line per finished run

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


# launcher=auto on the CPU: fused runs were 0.54-0.92x the aggregate throughput of the same runs one
# after another (`python -m hw_hparams.bench --device cpu --pipelines c,e`, BENCHMARKS.md "Fused runs").
CPU_LAUNCHER = "basic"


def auto_launcher(cfg) -> str:
    """launcher=auto: `fused` where a section's runs train on CUDA (one run leaves a GPU mostly idle),
    else CPU_LAUNCHER, as measured."""
    device = str(cfg.trainer.device)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "fused" if cuda else CPU_LAUNCHER


def prepare(s: Settings, train_overrides: list[str]) -> Study:
    """Resolve the demo setup and check every section's command line before anything runs."""
    root = Path(s.out) / s.study
    common = [f"logger.dir='{root}'", f"logger.study='{s.study}'", *train_overrides]  # trackers: one store per study
    per_section: dict[str, list[str]] = {}
    data = root / "data"
    if s.demo:
        common = ["model=tiny", f"data.root='{data}'", "data.download=false", "data.verify_checksums=false",
                  f"data.val_size={s.demo_val}", *common]
        if not any(o.split("=")[0] == "epochs" for o in train_overrides):
            for section in SECTIONS:
                epochs = section_epochs(section)
                per_section[section] = [f"epochs={max(1, math.ceil(epochs * s.demo_epoch_scale))}"]
    launcher = s.launcher if s.launcher != "auto" else auto_launcher(sweeps.check(common)[0])  # every run's device
    study = Study(s, root, common, per_section, [f"hydra/launcher={launcher}"])
    chosen_later = {"schedule_sweep": ["optim.lr=0.05"], "wd_sweep": ["optim.lr=0.05"], "mixup": ["optim.lr=0.05", "optim.weight_decay=5e-4"]}
    plan, configs = {}, []  # checked with stand-ins for the values earlier sections will choose
    for section in SECTIONS:
        configs += sweeps.check(study.overrides(section, chosen_later.get(section, [])) + study.launcher)
        plan[section] = [int(c.epochs) for c in configs if c.experiment_name == section]
    if s.demo:  # what the data allows, before any is written (a demo's data is written below)
        for val_size in {int(c.data.val_size) for c in configs}:
            check_val_size(val_size, s.demo_train)
    else:
        check_data(configs)
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
