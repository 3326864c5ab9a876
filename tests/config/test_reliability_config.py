"""Random override sets of the public keys, valid and invalid: every one either runs (one short
epoch on a tiny dataset) or fails in one line naming a key it got wrong, with no traceback and no
folder left behind claiming a run that never started.

The oracle is independent of the code: each drawn value is tagged by hand as ok, invalid (caught
when the command line is checked), machine (a CUDA device: caught when the command line is checked
on a machine without one, else fine) or runtime (only the dataset can tell: a validation split
larger than the dataset).
"""

from __future__ import annotations

import contextlib
import io
import json
import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_util import cfg, one_thread, run_many  # noqa: F401 - one_thread: autouse fixture

import hw_hparams.train.lifecycle as train_module
from hw_hparams.config.errors import ConfigError
from hw_hparams.data.fake import write_fake_cifar100
from hw_hparams.train.preflight import check_overrides, exit_on_user_error

TRAIN_IMAGES = 100  # the tiny dataset: val_size 1..99 leaves something to train on


def _tagged(ok, invalid=(), runtime=(), machine=()):
    machine_tag = "ok" if torch.cuda.is_available() else "machine"
    tags = ((ok, "ok"), (invalid, "invalid"), (runtime, "runtime"), (machine, machine_tag))
    return st.one_of(*[s.map(lambda v, t=t: (v, t)) for s, t in tags if s != ()])


def _choice(*values):
    return st.sampled_from(values)


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False).map(repr)


KEYS = {
    "epochs": _tagged(st.integers(1, 400).map(str), _choice("0", "-1", "abc", "1.5")),
    "batch_size": _tagged(st.integers(1, 512).map(str), _choice("0", "-8", "big")),
    "seed": _tagged(st.integers(-10, 10**6).map(str), _choice("x", "0.5", "${now:}")),
    "optim.lr": _tagged(
        _floats(1e-5, 2.0),
        _choice("0", "-0.1", "fast", "inf", "-inf", "nan", "1e400", "${oops}", "${oc.env:HW_HPARAMS_UNSET}"),
    ),
    "optim.momentum": _tagged(_floats(0.0, 0.99), _choice("1", "1.5", "-0.1", "nan", "inf")),
    "optim.weight_decay": _tagged(_floats(0.0, 1e-2), _choice("-1e-4", "x", "inf", "nan")),
    "augmentation.mixup_alpha": _tagged(_choice("null", "0.2", "1.0"), _choice("0", "-1", "x", "inf", "nan")),
    "data.val_size": _tagged(
        st.integers(1, 40).map(str), _choice("0", "-3", "x", "${data.nope}"), _choice("100", "200", "10000")
    ),
    "data.split_seed": _tagged(st.integers(0, 10**6).map(str), _choice("x")),
    "eval_test": _tagged(_choice("true", "false"), _choice("maybe", "yes please")),
    "trainer.device": _tagged(
        _choice("auto", "cpu"), _choice("gpu", "tpu", "cuda:x"), machine=_choice("cuda", "cuda:0", "cuda:job")
    ),
    "lr": _tagged(_choice("lr0.01", "lr0.05", "lr0.5"), _choice("lr0.3", "lr1")),
    "schedule": _tagged(_choice("constant", "cosine"), _choice("linear")),
    "regularization": _tagged(_choice("none", "wd1e-4", "wd5e-4"), _choice("wd1")),
    "augmentation": _tagged(_choice("none", "cropflip", "mixup"), _choice("cutout")),
    "model": _tagged(_choice("tiny", "mobilenetv2", "mobilenetv1"), _choice("resnet18")),
}
# What a short run may use: one epoch of the tiny model (the MobileNets only compose and validate here).
RUNNABLE = {
    **KEYS,
    "epochs": _tagged(_choice("1"), _choice("0", "abc")),
    "model": _tagged(_choice("tiny"), _choice("resnet18")),
}
SHORT_RUN = {"epochs": ("1", "ok"), "model": ("tiny", "ok"), "data.val_size": ("20", "ok")}  # unless drawn


