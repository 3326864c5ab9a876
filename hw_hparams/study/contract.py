"""The study's hand-over to `analysis`: choices.json in the study folder, then the report.

What run folders cannot tell analysis (which folders make each section, what was chosen and by
which metric, the command, the demo's scale, the source of the split statement, of the draws of crop
offsets and flips and of the augmentation, each whole statements taken with `ast` from the code
that runs) goes into <study>/choices.json; `analysis.paper.build` then writes <study>/report/ from it and the
run folders alone, exactly as `python -m analysis.paper <study>` rebuilds it later.
"""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
from pathlib import Path

from analysis.paper import Result, build, edits
from analysis.read import contract as C
from analysis.read.runs import AnalysisError
from hw_hparams.config.errors import ConfigError
from hw_hparams.data import augment, crop_flip, split_indices
from hw_hparams.data.augment import Normalize
from hw_hparams.engine.draws import RunRandom

PROJECT = Path(__file__).resolve().parents[1]  # the folder that holds hw_hparams/


def _origin(obj) -> str:
    """'hw_hparams/data/cifar.py': the file that defines `obj`, relative to the project."""
    return Path(inspect.getsourcefile(obj)).resolve().relative_to(PROJECT).as_posix()


def statement(obj, needle: str) -> str:
    """The whole statement of `obj`'s body (a function's or a module's top level) whose text holds
    `needle`: every line of it, dedented, so that it compiles on its own (a multi-line call or a
    whole `if` block, never its first line alone)."""
    source = textwrap.dedent(inspect.getsource(obj))
    tree = ast.parse(source)
    body = tree.body[0].body if isinstance(tree.body[0], (ast.FunctionDef, ast.ClassDef)) else tree.body
    lines = source.splitlines()
    for node in body:
        text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        if needle in text:
            return textwrap.dedent(text)
    raise ValueError(f"no statement of {obj.__name__} holds {needle!r}")


def _split_line() -> C.Code:
    origin = f"{_origin(split_indices)}, split_indices; for CIFAR-100 n = 50000, val_size = 10000, seed = 0"
    return C.Code(statement(split_indices, "random_split("), origin)


def _draws() -> C.Code:
    origin = f"{_origin(RunRandom)}, RunRandom.epoch_plan: the crop offsets and flips, per image, each epoch"
    return C.Code(statement(RunRandom.epoch_plan, "if crop_flip:"), origin)


def _augmentation() -> C.Code:
    parts = [statement(augment, "PAD ="), inspect.getsource(crop_flip), inspect.getsource(Normalize)]
    return C.Code("\n\n".join(p.rstrip() for p in parts), _origin(crop_flip))


def contract(study, outcome, command: str) -> C.Contract:
    """The contract of a finished study (homework.Study, homework.Outcome)."""
    s = study.settings
    rel = lambda d: os.path.relpath(d, study.root).replace(os.sep, "/")  # noqa: E731
    choices = {
        name: C.Choice(c.key, c.value, c.metric.value, section)
        for name, c, section in (("lr", outcome.lr, "lr_sweep"), ("weight_decay", outcome.wd, "wd_sweep"))
    }
    demo = (
        {"epoch_scale": s.demo_epoch_scale, "train": s.demo_train, "val": s.demo_val, "test": s.demo_test}
        if s.demo
        else None
    )
    speculative = [
        {
            "section": p.section,
            "choice": p.guess[0],
            "value": p.guess[1],
            "chosen": chosen,
            "run_dirs": [rel(d) for d in ds],
        }
        for p, ds, chosen in outcome.speculative
    ]
    return C.Contract(
        command=command,
        sections={k: [rel(d) for d in v] for k, v in outcome.sections.items()},
        choices=choices,
        final_section="mixup",
        code={"split": _split_line(), "draws": _draws(), "augmentation": _augmentation()},
        demo=demo,
        plan=outcome.plan.summary() if outcome.plan else [],
        speculative=speculative,
    )


def check_report(root: Path) -> None:
    """ConfigError (one line) when the study's report.md or paper.tex holds edits a rebuild would
    lose (analysis.paper.edits): checked before anything runs."""
    try:
        edits(root)
    except AnalysisError as err:
        raise ConfigError(str(err)) from None


def hand_over(study, outcome, command: str) -> Result:
    """Write <study>/choices.json and build <study>/report/ from it (ConfigError: one line)."""
    C.write(study.root, contract(study, outcome, command))
    try:
        return build(study.root, style=study.settings.paper_style, figures=study.settings.figures)
    except AnalysisError as err:
        raise ConfigError(str(err)) from None
