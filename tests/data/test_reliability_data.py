"""Bad data: one line that says what is wrong and what to do, exit 2, no traceback, and no run folder
left behind claiming a run (the cases of the issue through the CLI, more through load_cifar100)."""

from __future__ import annotations

import http.client
import pickle
import urllib.error

import numpy as np
import pytest
import torchvision.datasets.cifar
from reliability_util import assert_one_error_line, run_many

from hw_hparams.data.cifar import DataError, load_cifar100
from hw_hparams.data.fake import write_fake_cifar100

RUN = ["model=tiny", "epochs=1", "data.download=false", "data.val_size=50"]
UNCHECKED = [*RUN, "data.verify_checksums=false"]


def _edit_pickle(path, change):
    with open(path, "rb") as f:
        batch = pickle.load(f)
    change(batch)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _fewer_images(batch):  # the pixels of a third of the images, but every label
    batch["data"] = batch["data"].reshape(-1)[: len(batch["fine_labels"]) * 1024].reshape(-1, 1024)


# case -> (how to spoil a fresh fake dataset's cifar-100-python/, overrides, words the one line must hold)
CLI_CASES = {
    "missing, no download": (None, RUN, ["is missing", "data.download=true"]),
    "truncated pickle": (
        lambda d: _truncate(d / "train"),
        UNCHECKED,
        ["damaged", "truncated", "download again, or regenerate"],
    ),
    "wrong shape": (
        lambda d: _edit_pickle(d / "train", _fewer_images),
        UNCHECKED,
        ["images for", "labels", "regenerate"],
    ),
    "val_size too large": (lambda d: None, [*UNCHECKED, "data.val_size=200"], ["data.val_size=200", "[1, 149]"]),
}
# The same, read in-process (load_cifar100 is what the CLI calls; the CLI prints its DataError as the line).
READ_CASES = {
    "garbage pickle": (
        lambda d: (d / "test").write_bytes(np.random.default_rng(0).bytes(4000)),
        ["damaged", "download again, or regenerate"],
    ),
    "missing meta": (lambda d: (d / "meta").unlink(), ["incomplete (no meta)", "data.download=true"]),
    "float pixels": (
        lambda d: _edit_pickle(d / "test", lambda b: b.update(data=b["data"].astype(np.float64))),
        ["float64", "uint8"],
    ),
    "labels out of range": (
        lambda d: _edit_pickle(d / "train", lambda b: b.update(fine_labels=[l + 100 for l in b["fine_labels"]])),
        ["labels in [0, 100)", "regenerate"],
    ),
    "labels missing": (lambda d: _edit_pickle(d / "train", lambda b: b.pop("fine_labels")), ["damaged", "KeyError"]),
}


def test_bad_data_ends_in_one_line_exit_2_and_leaves_no_run_folder(tmp_path):
    jobs = []
    for i, (spoil, overrides, _) in enumerate(CLI_CASES.values()):
        cwd = tmp_path / f"case{i}"
        cwd.mkdir()
        if spoil is not None:
            spoil(write_fake_cifar100(cwd / "data", train=150, test=20, seed=0))
        jobs.append(([*overrides, "data.root=data"], cwd))
    for (case, (_, _, words)), (_, cwd), result in zip(CLI_CASES.items(), jobs, run_many(jobs)):
        assert result.returncode == 2, (case, result.stdout, result.stderr)
        assert_one_error_line(result, "data.", *words)
        outputs = cwd / "outputs"
        assert not outputs.exists() or not [p for p in outputs.rglob("*") if p.is_file()], (
            case,
            list(outputs.rglob("*")),
        )


@pytest.mark.parametrize("case", list(READ_CASES))
def test_bad_dataset_files_are_one_line_data_errors(tmp_path, case):
    spoil, words = READ_CASES[case]
    spoil(write_fake_cifar100(tmp_path, train=150, test=20, seed=0))
    with pytest.raises(DataError) as info:
        load_cifar100(str(tmp_path), download=False, verify_checksums=False)
    assert "\n" not in str(info.value) and str(info.value).startswith("data.root=")
    for w in words:
        assert w in str(info.value)


def test_a_dataset_that_is_not_the_official_one_is_refused_unless_checksums_are_off(tmp_path):
    write_fake_cifar100(tmp_path, train=150, test=20, seed=0)
    with pytest.raises(DataError) as info:
        load_cifar100(str(tmp_path), download=False, verify_checksums=True)
    assert "not the official CIFAR-100" in str(info.value) and "data.verify_checksums=false" in str(info.value)


@pytest.mark.parametrize(
    "failure",
    [urllib.error.URLError("Name or service not known"), http.client.IncompleteRead(b"x" * 10, 1000)],
    ids=["no network", "download cut off"],
)
def test_a_failed_or_broken_download_is_one_line(tmp_path, monkeypatch, failure):
    (tmp_path / torchvision.datasets.cifar.CIFAR100.filename).write_bytes(b"\x1f\x8b half an archive")

    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", fail)
    with pytest.raises(DataError) as info:
        load_cifar100(str(tmp_path), download=True, verify_checksums=True)
    message = str(info.value)
    assert "\n" not in message and "cifar-100-python.tar.gz there is incomplete or damaged" in message
    assert "check the network" in message and type(failure).__name__ in message


def test_the_archive_a_download_leaves_is_named_as_torchvision_names_it():
    from hw_hparams.data.cifar import ARCHIVE

    assert torchvision.datasets.CIFAR100.filename == ARCHIVE
