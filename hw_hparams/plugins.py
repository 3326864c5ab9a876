"""Our Hydra plugins (launchers, the search sweeper hydra/sweeper=search and the stage sweeper
hydra/sweeper=stage), registered with Hydra by name as well as found by its scan.

Hydra 1.3 finds plugins by listing the folders of the `hydra_plugins` namespace package; an
editable install in setuptools' default mode hides ours from that listing (the README's install
uses editable_mode=strict, which does not). Registering them here, with Hydra's public
`Plugins.register`, makes `hydra/launcher=fused`, `hydra/launcher=slurm`, `hydra/sweeper=search` and
`hydra/sweeper=stage` work in our own commands however the project was installed; importing them registers
their configs (ConfigStore) too.
Registering twice is harmless. The entry points (train/__main__.py, homework.py) call it; nothing
imports this module at import time, so hydra_plugins (which import hw_hparams) never import back.
"""


def register_plugins() -> None:
    from hydra.core.plugins import Plugins

    from hydra_plugins.hw_hparams_fused.fused_launcher import FusedLauncher
    from hydra_plugins.hw_hparams_search.search_sweeper import SearchSweeper  # imports no Optuna
    from hydra_plugins.hw_hparams_slurm.slurm_launcher import SlurmLauncher
    from hydra_plugins.hw_hparams_stage.stage_sweeper import StageSweeper

    for plugin in (FusedLauncher, SlurmLauncher, SearchSweeper, StageSweeper):
        Plugins.instance().register(plugin)
