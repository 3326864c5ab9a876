"""hw_hparams' Hydra sweeper plugin `hydra/sweeper=stage` (see stage_sweeper.py)."""
