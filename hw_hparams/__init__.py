"""hw_hparams: the MobileNetV2 / CIFAR-100 hyperparameter study as Hydra sweeps."""

__version__ = "0.1.0"
