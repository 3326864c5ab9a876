"""The CUDA device as the fast path uses it, in one place: the memory a part of a group takes, the
current stream, releasing compiled graphs and cached blocks, and whether the process may go on
training after a failure.

A failed CUDA-graph capture can leave the process in a state torch itself does not repair (torch
2.11, and in part later: `torch.cuda.graph.__exit__` calls `capture_end()` before it restores the
current stream; `capture_end()` raising skips telling the caching allocator that the capture ended,
so the next `empty_cache()` fails an internal assert; the failed capture's memory pool is never
released). `Gpu.recover` restores the stream, ends the allocator's capture where it is still under
way, drops the compiled graphs and their pools, and then checks that the device works: a state it
cannot show sound raises `DeviceUnusable`, as does a CUDA error after which the device no longer
works (`check_usable`): the job ends in one line with exit status EXIT_RESUME, every run resumable
from its last checkpoint in a fresh process.

`out_of_memory(err)` looks through the whole exception chain (an out-of-memory during a capture can
surface as the context of the capture's own error). `for_device(device)` is None on the CPU; the CPU
tests replace it with a fake device that fails where CUDA would.
"""

from __future__ import annotations

import gc
import logging
from typing import Any, Optional

import torch

from hw_hparams.engine.compile_guard import one_line, reset_dynamo

log = logging.getLogger(__name__)

EXIT_RESUME = 75  # EX_TEMPFAIL: this process cannot go on; the same command resumes every run in a fresh one


class DeviceUnusable(RuntimeError):
    """This process cannot train on its GPU any more (one line): an unrecoverable device error, or a failed
    capture whose aftermath could not be shown sound. Every run is resumable from its last checkpoint."""


def causes(err: BaseException) -> list[BaseException]:
    """`err` and the exceptions it was raised from or while handling (__cause__, __context__), in order."""
    chain: list[BaseException] = []
    while err is not None and all(err is not e for e in chain):
        chain.append(err)
        err = err.__cause__ or err.__context__
    return chain


def out_of_memory(err: BaseException) -> Optional[BaseException]:
    """The CUDA out-of-memory anywhere in `err`'s chain, or None (always None once the device is unusable)."""
    if isinstance(err, DeviceUnusable):
        return None
    return next((e for e in causes(err) if isinstance(e, torch.cuda.OutOfMemoryError)), None)


def device_error(err: BaseException) -> Optional[BaseException]:
    """The CUDA error in `err`'s chain: a torch.AcceleratorError, recognised by name (torch before 2.8 has no
    such class and raises a RuntimeError "CUDA error: ..."), or None."""
    for e in causes(err):
        if any(c.__name__ == "AcceleratorError" for c in type(e).__mro__) or str(e).startswith("CUDA error"):
            return e
    return None


def unusable(reason: str, eager: bool = False) -> DeviceUnusable:
    """The error that ends a job whose GPU this process cannot use any more; `eager`: its groups resume eagerly."""
    how = " with the eager step" if eager else ""
    return DeviceUnusable(
        f"the GPU cannot be used any more in this process ({reason}); every run is resumable: re-run the same "
        f"command to continue each from its last checkpoint in a fresh process{how}"
    )


