"""The report's content as a Document, in the assignment's order, from one StudyData.

Introduction, data preprocessing, the four experiment sections (content_sections.py) and the
test accuracy. Numbers come from the study's runs table; what needs the author's judgement is a
Todo block (report.md: '> **TODO(author):**', paper: a red box) until the author writes its part
of report/author.md (authored.py).
"""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np

from analysis.content_sections import lr_section, mixup_section, schedule_section, wd_section
from analysis.noise import binomial_se
from analysis.read.labels import fmt_loss, fmt_num, fmt_pct, setting_label
from analysis.read.study import StudyData
from analysis.render.document import Bold, Cite, Code, Document, Heading, Listing, Note, Para, Ref, Todo
from analysis.render.figures import class_figure
from analysis.render.tables import channel_table

#: Every work the report can cite: key -> [authors, year, full entry] (package data).
REFERENCES = json.loads(files(__package__).joinpath("references.json").read_text(encoding="utf-8"))
MODEL_NAMES = {"mobilenetv2": "MobileNetV2", "mobilenetv1": "MobileNet (V1)", "tiny": "a tiny CNN"}


def model_name(model: str) -> str:
    """'mobilenetv2' -> 'MobileNetV2'; other names as they are."""
    return MODEL_NAMES.get(model, model)


def study_model(s: StudyData) -> str:
    """The model of the study's runs (config model.name), 'unknown' when no run says."""
    models = s.runs["model"].dropna()
    return str(models.iloc[0]) if len(models) else "unknown"


def head(s: StudyData) -> list:
    runs = s.runs
    model = study_model(s)
    blocks = []
    if s.demo:
        scale = (s.contract.demo or {}).get("epoch_scale")
        what = (
            f" Generated images in CIFAR-100's format, model {model}, every section's epochs scaled by {scale:g}. "
            "The numbers show the pipeline working; they say nothing about MobileNetV2 or CIFAR-100."
        )
        blocks.append(Note(Bold("Demo: generated data."), what))
    momentum = ", ".join(fmt_num(v) for v in runs["momentum"].dropna().unique())
    batch = ", ".join(fmt_num(v) for v in runs["batch_size"].dropna().unique())
    blocks += [
        Heading("Introduction"),
        Para(
            f"We train {model_name(model)} ",
            *((Cite("sandler2018mobilenetv2"), " ") if model == "mobilenetv2" else ()),
            "on CIFAR-100 ",
            Cite("krizhevsky2009cifar"),
            f" with SGD (momentum {momentum}, batch size "
            f"{batch}) and study, in turn, the initial learning rate, the learning-rate schedule, weight decay "
            "and mixup augmentation, choosing each on a held-out validation split; the test split is "
            "used once, at the end.",
        ),
        Para(
            "The runs come from ",
            Code(s.contract.command),
            "; ",
            Code(f"python -m analysis.paper {s.root.name}"),
            " (run beside the study folder) rebuilds this report from them without training.",
        ),
        *([Para(*plan_text(s.contract))] if s.contract.plan else []),
        Todo("introduction", "introduction: optimisation versus regularisation, and what this study varies."),
    ]
    return blocks


def plan_text(c) -> tuple:
    """'The study ran in 3 stages ...': which sections trained together, and any speculative run (choices.json)."""

    def stage(st: dict) -> str:
        parts = st["parts"]
        if st.get("test"):
            return f"{parts[0]} at the chosen values evaluated the test split"
        what = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]} together"
        return f"{what} ({st['runs']} run{'s' * (st['runs'] != 1)}, {st['epochs']} epoch{'s' * (st['epochs'] != 1)})"

    stages = [stage(st) for st in c.plan]
    launcher = c.plan[0].get("launcher", "?")
    then = "".join(f"; then {x}" for x in stages[1:])
    text: list = [
        f"The study ran in {len(stages)} stage{'s' * (len(stages) != 1)} (launcher {launcher}): {stages[0]}{then}."
    ]
    for sp in (x for x in c.speculative if not x.get("chosen")):
        word = sp["choice"].replace("_", " ")
        text += [
            f" The {sp['section']} run at {word} {fmt_num(sp['value'])} (",
            Code(", ".join(sp["run_dirs"])),
            f") trained speculatively, on a guess of the {word}; it was not chosen and was never "
            "evaluated on the test split.",
        ]
    return tuple(text)


