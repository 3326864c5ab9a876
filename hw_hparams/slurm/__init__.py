"""SLURM through hydra-submitit-launcher (`hydra/launcher=slurm`, `slurm_cpu`).

The launcher itself is hydra_plugins/hw_hparams_slurm/slurm_launcher.py (Hydra's plugin namespace;
hw_hparams/plugins.py registers it);
these modules hold what it and the runs need:
- `sbatch`: `sbatch --test-only` before anything is submitted, and a refusal worded by the key at fault.
- `watch`: job states from squeue where sacct has no accounting; submitit's sacct warnings in one line.
- `requeue`: inside a job, submitit's requeue signal, and the SLURM job id and attempt of this process.
"""