class Gpu:
    """One CUDA device: what the fast path and the sizer ask of it (`for_device` makes one)."""

    def __init__(self, device: torch.device):
        self.device = device

    # --- memory (train/sizing.py, engine/capture.py) ---

    def start_peak(self) -> tuple[int, int]:
        """Synchronize and start measuring peaks; (allocated, reserved) bytes now."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device), torch.cuda.memory_reserved(self.device)

    def peak(self) -> tuple[int, int]:
        """(allocated, reserved) bytes at their peak since `start_peak`."""
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device), torch.cuda.max_memory_reserved(self.device)

    def reserved(self) -> int:
        """Bytes this process holds from the device (allocated, cached, CUDA-graph pools)."""
        return torch.cuda.memory_reserved(self.device)

    def free(self) -> int:
        """Bytes free on the whole device (other processes on the card included) plus this process's cached,
        unused blocks (`torch.cuda.mem_get_info` after returning them)."""
        torch.cuda.empty_cache()
        return torch.cuda.mem_get_info(self.device)[0]

    def release(self) -> None:
        """Drop every compiled graph (Dynamo's caches, the CUDA-graph trees and their memory pools) and cached block."""
        reset_dynamo()
        gc.collect()
        torch.cuda.empty_cache()

    # --- after a failure ---

    def stream(self) -> Any:
        return torch.cuda.current_stream(self.device)

    def recover(self, stream: Any) -> Optional[str]:
        """After a failed capture (or a compiled step that raised): make `stream` current again, end the
        caching allocator's capture if it is still under way, drop the compiled graphs and their pools,
        and check that the device works. None when all of it holds, else why not (one line)."""
        try:
            if self.stream() != stream:  # capture_end() raised before torch.cuda.graph.__exit__ restored it
                torch.cuda.set_stream(stream)
            ended = self._end_allocator_capture()
            self.release()  # raises (captures_underway INTERNAL ASSERT) while the allocator believes a capture runs
            self._release_failed_pool(ended)
            torch.cuda.synchronize(self.device)
            if torch.cuda.is_current_stream_capturing():
                return "the current stream is still capturing"
            if self.stream() != stream:
                return "the current stream could not be restored"
        except Exception as err:  # noqa: BLE001 - whatever fails here means the state is not sound
            return one_line(err)
        return None if self.works() else "a test computation on the device failed"

    def works(self) -> bool:
        """Whether the device still runs a computation (False after a sticky CUDA error)."""
        try:
            torch.cuda.synchronize(self.device)
            return (torch.ones(2, device=self.device) + 1).sum().item() == 4.0
        except Exception:  # noqa: BLE001
            return False

    def _graph_pool(self) -> Optional[tuple[int, int]]:
        """The memory pool of Inductor's CUDA-graph trees on this device (None: no tree, or torch has moved it)."""
        try:
            from torch._inductor import cudagraph_trees

            container = cudagraph_trees.get_container(self.device.index)
            manager = container.tree_manager
            return None if manager is None else tuple(manager.cuda_graphs_thread_pool)
        except Exception:  # noqa: BLE001 - internal API: without it, release() shows whether the state is sound
            return None

    def _end_allocator_capture(self) -> Optional[tuple[int, int]]:
        """Tell the caching allocator that the failed capture into the graph trees' pool ended, where
        capture_end() raised before it could (torch < #180395); the pool, or None when no capture was under way."""
        pool = self._graph_pool()
        end = getattr(torch._C, "_cuda_endAllocateToPool", None)
        if pool is None or end is None:
            return None
        try:
            end(self.device.index, pool)
        except RuntimeError:  # "not currently recording to mempool_id": torch ended it
            return None
        log.warning("the failed CUDA-graph capture had left the memory allocator capturing; ended it")
        return pool

    def _release_failed_pool(self, pool: Optional[tuple[int, int]]) -> None:
        """Give back the failed capture's hold on its memory pool, which torch keeps when capture_end() raised
        (its graph never released it, #190348); only for a capture this module ended, so never twice."""
        release = getattr(torch._C, "_cuda_releasePool", None)
        if pool is None or release is None:
            return
        held = [s for s in torch.cuda.memory_snapshot() if tuple(s.get("segment_pool_id", ())) == pool]
        if held:  # every graph was dropped by release(): what the pool still holds is the failed capture's
            release(self.device.index, pool)
            torch.cuda.empty_cache()


def for_device(device: torch.device) -> Optional[Gpu]:
    """The CUDA device `device` as a Gpu, None for the CPU."""
    return Gpu(device) if device.type == "cuda" else None


def release(device: torch.device) -> None:
    """Drop every compiled graph and, on CUDA, the graphs' memory pools and cached blocks (Gpu.release)."""
    card = for_device(device)
    if card is not None:
        card.release()
    else:
        reset_dynamo()
        gc.collect()


def check_usable(err: BaseException, device: torch.device) -> None:
    """Raise DeviceUnusable (from `err`) when `err` is a CUDA error after which `device` no longer works."""
    card = for_device(device)
    if isinstance(err, DeviceUnusable) or card is None:
        return
    if device_error(err) is not None and not card.works():
        raise unusable(one_line(device_error(err))) from err
