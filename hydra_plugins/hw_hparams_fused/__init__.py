"""hw_hparams' Hydra launcher plugin `hydra/launcher=fused` (see fused_launcher.py)."""
