"""hw_hparams' Hydra plugins (Hydra instantiates plugins only from the `hydra_plugins` namespace)."""
