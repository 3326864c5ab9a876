"""A Hydra callback that makes the first attempts of a SLURM job train slowly, so that they last a known time.

    python -m hw_hparams.train -m ... +hydra.callbacks.slow._target_=slow_steps.SlowSteps
        +hydra.callbacks.slow.seconds=1 +hydra.callbacks.slow.attempts=2

In attempts 1..`attempts` of the job (SLURM_RESTART_COUNT + 1), each optimizer step is followed by a sleep of
`seconds`: a run of n steps then needs at least n x `seconds` of wall-clock time, however fast the machine is,
at no CPU cost; later attempts train at full speed. A sleep changes no number of the run. The job imports this
module, so tests/ must be on the submitting command's PYTHONPATH (sbatch passes the environment on).
"""

from __future__ import annotations

import os
import time

from hydra.experimental.callback import Callback


class SlowSteps(Callback):
    def __init__(self, seconds: float, attempts: int) -> None:
        self.seconds, self.attempts = seconds, attempts

    def on_job_start(self, config, **kwargs) -> None:
        if int(os.environ.get("SLURM_RESTART_COUNT") or 0) + 1 > self.attempts:
            return
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(lambda optimizer, args, kwargs: time.sleep(self.seconds))
