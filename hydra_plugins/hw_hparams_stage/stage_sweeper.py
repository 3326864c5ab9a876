"""`hydra/sweeper=stage`: one sweep of listed jobs, which may belong to different experiments.

`hydra.sweeper.jobs` lists each job's own overrides (e.g. `[[experiment=wd_sweep,optim.weight_decay=1e-4],
[experiment=mixup,augmentation=mixup]]`); every job also gets the command line's overrides, expanded
as Hydra's basic sweeper expands them (`seed=0,1`: each listed job once per seed). So the runs of
several sections of the study are one sweep, which any launcher runs as it runs any sweep: the
fused launcher trains the runs that share a network shape as one network, joblib and submitit as
jobs at once. Job folders come from each job's own config (hw_hparams.homework sets
`hydra.sweep.subdir=${experiment_name}/${hw_run_name:}`). Everything else is Hydra's basic sweeper.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore


@dataclass
class StageSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.hw_hparams_stage.stage_sweeper.StageSweeper"
    jobs: list[list[str]] = field(default_factory=list)  # each job's own overrides


ConfigStore.instance().store(group="hydra/sweeper", name="stage", node=StageSweeperConf, provider="hw_hparams")


class StageSweeper(BasicSweeper):
    def __init__(
        self, max_batch_size: Optional[int] = None, params: Optional[Any] = None, jobs: Optional[list[list[str]]] = None
    ) -> None:
        super().__init__(max_batch_size, params)
        self.jobs = [[str(o) for o in job] for job in jobs or []]

    def split_arguments(self, overrides: list[Any], max_batch_size: Optional[int]) -> list[list[list[str]]]:
        """The listed jobs under the command line's expansion, cut into batches as the basic sweeper cuts them."""
        from hw_hparams.config.naming import stage_jobs  # the one rule, also for the preflight's job list (cli.py)

        expanded = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        return list(self.split_overrides_to_chunks(stage_jobs(expanded, self.jobs), max_batch_size))
