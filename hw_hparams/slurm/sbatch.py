"""sbatch's verdict on a sweep's jobs before anything is submitted, worded by the launcher key at fault.

`require()` says when SLURM's commands are missing. `check(script, params)` runs `sbatch --test-only`
on the script submitit would submit; when sbatch
refuses it, ConfigError says in one line which `hydra.launcher` key it refused, what this cluster
offers instead (from `sinfo`), and sbatch's own words. `refusal(text, params)` words a refusal that
only the real submission saw the same way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading

from hw_hparams.config.errors import ConfigError

# One submission at a time: hydra/sweeper=search launches from several threads (its slots), and a
# submission swaps sys.stderr (process-wide) while sbatch runs. Here, not in the launcher's module:
# a requeue pickles the launcher's class, by value inside a job, with the globals it names (a lock
# cannot be pickled).
SUBMITTING = threading.Lock()

_PREFIXES = ("sbatch: error: ", "Batch job submission failed: ", "allocation failure: ")


def _sinfo(fmt: str, partition: str | None = None) -> list[str]:
    """sinfo's lines for one `--format` (of one partition); [] when sinfo fails."""
    cmd = ["sinfo", "--noheader", f"--format={fmt}"] + ([f"--partition={partition}"] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.strip() for line in out.splitlines() if line.strip()})


def _partition(params: dict) -> str:
    """The partition the jobs go to: hydra.launcher.partition, else the cluster's default (sinfo marks it `*`)."""
    if params.get("partition"):
        return params["partition"]
    default = [p.rstrip("*") for p in _sinfo("%P") if p.endswith("*")]
    return default[0] if default else "(default)"


def _words(text: str) -> str:
    """sbatch's stderr as one line, its prefixes dropped, each distinct message once."""
    said = []
    for line in text.splitlines():
        line = line.strip()
        while line.startswith(_PREFIXES):
            line = next(line[len(p) :] for p in _PREFIXES if line.startswith(p))
        if line and line not in said:
            said.append(line)
    return "; ".join(said) or "no reason given"


def refusal(text: str, params: dict) -> str:
    """One line for sbatch's refusal `text` of jobs with launcher `params`: the key, what is allowed, sbatch's words."""
    words = _words(text)
    low = words.lower()
    part = _partition(params)
    if "partition" in low:
        return (
            f"hydra.launcher.partition={params.get('partition')!r} is refused by sbatch ({words}): "
            f"choose one of {', '.join(p.rstrip('*') for p in _sinfo('%P'))}"
        )
    if "gres" in low or "gpu" in low:
        key = next((k for k in ("gres", "gpus_per_task") if params.get(k)), "gpus_per_node")
        gres = ", ".join(g for g in _sinfo("%G", part) if g != "(null)") or "no GPUs"
        return (
            f"hydra.launcher.{key}={params.get(key)!r} is refused by sbatch ({words}): partition {part} offers {gres}; "
            "use hydra/launcher=slurm_cpu (no GPU) or pick a GPU partition with hydra.launcher.partition=..."
        )
    if "node configuration" in low or "memory" in low or "cpu" in low:
        nodes = ", ".join(
            f"{c} CPUs and {int(m.rstrip('+')) // 1024} GB" for c, m in (x.split() for x in _sinfo("%c %m", part))
        )
        return (
            f"hydra.launcher.cpus_per_task={params.get('cpus_per_task')!r} with mem_gb={params.get('mem_gb')!r} "
            f"is refused by sbatch ({words}): nodes of partition {part} have {nodes or 'unknown resources'}; "
            "ask for less"
        )
    for key in ("account", "qos", "constraint"):
        if re.search(rf"\b{key}\b", low):  # "qos", not the "account" of "accounting"
            return (
                f"hydra.launcher.{key}={params.get(key)!r} is refused by sbatch ({words}): "
                f"ask your cluster's admins which {key} to use"
            )
    if "time limit" in low:
        limits = ", ".join(_sinfo("%l", part))
        return (
            f"hydra.launcher.timeout_min={params.get('timeout_min')!r} is refused by sbatch ({words}): "
            f"partition {part} allows at most {limits}"
        )
    return f"sbatch refused the jobs of hydra/launcher (partition {part}): {words}; check the hydra.launcher.* settings"


def require() -> None:
    """Raise ConfigError (one line) where SLURM's commands are missing (submitit needs sbatch and srun)."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise ConfigError(
            f"hydra/launcher=slurm needs SLURM's {' and '.join(missing)} on PATH (a cluster's login node); "
            "on one machine use hydra/launcher=basic, joblib or submitit_local"
        )


def check(script: str, params: dict) -> None:
    """Raise ConfigError (one line) when `sbatch --test-only` refuses `script`."""
    proc = subprocess.run(["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(refusal(proc.stderr or proc.stdout, params))