def data_section(s: StudyData) -> list:
    st = s.stats or {}
    sizes = s.sizes
    blocks: list = [Heading("Data Preprocessing")]
    code = s.contract.code
    if sizes:
        total = int(sizes.get("train", 0)) + int(sizes.get("val", 0))
        text = (
            f"The {total} training images are split at random into {sizes.get('train')} for training and "
            f"{sizes.get('val')} for validation with seed {st.get('split_seed')}; the {sizes.get('test', '?')} test "
            "images are used once, at the end."
            + (" The split is this statement:" if "split" in code and code["split"].whole else "")
        )
        blocks.append(Para(text))
    blocks += excerpt(code, "split")
    props = np.asarray(st.get("class_proportions") or [], dtype=float)
    if props.size:
        names = list(st.get("class_names") or [str(i) for i in range(props.size)])
        lo, hi = int(np.argmin(props)), int(np.argmax(props))
        shares = class_figure(st)
        blocks += [
            Para(
                Ref(shares.label),
                f" shows the share of each of the {props.size} classes in "
                f"the training split: from {100 * props[lo]:.2f}% ({names[lo]}) to {100 * props[hi]:.2f}% "
                f"({names[hi]}), mean {100 * props.mean():.2f}% (standard deviation "
                f"{100 * props.std():.2f} points), against a uniform share of {100 / props.size:.2f}%.",
            ),
            shares,
        ]
    if st.get("mean") and st.get("std"):
        channels = channel_table(
            st, ("Channel statistics of the training split, in [0, 1] pixel units.",), ("Red", "Green", "Blue")
        )
        blocks += [
            Para(
                "Each colour channel is normalised with the mean and standard deviation of its pixels "
                "over the training split (",
                Ref(channels.label),
                "), in [0, 1] pixel units.",
            ),
            channels,
        ]
    blocks.append(
        Para(
            "Training images are augmented: a random 32×32 crop of the image padded by 4 "
            "pixels on every side, and a horizontal flip with probability 0.5, then normalised; "
            "validation and test images are only normalised. The run's own generator draws the crop "
            "offsets and flips of every image, each epoch; the crop, flip and normalisation then run "
            "batch-wise on the device, like torchvision's ",
            Code("RandomCrop(32, padding=4)"),
            " and ",
            Code("RandomHorizontalFlip(0.5)"),
            "." + (" The code:" if {"draws", "augmentation"} & set(code) else ""),
        )
    )
    return blocks + excerpt(code, "draws") + excerpt(code, "augmentation")


def excerpt(code: dict, name: str) -> list:
    """The Listing of code[name] when it is whole statements (contract.Code.whole), else a line
    saying that choices.json holds a partial excerpt; nothing when choices.json has none."""
    c = code.get(name)
    if c is None:
        return []
    if c.whole:
        return [Listing(c.source, c.origin)]
    return [Para(f"({PARTIAL.format(name=name)})")]


#: Said in the report, and by python -m analysis.paper, of an excerpt that is not whole statements.
PARTIAL = (
    "choices.json holds a partial {name} excerpt, from an older study; re-running the study's command "
    "rewrites it without training"
)


def test_section(s: StudyData) -> list:
    final, _ = s.part(s.contract.final_section)
    tested = final[final["test_acc"].notna()]
    blocks: list = [Heading("Test Accuracy")]
    if tested.empty:
        blocks.append(Para("The final configuration did not complete, so the test split was not evaluated."))
    else:
        acc, loss, k = float(tested["test_acc"].mean()), float(tested["test_loss"].mean()), len(tested)
        n = int(s.sizes.get("test") or 0)
        words = setting_label(tested.iloc[0].to_dict())
        noise = f"; binomial standard error {fmt_pct(binomial_se(acc, n))} points on {n} test images" if n else ""
        spread = (
            f", mean of {k} runs (sample standard deviation {fmt_pct(tested['test_acc'].std(ddof=1))} points)"
            if k > 1
            else ""
        )
        blocks.append(
            Para(
                f"The final configuration ({words}) reaches ",
                Bold(f"{fmt_pct(acc)}% test accuracy"),
                f" (test loss {fmt_loss(loss)}{spread}{noise}). The test split was evaluated "
                "once, after every choice above had been made on the validation split.",
            )
        )
    blocks.append(Todo("test-accuracy", "what this accuracy means for similar images in the future."))
    return blocks


def build(s: StudyData) -> Document:
    """The whole report of the study `s`."""
    title = (
        f"Hyperparameters of {model_name(study_model(s))} on CIFAR-100: Learning Rate, Schedule, Weight Decay and Mixup"
    )
    if s.demo:
        title = "Demo on Generated Data: " + title
    doc = Document(title, "Author Name (TODO)", references=dict(REFERENCES))
    parts = (head, data_section, lr_section, schedule_section, wd_section, mixup_section, test_section)
    doc.blocks = [block for part in parts for block in part(s)]
    return doc
