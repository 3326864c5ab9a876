"""Fault injection for a training process: at the k-th call of one place, die, get a signal, or crash.

A fault is "SITE:K:ACTION" or "SITE:K:ACTION:FILTER" (environment variable HW_FAULT, or `install`):

- SITE `step`: optimizer steps (inside an epoch's training); `eval`: forward calls of modules in
  eval mode (validation); `write`: `os.fsync` of a file being written atomically (checkpoint,
  history, summary), fully written but not yet renamed; `partial`: the same after truncating the
  file to half (a half-written file); `rename`: `os.replace` (publishing a written file, or
  rotating checkpoint.pt to checkpoint.prev.pt).
- ACTION `kill` (SIGKILL), `term` (SIGTERM), `int` (SIGINT), `raise` (RuntimeError("injected fault")),
  `enospc` (OSError: no space left on device, for the file being written), `gpu` (the DeviceUnusable that
  hw_hparams/engine/gpu.py raises after a CUDA error that left the GPU unusable).
- FILTER: for `step`, count only steps at this learning rate (to make one job of a sweep fail;
  a fused group's step counts when any of its runs has it);
  for `write`, `partial` and `rename`, count only files whose path contains it (e.g. checkpoint).

The hooks are global (torch's optimizer-step and module-forward hooks, `os.fsync`, `os.replace`),
so they do not depend on how the training code is organised. `counts()` gives the calls per site
of a run (and per site on checkpoint files, as `write:checkpoint`, `rename:checkpoint`), to size
kill points. As a script: `python tests/fault_inject.py OVERRIDES...` is
`python -m hw_hparams.train OVERRIDES...` with HW_FAULT applied (and, with HW_FAULT_COUNTS=FILE,
the per-site counts written to FILE at exit).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

_counts = {"step": 0, "eval": 0, "write": 0, "rename": 0, "write:checkpoint": 0, "rename:checkpoint": 0}
_ACTIONS = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}


def counts() -> dict[str, int]:
    return dict(_counts)


def _fire(action: str, path: str | None = None) -> None:
    if action == "raise":
        raise RuntimeError("injected fault")
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    if action == "gpu":
        from hw_hparams.engine.gpu import unusable

        raise unusable("CUDA error: an illegal memory access was encountered (injected)")
    os.kill(os.getpid(), _ACTIONS[action])


def install(spec: str | None) -> None:
    """Install the counting hooks, and the fault `spec` (None: count only)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    site, k, action, only = (spec.split(":") + [None])[:4] if spec else (None, 0, None, None)
    k, site = int(k), site and site.replace("partial", "write")
    calls: dict[str, int] = {}  # site -> calls that pass the filter
    if action is not None and action not in _ACTIONS and action not in ("raise", "enospc", "gpu"):
        raise ValueError(f"unknown action in {spec!r}")

    def hit(name: str, path: str = "") -> bool:
        _counts[name] += 1
        if "checkpoint" in path:
            _counts[f"{name}:checkpoint"] += 1
        if name != site or (only is not None and name != "step" and only not in path):
            return False
        calls[name] = calls.get(name, 0) + 1
        return calls[name] == k

    def on_step(optimizer, args, kwargs):
        lrs = torch.as_tensor(optimizer.param_groups[0]["lr"]).flatten().tolist()  # a float, or one per fused run
        if (
            site == "step"
            and only is not None
            and not any(abs(lr - float(only)) <= 1e-6 * abs(float(only)) for lr in lrs)
        ):
            return
        if hit("step"):
            _fire(action)

    def on_forward(module, args):
        if not module.training and hit("eval"):
            _fire(action)

    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if hit("write", path):
            if spec.startswith("partial"):
                os.ftruncate(fd, os.fstat(fd).st_size // 2)
            _fire(action, path)
        return real_fsync(fd)

    def replace(src, dst, *a, **kw):
        if hit("rename", str(dst)):
            _fire(action)
        return real_replace(src, dst, *a, **kw)

    register_optimizer_step_post_hook(on_step)
    torch.nn.modules.module.register_module_forward_pre_hook(on_forward)
    os.fsync, os.replace = fsync, replace


def main(argv: list[str]) -> int:
    """Run the training CLI with `argv` under HW_FAULT; returns its exit status."""
    install(os.environ.get("HW_FAULT") or None)
    from hw_hparams.train.__main__ import main as train_main

    sys.argv = ["hw-train", *argv]
    code = 0
    try:
        train_main()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    finally:
        if os.environ.get("HW_FAULT_COUNTS"):
            with open(os.environ["HW_FAULT_COUNTS"], "w") as f:
                json.dump(counts(), f)
    return code


def run_cli(
    args: list[str], cwd, fault: str | None = None, timeout: float | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m hw_hparams.train args` (through this script, with `fault`) in `cwd`, output captured
    (`timeout` seconds at most, default support.PATIENCE_S; `env` added to the environment)."""
    from support import PATIENCE_S, finish, path_with_tests, start_cli

    timeout = PATIENCE_S if timeout is None else timeout
    env = {**(env or {}), "HW_FAULT": fault or "", "OMP_NUM_THREADS": "1", **path_with_tests()}
    what = f"`python tests/fault_inject.py {' '.join(args)}`"
    return finish(start_cli(args, cwd, "fault_inject", env), what, timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
