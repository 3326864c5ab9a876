"""`python -m hw_hparams.train [overrides]` (`hw-train`): train one setting of the study into its run folder.

The command line is checked whole first (preflight.py: one line and exit 2 per mistake, before
anything is written); then Hydra composes each job from conf/ and runs it as a TrainJob
(lifecycle.py): run folder -> data -> model -> optimizer and schedule -> epoch loop (loop.py) ->
history.csv / summary.json / checkpoint after every epoch.
"""

from __future__ import annotations

import sys

import hydra

from hw_hparams.config.naming import CONFIG_DIR, CONFIG_NAME
from hw_hparams.plugins import register_plugins
from hw_hparams.train.job import exit_interrupted
from hw_hparams.train.lifecycle import TrainJob
from hw_hparams.train.preflight import normalize_argv, preflight

_hydra_main = hydra.main(config_path=str(CONFIG_DIR), config_name=CONFIG_NAME, version_base="1.3")(TrainJob())


def main() -> None:
    """Console entry: check the command line in one line per error, then hand it to Hydra."""
    sys.argv[1:] = normalize_argv(sys.argv[1:])
    register_plugins()  # hydra/launcher=fused, =slurm and the sweepers by name, however the project was installed
    preflight(sys.argv[1:])
    try:
        _hydra_main()
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: one line, exit 130 / 143
        exit_interrupted(err)


if __name__ == "__main__":
    main()
