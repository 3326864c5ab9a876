"""SLURM through hydra-submitit-launcher (`hydra/launcher=slurm`, `slurm_cpu`).

The launcher itself is hydra_plugins/hw_hparams_slurm/slurm_launcher.py (Hydra's plugin namespace);
these modules hold what it and the runs need:
- `sbatch`: `sbatch --test-only` before anything is submitted, and a refusal worded by the key at fault.
- `watch`: job states from squeue where sacct has no accounting; submitit's sacct warnings in one line.
- `requeue`: inside a job, submitit's requeue signal, and the SLURM job id and attempt of this process.
"""


def register_launcher() -> None:
    """Tell Hydra about hydra/launcher=slurm's class. Hydra finds plugins by listing the `hydra_plugins`
    folders, which an editable install (`pip install -e .`) hides; registering twice is harmless."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.hw_hparams_slurm.slurm_launcher import SlurmLauncher

    Plugins.instance().register(SlurmLauncher)
