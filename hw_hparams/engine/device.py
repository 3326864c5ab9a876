"""`trainer.device`: which device a run trains on, and whether this machine has it.

auto = CUDA when present, else the CPU; cpu; cuda; cuda:N; cuda:job = GPU (job number mod GPU
count) for one GPU per sweep job; cuda:job/K = K consecutive jobs share a GPU.
"""

from __future__ import annotations

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from hw_hparams.config.checks import JOB_DEVICE
from hw_hparams.config.errors import ConfigError


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
