"""hw_hparams' Hydra sweeper plugin `hydra/sweeper=search`: an Optuna search that continues its study
(see search_sweeper.py)."""
