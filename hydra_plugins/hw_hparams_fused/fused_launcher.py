"""`hydra/launcher=fused`: the runs of a sweep that can share one network train as one, in this process.

For hw_hparams' training task (hw_hparams.train.lifecycle.TrainJob), the jobs are put
into groups that agree on every key hw_hparams.config.roles declares shared (model, epochs, batch size,
data, device, numerics), in sweep order, at most `max_fused` to a group (null: all), and each
group trains as one fused network (hw_hparams.train.loop), in parts that fit the GPU's memory
(hw_hparams.train.sizing). Under trainer.device=cuda:job a group trains on the GPU of its first job.
Every job keeps exactly the run folder, files, lock and status it would have under the basic
launcher. For any other task function it runs the jobs one by one as Hydra's basic launcher does
(same jobs, folders, returns), so installing it breaks no other app. Built on Hydra's public
Launcher interface.

Each job ends as under the basic launcher: a crash is a failed JobReturn whose error Hydra prints in
one line after the other jobs ran; a user error (bad data, a folder of another run) is one line, the
other groups still train, and the sweep exits 2 at the end; a GPU this process cannot use any more
(hw_hparams.engine.gpu.DeviceUnusable) stops the sweep in one line, exit 75, every run resumable.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where dataclasses cannot resolve string annotations.
import copy
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, open_dict, read_write

from hw_hparams.config.roles import fused_groups, max_fused_problem  # no torch: cheap for Hydra's plugin scan

log = logging.getLogger(__name__)


@dataclass
class FusedLauncherConf:
    _target_: str = "hydra_plugins.hw_hparams_fused.fused_launcher.FusedLauncher"
    max_fused: Optional[int] = None  # runs per fused network at most (null: every run that can share one)


ConfigStore.instance().store(group="hydra/launcher", name="fused", node=FusedLauncherConf, provider="hw_hparams")


class FusedLauncher(Launcher):
    def __init__(self, max_fused: Optional[int] = None) -> None:
        problem = max_fused_problem(max_fused)
        if problem:
            raise ValueError(problem)
        self.max_fused = max_fused

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        lifecycle = sys.modules.get("hw_hparams.train.lifecycle")  # imported where the task is ours
        if lifecycle is None or not isinstance(self.task_function, lifecycle.TrainJob):
            return self._one_by_one(job_overrides, initial_job_idx)  # another app: as Hydra's basic launcher
        from hw_hparams.engine.gpu import DeviceUnusable  # only for our own task function
        from hw_hparams.train.job import exit_device_unusable
        from hw_hparams.train.loop import Member

        jobs = [self._job(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        groups = fused_groups([cfg for cfg, _, _ in jobs], self.max_fused)
        log.info(
            f"Launching {len(jobs)} jobs as {len(groups)} fused group(s) of {', '.join(str(len(g)) for g in groups)}"
        )
        configure_log(jobs[0][1].hydra.job_logging, self.config.hydra.verbose)
        outcomes: list[Any] = [None] * len(jobs)
        for group in groups:
            HydraConfig.instance().set_config(jobs[group[0]][1])  # its first job's: trainer.device=cuda:job picks by it
            members = [Member(jobs[i][0], jobs[i][2], hydra_cfg=jobs[i][1].hydra) for i in group]
            try:
                for i, outcome in zip(group, lifecycle.TrainJob.run_group(members)):
                    outcomes[i] = outcome
            except DeviceUnusable as err:  # every later group of this process would fail the same way
                exit_device_unusable(err, f"the sweep in {self.config.hydra.sweep.dir}")
        returns = [self._return(list(o), *job, outcome) for o, job, outcome in zip(job_overrides, jobs, outcomes)]
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        self._exit_on_user_errors([o.error for o in outcomes])
        return returns

    def _one_by_one(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """Each job on its own, in turn, exactly as Hydra's basic launcher runs a sweep (for any other app)."""
        log.info(f"Launching {len(job_overrides)} jobs locally")
        returns = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            returns.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns

    def _job(self, idx: int, overrides: list[str]) -> tuple[DictConfig, DictConfig, Path]:
        """(task config, full config, run folder) of job `idx`, as run_job would set them up."""
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"job_id_for_{idx}"
            sweep_config.hydra.job.num = idx
        HydraConfig.instance().set_config(sweep_config)
        run_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
            sweep_config.hydra.runtime.output_dir = os.path.abspath(run_dir)
        task_cfg = copy.deepcopy(sweep_config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        return task_cfg, sweep_config, run_dir

    @staticmethod
    def _return(
        overrides: list[str], task_cfg: DictConfig, sweep_config: DictConfig, run_dir: Path, outcome: Any
    ) -> JobReturn:
        from hw_hparams.runs.objective import of_job
        from hw_hparams.runs.progress import final_line
        from hw_hparams.train.job import JobFailed, failure_line

        ret = JobReturn(
            overrides=overrides,
            cfg=task_cfg,
            hydra_cfg=sweep_config,
            working_dir=os.getcwd(),
            task_name=JobRuntime.instance().get("name"),
        )
        if outcome.error is not None:
            ret.status, ret.return_value = JobStatus.FAILED, JobFailed(failure_line(run_dir, outcome.error))
        else:
            log.info(final_line(run_dir, outcome.summary))
            ret.status, ret.return_value = (
                JobStatus.COMPLETED,
                of_job(task_cfg, run_dir, outcome.summary),
            )  # as TrainJob
        return ret

    @staticmethod
    def _exit_on_user_errors(errors: list[Any]) -> None:
        """Each refused job in one line, then exit 2 (as the basic launcher does at the first one)."""
        from hw_hparams.config.errors import ConfigError, say

        refused = [e for e in errors if isinstance(e, ConfigError)]
        for err in refused:
            say(str(err))
        if refused:
            sys.exit(2)