def override_sets(keys=KEYS, kinds=("ok", "invalid", "runtime")):
    """{key: (value, tag)} for a random subset of the public keys, tags among `kinds`."""

    def pick(names):
        values = [keys[k].filter(lambda vt: vt[1] in kinds or vt[1] == "machine" and "runtime" in kinds) for k in names]
        return st.tuples(*values).map(lambda vs: dict(zip(names, vs)))

    return st.lists(st.sampled_from(sorted(keys)), unique=True, max_size=8).flatmap(pick)


def _expect(drawn: dict, checked: bool = False) -> tuple[str, set[str]]:
    """('invalid' | 'runtime' | 'ok', the keys that make it so); a machine mistake is invalid where
    the command line is `checked`, and found at runtime by a run started directly."""
    as_tag = {"machine": "invalid" if checked else "runtime"}
    for tag in ("invalid", "runtime"):
        keys = {k for k, (_, t) in drawn.items() if as_tag.get(t, t) == tag}
        if keys:
            return tag, keys
    return "ok", set()


def _overrides(drawn: dict) -> list[str]:
    return [f"{k}={v}" for k, (v, _) in drawn.items()]


def _named_key(message: str) -> str:
    return re.match(r"(?:error: )?([\w.]+)", message)[1]


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(override_sets())
def test_every_override_set_validates_or_fails_in_one_line_naming_a_wrong_key(drawn):
    expected, keys = _expect(drawn, checked=True)
    try:
        check_overrides(_overrides(drawn))
    except ConfigError as err:
        assert expected == "invalid", (drawn, str(err))
        assert "\n" not in str(err) and _named_key(str(err)) in keys, (drawn, str(err))
        return
    assert expected != "invalid", drawn


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_cifar")
    write_fake_cifar100(root, train=TRAIN_IMAGES, test=10, seed=0)
    return [f"data.root={root}", "data.verify_checksums=false", "data.download=false", "trainer.progress=false"]


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(drawn=override_sets(RUNNABLE, kinds=("ok", "runtime")))
def test_every_valid_override_set_runs_one_epoch_or_fails_in_one_line_leaving_no_folder(
    drawn, tiny_data, tmp_path_factory
):
    expected, keys = _expect(drawn)
    drawn = {**SHORT_RUN, **drawn}
    run_dir = tmp_path_factory.mktemp("run")
    # Hydra has made the (empty) folder; a refused run must leave none
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.suppress(SystemExit):
        with exit_on_user_error(run_dir):
            summary = train_module.run(cfg([*_overrides(drawn), *tiny_data]), run_dir)
    if expected == "ok":
        assert summary["status"] == "completed" and summary["epochs_completed"] == 1, drawn
        return
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1 and _named_key(lines[0]) in keys, (drawn, lines)
    assert not run_dir.exists(), (drawn, list(run_dir.iterdir()))


def test_a_handful_through_the_cli(tmp_path, tiny_data):
    examples = []

    @settings(max_examples=12, deadline=None, derandomize=True, database=None)
    @given(
        st.one_of(
            override_sets(RUNNABLE, kinds=("ok",)), override_sets(RUNNABLE).filter(lambda d: _expect(d)[0] != "ok")
        )
    )
    def collect(drawn):
        examples.append(drawn)

    collect()
    examples = [d for d in examples if _expect(d)[0] == "ok"][:2] + [d for d in examples if _expect(d)[0] != "ok"][:2]
    assert len(examples) == 4
    jobs = [([*_overrides({**SHORT_RUN, **d}), *tiny_data], tmp_path / f"example{i}") for i, d in enumerate(examples)]
    for _, cwd in jobs:
        cwd.mkdir()
    for drawn, (_, cwd), result in zip(examples, jobs, run_many(jobs)):
        expected, keys = _expect(drawn)
        assert "Traceback" not in result.stdout + result.stderr, (drawn, result.stderr)
        written = [p for p in (cwd / "outputs").rglob("*") if p.is_file()] if (cwd / "outputs").exists() else []
        if expected == "ok":
            assert result.returncode == 0, (drawn, result.stderr)
            [summary] = [p for p in written if p.name == "summary.json"]
            assert json.loads(summary.read_text())["status"] == "completed"
        else:
            lines = [l for l in result.stderr.splitlines() if l.strip()]
            assert result.returncode == 2 and len(lines) == 1, (drawn, result.stderr)
            assert _named_key(lines[0]) in keys and not written, (drawn, lines, written)
