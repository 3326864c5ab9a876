"""`hydra/launcher=slurm`: hydra-submitit-launcher's SlurmLauncher, with the answers a cluster user needs in one line.

It lives in `hydra_plugins` because Hydra instantiates launchers from there only; Hydra imports it
whenever it scans for plugins, so hw_hparams and submitit are imported inside the methods.

- Before anything is written (Hydra's `setup`), `sbatch --test-only` checks the job script submitit
  will submit; a refusal (no GPU in the partition, a wrong partition, too much memory) exits 2 with
  one line naming the `hydra.launcher` key (hw_hparams/slurm/sbatch.py). A refusal only the real
  submission sees ends the same way.
- While the sweep waits, job states come from squeue where sacct has no accounting, and submitit's
  repeated sacct warnings show once (hw_hparams/slurm/watch.py).
- A job that ends without a result (scancel, a node failure, a job that ran out of requeues) does
  not stop the wait for the others; the sweep then fails naming the first one, its run folder's
  status and message, in one line (exit 1), like a crashed job under the basic launcher.
- Inside a job, a run stopped by a signal exits 128 + the signal number without a traceback; the run
  said why in its log and summary.json (`interrupted`, or `requeued`: hw_hparams/slurm/requeue.py).

The plugin's `launch` is rebuilt here (same executor, same job arguments, so its `checkpoint()`
requeue still resubmits the same job) because it stops at the first job without a result.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

log = logging.getLogger("hw_hparams.slurm")


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """The plugin's SlurmLauncher (same settings, same requeue), see the module docstring."""

    def setup(self, **kwargs: Any) -> None:
        from hw_hparams.config.errors import ConfigError, fail
        from hw_hparams.slurm import sbatch

        super().setup(**kwargs)
        try:
            sbatch.require()  # before submitit's executor, which fails without srun
            sbatch.check(self.executor()._executor._make_submission_file_text("true", "check"), self.params)
        except ConfigError as err:
            fail(str(err))

    def executor(self):
        """The submitit executor the plugin builds from `hydra.launcher` (see its `launch`)."""
        import submitit

        params = dict(self.params)
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=params.pop("submitit_folder"), slurm_max_num_timeout=params.pop("max_num_timeout")
        )
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        from hw_hparams.config.errors import fail
        from hw_hparams.slurm import sbatch
        from hw_hparams.slurm.watch import fold_sacct_warnings, watch_without_accounting

        fold_sacct_warnings()
        watch_without_accounting()
        executor = self.executor()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info("Submitit 'slurm' sweep output dir : %s", sweep_dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        args = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        said = io.StringIO()  # submitit prints sbatch's stderr when it fails: our one line says it instead
        try:
            with sbatch.SUBMITTING, contextlib.redirect_stderr(said):
                jobs = executor.map_array(self, *zip(*args))
        except FailedJobError as err:  # sbatch said no to what --test-only let through
            fail(sbatch.refusal(str(err), self.params))
        sys.stderr.write(said.getvalue())
        return [self._result(job, overrides) for job, overrides in zip(jobs, job_overrides)]

    def _result(self, job, overrides: Sequence[str]) -> JobReturn:
        """The job's JobReturn; one that ended without a result becomes a failed job, said in one line."""
        from submitit.core.utils import UncompletedJobError

        from hw_hparams.train.job import JobFailed

        try:
            return job.results()[0]
        except UncompletedJobError:
            line = f"SLURM job {job.job_id} ended without a result ({job.state}): {self._what_happened(job, overrides)}"
            log.error(line)
            return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=JobFailed(line))

    def _what_happened(self, job, overrides: Sequence[str]) -> str:
        """What its run folder's summary.json says, else the last line of its log."""
        from hw_hparams.runs.folder import read_summary

        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            s = read_summary(run_dir, warn=False)
            return f"{run_dir} is {s['status']}: {s['message'] or 'no message'}"
        except Exception:  # noqa: BLE001 - no run started: the job's own log says why
            lines = [line for line in (job.stderr() or "").splitlines() if line.strip()]
            return f"{lines[-1].strip()[:300] if lines else 'no log'} (log: {job.paths.stderr})"

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Inside the job: run it; a run stopped by a signal exits 128 + its number, without a traceback."""
        from hw_hparams.train.job import exit_interrupted

        try:
            return super().__call__(*args, **kwargs)
        except KeyboardInterrupt as err:
            exit_interrupted(err)
