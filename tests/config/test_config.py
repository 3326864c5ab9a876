"""Config groups compose to the assignment's values; every bad value fails in one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from support import run_cli

from hw_hparams.config.errors import ConfigError
from hw_hparams.config.naming import CONFIG_DIR
from hw_hparams.train.preflight import check_overrides

GROUP_VALUES = {
    ("lr", "lr0.5"): {"optim.lr": 0.5},
    ("lr", "lr0.05"): {"optim.lr": 0.05},
    ("lr", "lr0.01"): {"optim.lr": 0.01},
    ("schedule", "constant"): {"schedule.name": "constant"},
    ("schedule", "cosine"): {"schedule.name": "cosine"},
    ("regularization", "none"): {"optim.weight_decay": 0.0},
    ("regularization", "wd1e-4"): {"optim.weight_decay": 1e-4},
    ("regularization", "wd5e-4"): {"optim.weight_decay": 5e-4},
    ("augmentation", "none"): {"augmentation.crop_flip": False, "augmentation.mixup_alpha": None},
    ("augmentation", "cropflip"): {"augmentation.crop_flip": True, "augmentation.mixup_alpha": None},
    ("augmentation", "mixup"): {"augmentation.crop_flip": True, "augmentation.mixup_alpha": 0.2},
    ("model", "mobilenetv2"): {"model.name": "mobilenetv2"},
    ("model", "mobilenetv1"): {"model.name": "mobilenetv1"},
    ("model", "tiny"): {"model.name": "tiny"},
    ("data", "cifar100"): {"data.val_size": 10000, "data.split_seed": 0, "data.verify_checksums": True},
    ("trainer", "default"): {"trainer.device": "auto"},
}


def _compose(overrides=()):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _get(cfg, dotted):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node.value if hasattr(node, "value") else node


def test_defaults_are_the_assignments_section_3_setting():
    cfg = _compose()
    expected = {
        "epochs": 15,
        "batch_size": 128,
        "seed": 0,
        "eval_test": False,
        "optim.lr": 0.05,
        "optim.momentum": 0.9,
        "optim.weight_decay": 0.0,
        "schedule.name": "constant",
        "augmentation.crop_flip": True,
        "augmentation.mixup_alpha": None,
        "data.val_size": 10000,
        "data.split_seed": 0,
        "data.verify_checksums": True,
        "data.download": True,
        "trainer.device": "auto",
        "model.name": "mobilenetv2",
    }
    assert {k: _get(cfg, k) for k in expected} == expected


def test_every_shipped_option_is_covered_here():
    conf = CONFIG_DIR
    shipped = {
        (group, f.name[:-5])
        for group in ("lr", "schedule", "regularization", "augmentation", "model", "data", "trainer")
        for f in (conf / group).iterdir()
        if f.name.endswith(".yaml")
    }
    assert shipped == set(GROUP_VALUES)


@pytest.mark.parametrize(
    ("option", "values"), GROUP_VALUES.items(), ids=lambda v: "=".join(v) if isinstance(v, tuple) else ""
)
def test_each_group_option_composes_to_its_values(option, values):
    group, name = option
    cfg = _compose([f"{group}={name}"])
    for key, value in values.items():
        assert _get(cfg, key) == pytest.approx(value) if isinstance(value, float) else _get(cfg, key) == value


def test_groups_combine_and_values_override_groups():
    cfg = _compose(["lr=lr0.5", "schedule=cosine", "regularization=wd5e-4", "augmentation=mixup", "optim.lr=0.01"])
    assert (cfg.optim.lr, cfg.optim.weight_decay, _get(cfg, "schedule.name"), cfg.augmentation.mixup_alpha) == (
        0.01,
        5e-4,
        "cosine",
        0.2,
    )


BAD = [
    (["optim.lr=0"], "optim.lr"),
    (["optim.lr=-0.1"], "optim.lr"),
    (["optim.lr=abc"], "optim.lr"),
    (["optim.momentum=1"], "optim.momentum"),
    (["optim.momentum=-0.1"], "optim.momentum"),
    (["optim.weight_decay=-1"], "optim.weight_decay"),
    (["augmentation.mixup_alpha=0"], "augmentation.mixup_alpha"),
    (["augmentation.mixup_alpha=-0.2"], "augmentation.mixup_alpha"),
    (["epochs=0"], "epochs"),
    (["batch_size=0"], "batch_size"),
    (["data.val_size=0"], "data.val_size"),
    (["lr=0.7"], "lr"),
    (["lr=fast"], "lr"),
    (["schedule=linear"], "schedule"),
    (["schedule.name=linear"], "schedule.name"),
    (["regularization=wd1e-3"], "regularization"),
    (["model=resnet"], "model"),
    (["optim.lrr=1"], "optim.lrr"),
    (["trainer.device=tpu"], "trainer.device"),
]


@pytest.mark.parametrize(("overrides", "key"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_raise_a_config_error_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        check_overrides(overrides)
    assert str(err.value).startswith(key)


def test_bad_value_inside_a_sweep_is_caught_before_anything_runs():
    with pytest.raises(ConfigError, match="optim.lr"):
        check_overrides(["optim.lr=0.5,-1"], multirun=True)


@pytest.mark.parametrize("args", [["lr=0.7"], ["optim.momentum=1.5"], ["-m", "optim.lr=0.05,0"], ["schedule=linear"]])
def test_cli_user_error_is_one_line_exit_2_and_no_folder(tmp_path, args):
    (tmp_path / "outputs" / "run" / "keep").mkdir(parents=True)
    (tmp_path / "outputs" / "run" / "keep" / "history.csv").write_text("epoch\n1\n")
    result = run_cli(args, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert made == ["outputs", "outputs/run", "outputs/run/keep", "outputs/run/keep/history.csv"]
    assert (tmp_path / "outputs/run/keep/history.csv").read_text() == "epoch\n1\n"


def test_val_size_not_smaller_than_training_set_is_one_line(tmp_path, fake_root):
    from support import fake_data_overrides

    result = run_cli([*fake_data_overrides(fake_root, val_size=600), "model=tiny"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "data.val_size=600" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs" / "run").exists() or not any((tmp_path / "outputs" / "run").iterdir())


def test_a_built_wheel_carries_every_config_file_and_every_package(tmp_path):
    """What a non-editable install gets: conf/ (at the top of the checkout) as hw_hparams.conf, every
    package of the tree and analysis' data files, found by setup.py, never listed by hand."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    conf = {f"hw_hparams/conf/{p.relative_to(root / 'conf')}" for p in (root / "conf").rglob("*.yaml")}
    sources = {
        str(p.relative_to(root))
        for package in ("hw_hparams", "analysis", "hydra_plugins")
        for p in (root / package).rglob("*")
        if p.suffix in (".py", ".tex", ".json") and "__pycache__" not in p.parts
    }
    assert len(conf) > 20 and conf <= shipped, sorted(conf - shipped)
    assert sources <= shipped, sorted(sources - shipped)
