"""The study run: its plan made, stage after stage launched as sweeps, its choices made, its progress told.

The four sections are a graph (study/graph.py): each names the choices it needs, and every section
whose needs are met starts at once, as one sweep of all their runs (hydra/sweeper=stage) into
outputs/<study>/<section>/: lr_sweep -> the lr by `select_by` -> schedule_sweep and wd_sweep at that
lr, together -> the weight decay by `select_wd_by` -> mixup with both. With speculation (default
where the launcher trains runs at once) mixup trains under both weight-decay candidates alongside
wd_sweep, and once the weight decay is chosen the candidate with it alone evaluates the test split;
otherwise mixup trains after wd_sweep and evaluates it after its last epoch. With launcher=basic the
sections run one after another. Then outputs/<study>/choices.json (what analysis needs beyond the run
folders) -> outputs/<study>/report/ (tables, figures, report.md, paper.tex and paper.pdf; `python -m
analysis.paper outputs/<study>` rebuilds it without training). `plan=true` prints the plan only.
Re-running the same command continues where it stopped: finished stages are not launched again,
finished runs are skipped, interrupted ones resume.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import compose_train
from hw_hparams.data.cifar import check_val_size
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.runs.folder import is_finished, read_json, read_summary, write_json
from hw_hparams.runs.progress import StudyProgress, final_line
from hw_hparams.study import sweeps
from hw_hparams.study.args import StudySettings
from hw_hparams.study.graph import DECISIONS, FINAL, SECTIONS, SPECULATED, Part, Stage
from hw_hparams.study.plan import StudyPlan, chosen_overrides, label, make_plan, needs_test
from hw_hparams.study.selection import Metric, Verdict, choose
from hw_hparams.train.preflight import check_data

log = logging.getLogger("hw_hparams.homework")

LOG_FORMAT = "[%(asctime)s][%(name)s] %(message)s"
# Every stage is one sweep (hydra/sweeper=stage) into the study folder, each run under <section>/<name>.
STAGE_SUBDIR = "hydra.sweep.subdir='${experiment_name}/${hw_run_name:}'"


class StudyError(Exception):
    """A section could not finish; `code` is the exit status (2: user error already printed)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def write_demo_data(s: StudySettings, root: Path) -> None:
    """The generated dataset of a demo study, written once into `root` (<study>/data)."""
    marker, want = root / "demo.json", {"train": s.demo_train, "test": s.demo_test, "seed": 0}
    if marker.exists():
        if read_json(marker) != want:
            raise ConfigError(
                f"{root} holds a demo dataset of {read_json(marker)} images, not {want}: "
                "use another study= or delete it"
            )
        return
    write_fake_cifar100(root, train=s.demo_train, test=s.demo_test, seed=0)
    write_json(marker, want)


def section_epochs(section: str) -> int:
    """The epochs of a section's experiment config."""
    return int(compose_train([f"experiment={section}"]).epochs)


def _hydra_list(jobs: list[list[str]]) -> str:
    """Jobs as a Hydra override value: a list of lists of quoted strings."""

    def quoted(o: str) -> str:
        assert "'" not in o and "\\" not in o, o  # the study's own overrides: keys, numbers, option names
        return f"'{o}'"

    return "[" + ",".join("[" + ",".join(quoted(o) for o in job) + "]" for job in jobs) + "]"


@dataclass
class Study:
    """Where a study lives, what every section's sweep gets, and the plan it follows."""

    settings: StudySettings
    root: Path
    common: list[str]  # training overrides of every run
    per_section: dict[str, list[str]]  # extra overrides by section (demo epochs)
    launcher: list[str]  # hydra/launcher=... (not part of any folder name)
    plan: StudyPlan | None = None
    progress: StudyProgress | None = None  # one line per finished run

    def overrides(self, part: Part, made: dict[str, Verdict] | None = None) -> list[str]:
        """A part's sweep without the study-wide overrides: its experiment, demo epochs, the choices it
        needs (made ones, or its guess; a choice not made yet keeps the experiment's own value), its test."""
        return [
            f"experiment={part.section}",
            *self.per_section.get(part.section, []),
            *chosen_overrides(part, made or {}),
            *(["eval_test=true"] if needs_test(part) else []),
        ]

    def run_dirs(self, part: Part, made: dict[str, Verdict]) -> list[Path]:
        return sweeps.run_dirs([*self.overrides(part, made), *self.common, *self.launcher], self.root / part.section)

    def run_stage(self, number: int, stage: Stage, made: dict[str, Verdict]) -> dict[Part, list[Path]]:
        """Run (or continue) one stage, every part at once as one sweep; each part's run folders once all
        are finished."""
        dirs = {p: self.run_dirs(p, made) for p in stage.parts}
        runs = sum(map(len, dirs.values()))
        test = {d for p in stage.parts if needs_test(p) for d in dirs[p]}
        todo = [d for ds in dirs.values() for d in ds if not is_finished(read_summary(d), d in test)]
        watched: dict[str, list[Path]] = {}
        for p, ds in dirs.items():
            watched.setdefault(p.section, []).extend(ds)
        watch = self.progress.watch(watched, test) if self.progress else contextlib.nullcontext()
        what = ", ".join(label(p) for p in stage.parts) + (" (test split)" if stage.test else "")
        if not todo:
            with watch:
                log.info("stage %d, %s: all %d run(s) finished; nothing to run", number, what, runs)
            return dirs
        log.info("stage %d, %s: %d of %d run(s) to run or continue in %s", number, what, len(todo), runs, self.root)
        jobs = interleave([sweeps.jobs(self.overrides(p, made)) for p in stage.parts])
        stage_sweep = ["hydra/sweeper=stage", f"hydra.sweeper.jobs={_hydra_list(jobs)}", STAGE_SUBDIR]
        overrides = [*self.common, *self.launcher, *stage_sweep]
        with watch:
            code = sweeps.launch(overrides, self.root)
        if code == 2:
            raise StudyError("", code)  # the sweep printed its one-line user error
        left = [d for ds in dirs.values() for d in ds if not is_finished(read_summary(d), d in test)]
        if code or left:
            s = read_summary(left[0]) if left else None
            state = f"{left[0]} is {s['status']}: {s['message']}" if s else f"the sweep exited with status {code}"
            raise StudyError(
                f"stage {number} ({what}) did not finish ({state}); fix it and re-run the same command to continue"
            )
        return dirs


