"""The report's code excerpts (the split, the draws of crop offsets and flips, the augmentation) are
whole statements of the code that runs: each compiles as shown in report.md and in paper.tex."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import asdict

from analysis_synth import write_study  # noqa: E402

from analysis import paper  # noqa: E402
from hw_hparams.data import cifar  # noqa: E402
from hw_hparams.engine.draws import RunRandom  # noqa: E402
from hw_hparams.study import contract as study_contract  # noqa: E402


def excerpts(md: str, tex: str) -> tuple[list[str], list[str]]:
    """The code blocks of report.md (```python fences) and of paper.tex (lstlisting bodies)."""
    fenced = re.findall(r"^(`{3,})python\n(.*?)\n\1$", md, re.M | re.S)
    return [body for _, body in fenced], re.findall(r"\\begin\{lstlisting\}\n(.*?)\n\\end\{lstlisting\}", tex, re.S)


def test_every_excerpt_is_whole_statements_as_shown_in_both_files(tmp_path):
    root = write_study(tmp_path / "s")
    contract = json.loads((root / "choices.json").read_text())
    sc = study_contract  # the excerpts exactly as the study takes them for choices.json
    contract["code"] = {
        "split": asdict(sc._split_line()),
        "draws": asdict(sc._draws()),
        "augmentation": asdict(sc._augmentation()),
    }
    (root / "choices.json").write_text(json.dumps(contract))
    res = paper.build(root, compile=False, figures=False)
    md_blocks, tex_blocks = excerpts(res.report_md.read_text(), res.tex.read_text())
    assert len(md_blocks) == len(tex_blocks) == 3
    for block in md_blocks + tex_blocks:
        compile(block, "<excerpt>", "exec")  # a SyntaxError here is half a statement
    split, draws, _ = md_blocks
    assert split.startswith("train, val = torch.utils.data.random_split(") and split.endswith(")")
    assert split in inspect.getsource(cifar.split_indices).replace("\n    ", "\n")  # the code that runs
    assert "generator=torch.Generator().manual_seed(seed)" in split
    assert draws.startswith("if crop_flip:") and "flip = rng.random(n) < 0.5" in draws
    assert "else:" in draws and draws.replace("\n", "\n        ") in inspect.getsource(RunRandom.epoch_plan)
    assert "The split is this statement:" in res.report_md.read_text()


def test_a_statement_is_taken_whole_however_many_lines_it_spans():
    # fmt: off
    def f(n):
        x = 1
        y = sum(
            (n, x)
        )
        if y:
            return y
        return 0
    # fmt: on

    assert study_contract.statement(f, "sum(") == "y = sum(\n    (n, x)\n)"
    assert study_contract.statement(f, "return y") == "if y:\n    return y"
