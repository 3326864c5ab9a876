"""`hydra/sweeper=stage`: one sweep of listed jobs, which may belong to different experiments.

`hydra.sweeper.jobs` lists each job's own overrides (e.g. `[[experiment=wd_sweep,optim.weight_decay=1e-4],
[experiment=mixup,augmentation=mixup]]`); every job also gets the command line's overrides (and
`hydra.sweeper.params`), expanded as Hydra's basic sweeper expands them (`seed=0,1`: each listed job
once per seed; hw_hparams.config.naming.expand). So the runs of several sections of the study are
one sweep, which any launcher runs as it runs any sweep: the fused launcher trains the runs that
share a network shape as one network, joblib and submitit as jobs at once. Job folders come from
each job's own config (the study sets `hydra.sweep.subdir=${experiment_name}/${hw_run_name:}`).
Built on Hydra's public Sweeper interface; batches of `max_batch_size` jobs (null: all at once), the
sweep's config saved as `multirun.yaml` in the sweep folder, as the basic sweeper does.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf


@dataclass
class StageSweeperConf:
    _target_: str = "hydra_plugins.hw_hparams_stage.stage_sweeper.StageSweeper"
    max_batch_size: Optional[int] = None  # jobs handed to the launcher at once (null: every job)
    params: Optional[dict[str, str]] = None  # swept keys for every job, as the basic sweeper's
    jobs: list[list[str]] = field(default_factory=list)  # each job's own overrides


ConfigStore.instance().store(group="hydra/sweeper", name="stage", node=StageSweeperConf, provider="hw_hparams")


class StageSweeper(Sweeper):
    def __init__(
        self,
        max_batch_size: Optional[int] = None,
        params: Optional[dict[str, str]] = None,
        jobs: Optional[list[list[str]]] = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.params = dict(params or {})
        self.jobs = [[str(o) for o in job] for job in jobs or []]

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from hw_hparams.config.naming import expand, stage_jobs  # the one rule, also for the preflight's job list

        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        jobs = stage_jobs(expand([*(f"{k}={v}" for k, v in self.params.items()), *arguments]), self.jobs)
        size = self.max_batch_size or len(jobs) or 1
        returns = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=start)
            for r in results:
                _ = r.return_value  # a failed job raises here, as under the basic sweeper
            returns.append(results)
        return returns
