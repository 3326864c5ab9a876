"""`trainer.device`: which device a run trains on, and whether this machine has it.

auto = CUDA when present, else the CPU; cpu; cuda; cuda:N; cuda:job = GPU (job number mod GPU
count) for one GPU per sweep job; cuda:job/K = K consecutive jobs share a GPU. When auto falls back to
the CPU on a machine with an NVIDIA GPU that torch cannot use (a driver too old for the installed
torch, a CPU-only build), one warning line says why and how to choose the CPU deliberately.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Optional

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from hw_hparams.config.checks import JOB_DEVICE
from hw_hparams.config.errors import ConfigError
from hw_hparams.engine.compile_guard import one_line

log = logging.getLogger(__name__)
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present where an NVIDIA driver is loaded
NVIDIA_DEVICE = Path("/dev/nvidia0")


def gpu_for_job(job_num: int, jobs_per_gpu: int, n_gpus: int) -> int:
    """GPU index of sweep job `job_num`: consecutive groups of `jobs_per_gpu` jobs, round robin over `n_gpus`."""
    return (job_num // jobs_per_gpu) % n_gpus


def job_num() -> int:
    """This process's Hydra job number (0 outside a sweep)."""
    if not HydraConfig.initialized():
        return 0
    job = HydraConfig.get().job
    return 0 if OmegaConf.is_missing(job, "num") else int(job.num)


def check_available(name: str) -> None:
    """Refuse (ConfigError) a CUDA device this machine does not have; `name` passed `checks.validate`."""
    if not name.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name!r} is not allowed here: no CUDA device; use auto or cpu")
    index = name.partition(":")[2]
    if index.isdigit() and int(index) >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(
            f"trainer.device={name!r} is not allowed here: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}"
        )


def pick_device(name: str) -> torch.device:
    """The torch device `trainer.device` names for this job; a CUDA device becomes the current one
    (torch.cuda.set_device), so CUDA graphs, streams and caches are made on it."""
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cpu":
            _warn_if_gpu_unusable()
    else:
        check_available(name)
        per_job = JOB_DEVICE.match(name)
        if per_job:
            device = torch.device("cuda", gpu_for_job(job_num(), int(per_job[1] or 1), torch.cuda.device_count()))
        else:
            device = torch.device(name)
    if device.type == "cuda":
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


@functools.cache  # once per process, however many jobs a sweep runs in it
def _warn_if_gpu_unusable() -> None:
    """One warning line where trainer.device=auto found no CUDA device on a machine with an NVIDIA GPU."""
    card = nvidia_gpu()
    if card is not None:
        log.warning(
            "trainer.device=auto: this machine has an NVIDIA GPU (%s) that torch %s cannot use (%s); training on "
            "the CPU, far slower: fix the driver or the torch build, or set trainer.device=cpu to choose the CPU",
            card,
            torch.__version__,
            why_no_cuda(),
        )


def nvidia_gpu() -> Optional[str]:
    """The NVIDIA driver this machine has loaded ("driver 535.104.05"), or None when it has no NVIDIA GPU."""
    try:
        found = re.search(r"Kernel Module.*?\s(\d+\.\d+(?:\.\d+)?)\s", NVIDIA_DRIVER.read_text())
        return f"driver {found[1]}" if found else "driver of unknown version"
    except OSError:
        return "no driver loaded" if NVIDIA_DEVICE.exists() else None


def why_no_cuda() -> str:
    """Why torch sees no CUDA device (one line): a CPU-only build, or what CUDA's initialisation said."""
    if torch.version.cuda is None:
        return "this torch build has no CUDA"
    try:
        torch.cuda.init()
    except Exception as err:  # noqa: BLE001 - its message is the reason (a driver too old, none found)
        return one_line(err)
    return f"CUDA {torch.version.cuda} finds no usable device"
