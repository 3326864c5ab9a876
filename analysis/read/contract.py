"""choices.json: what a study hands to analysis beside its run folders (written by hw_hparams.homework).

It holds what run folders cannot tell: each section's run folders (relative to the study folder, so
a copied outputs/ still works), the choices the study made and the metric behind each, the plan
that ran (its stages) and the runs trained speculatively on a choice not made yet, the command,
whether it was a demo (and its scale), and the source text of the data split statement and of the
augmentation code, each whole statements (analysis never imports the training code). Everything
else (metrics, configs, data statistics) is read from the run folders.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from analysis.read.runs import AnalysisError

FILE = "choices.json"
SCHEMA = 1


@dataclass
class Choice:
    """The value of config `key` that the study chose in `section` by the final-epoch `metric`."""

    key: str
    value: Any
    metric: str
    section: str


@dataclass
class Code:
    """Source text shown in the report and where it comes from (e.g. 'hw_hparams/data/cifar.py')."""

    source: str
    origin: str

    @property
    def whole(self) -> bool:
        """Whether `source` is whole statements (it compiles): a choices.json of an older study may
        hold the first line of a statement only."""
        try:
            compile(self.source, self.origin or "<excerpt>", "exec")
        except (SyntaxError, ValueError):
            return False
        return True


@dataclass
class Contract:
    """The study's hand-over; `sections` maps section -> run folders relative to the study folder."""

    command: str
    sections: dict[str, list[str]]
    choices: dict[str, Choice]
    final_section: str
    code: dict[str, Code] = field(default_factory=dict)  # 'split', 'draws' (crop offsets, flips), 'augmentation'
    demo: dict[str, Any] | None = None  # e.g. {'epoch_scale': 0.04, 'train': 2000, ...}; None: real data
    schema: int = SCHEMA
    # The plan that ran, stage by stage: {'parts': [...], 'runs': 6, 'epochs': 300, 'test': False, 'launcher': 'fused'}
    plan: list[dict[str, Any]] = field(default_factory=list)
    # Runs trained on a guess of a choice not yet made: {'section', 'choice', 'value', 'chosen', 'run_dirs'};
    # only the chosen one's runs are in `sections` (and tested)
    speculative: list[dict[str, Any]] = field(default_factory=list)

    def run_dirs(self, root: Path) -> dict[str, list[Path]]:
        """Each section's run folders as paths under the study folder `root`."""
        return {s: [Path(root) / d for d in dirs] for s, dirs in self.sections.items()}


def write(root: str | os.PathLike, contract: Contract) -> Path:
    """Write <root>/choices.json (atomically) and return its path."""
    path = Path(root) / FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(contract), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read(root: str | os.PathLike) -> Contract:
    """The contract of the study folder `root`; AnalysisError (one line) when absent or malformed."""
    root = Path(root)
    if not root.is_dir():
        raise AnalysisError(f"study folder does not exist: {root}")
    path = root / FILE
    if not path.is_file():
        raise AnalysisError(
            f"{root} is not a study folder: no {FILE} (python -m hw_hparams.homework writes it when the study has run)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, this analysis reads schema {SCHEMA}")
        if data["final_section"] not in data["sections"]:
            raise ValueError(f"final_section {data['final_section']!r} is none of its sections")
        return Contract(
            command=str(data["command"]),
            sections={str(k): [str(d) for d in v] for k, v in data["sections"].items()},
            choices={k: Choice(**v) for k, v in data["choices"].items()},
            final_section=str(data["final_section"]),
            code={k: Code(**v) for k, v in (data.get("code") or {}).items()},
            demo=data.get("demo"),
            schema=SCHEMA,
            plan=list(data.get("plan") or []),
            speculative=list(data.get("speculative") or []),
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise AnalysisError(f"{path} is not a valid {FILE}: {e}") from None
