"""The one packaging fact pyproject.toml cannot state: find the packages AND ship conf/ (at the top of
the repository, where a reader looks for it) as the package hw_hparams.conf, where Hydra finds it
(`pkg://hw_hparams.conf`) from any working folder, installed or from a checkout. Everything else is in
pyproject.toml."""

from setuptools import find_namespace_packages, setup

setup(
    # hydra_plugins is a namespace package: Hydra scans it for our launchers and sweepers
    packages=[*find_namespace_packages(include=["hw_hparams*", "analysis*", "hydra_plugins*"]), "hw_hparams.conf"],
    package_dir={"hw_hparams.conf": "conf"},
)