def interleave(lists: list[list]) -> list:
    """[[a1, a2], [b1]] -> [a1, b1, a2]: every part's first jobs start first, whatever the launcher runs at once."""
    return [x for row in itertools.zip_longest(*lists) for x in row if x is not None]


# launcher=auto on the CPU: fused runs were 0.54-0.92x the aggregate throughput of the same runs one
# after another (`python -m hw_hparams.bench --device cpu --pipelines c,e`, BENCHMARKS.md "Fused runs").
CPU_LAUNCHER = "basic"


def auto_launcher(cfg) -> str:
    """launcher=auto: `fused` where a section's runs train on CUDA (one run leaves a GPU mostly idle),
    else CPU_LAUNCHER, as measured."""
    device = str(cfg.trainer.device)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "fused" if cuda else CPU_LAUNCHER


def prepare(s: StudySettings, train_overrides: list[str], plan_only: bool = False) -> Study:
    """Resolve the demo setup, the launcher and the plan, and check every part's command line before
    anything runs (with `plan_only`, neither the data is checked nor anything written)."""
    root = Path(s.out) / s.study
    common = [f"logger.dir='{root}'", f"logger.study='{s.study}'", *train_overrides]  # trackers: one store per study
    per_section: dict[str, list[str]] = {}
    data = root / "data"
    if s.demo:
        common = [
            "model=tiny",
            f"data.root='{data}'",
            "data.download=false",
            "data.verify_checksums=false",
            f"data.val_size={s.demo_val}",
            *common,
        ]
        if not any(o.split("=")[0] == "epochs" for o in train_overrides):
            for section in SECTIONS:
                epochs = section_epochs(section.name)
                per_section[section.name] = [f"epochs={max(1, math.ceil(epochs * s.demo_epoch_scale))}"]
    launcher = s.launcher if s.launcher != "auto" else auto_launcher(sweeps.check(common)[0])  # every run's device
    study = Study(s, root, common, per_section, [f"hydra/launcher={launcher}"])
    # checked with the experiment configs' own values standing in for the choices earlier sections make
    study.plan = make_plan(
        launcher, s.speculate, lambda part: sweeps.check([*study.overrides(part), *common, *study.launcher])
    )
    if plan_only:
        return study
    configs = [c for cs in study.plan.runs.values() for c in cs]
    if s.demo:  # what the data allows, before any is written (a demo's data is written below)
        for val_size in {int(c.data.val_size) for c in configs}:
            check_val_size(val_size, s.demo_train)
    else:
        check_data(configs)
    if s.demo:
        write_demo_data(s, data)
    study.progress = StudyProgress(study.plan.epochs_by_section(), log)
    return study


def log_to_file(root: Path) -> None:
    """The study's own lines (not the runs' epochs) also go to <study>/homework.log."""
    root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(root / "homework.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)


@dataclass
class Outcome:
    """What the study chose, where its runs are, and which runs trained on a guess."""

    sections: dict[str, list[Path]]
    lr: Verdict
    wd: Verdict
    speculative: list[tuple[Part, list[Path], bool]] = field(default_factory=list)  # (part, its runs, chosen?)
    plan: StudyPlan | None = None


def _pick(dirs: list[Path], key: str, metric: Metric, section: str) -> Verdict:
    chosen = choose(dirs, key, metric)
    if chosen is None:
        raise StudyError(f"{section}: no run completed with a finite {metric.value}, so nothing to choose {key} from")
    log.info("%s: %s=%s (best final %s)", section, key, chosen.value, metric.value)
    return chosen


def run_study(study: Study) -> Outcome:
    """The plan's stages in order, each choice made as soon as its section's runs are finished; the
    final configuration evaluates the test split once (a guessed candidate: after the choice is made)."""
    s = study.settings
    made: dict[str, Verdict] = {}
    dirs: dict[Part, list[Path]] = {}
    for number, stage in enumerate(study.plan.stages, 1):
        dirs.update(study.run_stage(number, stage, made))
        for d in DECISIONS:
            if d.name not in made and Part(d.section) in dirs:
                made[d.name] = _pick(dirs[Part(d.section)], d.key, getattr(s, d.metric_setting), d.section)
    final = Part(FINAL)
    speculative = [(p, ds, ds == dirs[final]) for p, ds in dirs.items() if p.guess]
    if speculative and sum(chosen for _, _, chosen in speculative) != 1:  # by construction: one guess was right
        raise StudyError(f"{FINAL}: the runs at the chosen {SPECULATED} are none of the speculative candidates")
    if speculative and study.progress:
        tested = dirs[final][0]
        log.info("%s | %s", study.progress.status(), final_line(f"{FINAL}/{tested.name}", read_summary(tested)))
    sections = {sec.name: dirs[Part(sec.name)] for sec in SECTIONS}
    return Outcome(sections, made["lr"], made[SPECULATED], speculative, study.plan)
