"""The one "did you mean" rule (hw_hparams/config/suggest.py) that the training, study and analysis commands use."""

from __future__ import annotations

import pytest

from hw_hparams.config.suggest import close_names, did_you_mean

KEYS = ["optim.lr", "optim.momentum", "optim.weight_decay", "schedule", "schedule.name", "model.name", "seed", "epochs"]


@pytest.mark.parametrize(
    "given, known, near",
    [
        ("optim.lrr", KEYS, ["optim.lr"]),  # a typo
        ("scheduler", KEYS, ["schedule"]),  # a group's name, misspelt
        ("lr", KEYS, ["optim.lr"]),  # the last part of a dotted key
        ("optimizer.lr", KEYS, ["optim.lr"]),  # the same last part
        ("name", KEYS, ["model.name", "schedule.name"]),  # every key it may be, sorted
        ("Optim.LR", KEYS, ["optim.lr"]),  # another case
        ("sed", KEYS, ["seed"]),
        ("cosin", ["constant", "cosine"], ["cosine"]),
        ("mobilenet_v2", ["mobilenetv1", "mobilenetv2", "tiny"], ["mobilenetv2"]),  # the closest only
        ("resnet", ["mobilenetv1", "mobilenetv2", "tiny"], []),  # nothing close
        ("optim.learning_rate", KEYS, []),
        ("foo", [], []),
    ],
)
def test_close_names(given, known, near):
    assert close_names(given, known) == near


def test_the_hint_names_at_most_three_and_nothing_when_none_is_close():
    assert did_you_mean("lr", [f"g{i}.lr" for i in range(5)]) == " (did you mean g0.lr, g1.lr, g2.lr?)"
    assert did_you_mean("resnet", ["tiny"]) == ""
    assert did_you_mean("optim.lr", ["optim.lr"]) == ""  # a known name is no mistake
