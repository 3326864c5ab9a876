"""The study's hand-over to `analysis`: choices.json in the study folder, then the report.

What run folders cannot tell analysis (which folders make each section, what was chosen and by
which metric, the command, the demo's scale, the source of the split line and of the augmentation)
goes into <study>/choices.json; `analysis.paper.build` then writes <study>/report/ from it and the
run folders alone, exactly as `python -m analysis.paper <study>` rebuilds it later.
"""

from __future__ import annotations

import inspect
import os

from analysis import contract as C
from analysis.paper import Result, build
from analysis.runs import AnalysisError

from .data import crop_flip, split_indices
from .data.augment import Normalize
from .errors import ConfigError


def _split_line() -> C.Code:
    line = next(x.strip() for x in inspect.getsource(split_indices).splitlines() if "random_split(" in x)
    return C.Code(line, "hw_hparams/data/cifar.py, split_indices; for CIFAR-100 n = 50000, val_size = 10000, seed = 0")


def _augmentation() -> C.Code:
    source = "\n\n".join(inspect.getsource(o).rstrip() for o in (crop_flip, Normalize))
    return C.Code(source, "hw_hparams/data/augment.py")


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
        code={"split": _split_line(), "augmentation": _augmentation()},
        demo=demo,
        plan=outcome.plan.summary() if outcome.plan else [],
        speculative=speculative,
    )


def hand_over(study, outcome, command: str) -> Result:
    """Write <study>/choices.json and build <study>/report/ from it (ConfigError: one line)."""
    C.write(study.root, contract(study, outcome, command))
    try:
        return build(study.root, style=study.settings.paper_style, figures=study.settings.figures)
    except AnalysisError as err:
        raise ConfigError(str(err)) from None
