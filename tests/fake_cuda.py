"""A CUDA device faked on the CPU, for the GPU failure paths of hw_hparams/engine/gpu.py.

`FakeCuda().install(monkeypatch)` makes `gpu.for_device` return a real `gpu.Gpu` for the CPU device and
replaces the torch.cuda calls a Gpu makes with ones that keep the state a failed capture leaves behind
in torch 2.11 and fail as CUDA does there:
- `stream`: the current stream ("default"; "side" once a capture's capture_end() raised before
  torch.cuda.graph.__exit__ restored it);
- `allocator_capturing`: the caching allocator still believes a capture is under way (capture_end()
  raised before telling it, pytorch #180395): `empty_cache()` then fails its internal assert;
  `can_end_capture=False` is a torch without the private call that ends it;
- `pool_held`: the failed capture's memory pool, never released (#190348);
- `sticky`: an error every synchronisation raises from then on (a CUDA error that leaves the device unusable);
- memory in bytes: `free` (device-wide), `reserved` and `allocated` now, and what the next peak reads
  (`peak_per_part`: part size -> (allocated, reserved) bytes above the start).
`fail_capture()` puts it in the state a capture whose end raised leaves.
"""

from __future__ import annotations

import torch

from hw_hparams.engine import gpu

GIB = 2**30
POOL = (0, 7)  # the graph trees' memory pool id


class FakeCuda:
    def __init__(self, free: int = 10 * GIB):
        self.stream, self.allocator_capturing, self.pool_held = "default", False, False
        self.can_end_capture, self.sticky = True, None
        self.free, self.reserved, self.allocated = free, 0, 0
        self.peak_per_part: dict[int, tuple[int, int]] = {}
        self.part, self._start = 0, (0, 0)
        self.calls: list[str] = []  # the repairs made, in order

    def install(self, monkeypatch) -> FakeCuda:
        monkeypatch.setattr(gpu, "for_device", lambda device: gpu.Gpu(device))
        for name, fn in {
            "synchronize": self.synchronize,
            "empty_cache": self.empty_cache,
            "current_stream": lambda device=None: self.stream,
            "set_stream": self.set_stream,
            "is_current_stream_capturing": lambda: False,
            "reset_peak_memory_stats": self.reset_peak,
            "memory_allocated": lambda device=None: self.allocated,
            "memory_reserved": lambda device=None: self.reserved,
            "max_memory_allocated": lambda device=None: self._start[0] + self.peak_per_part.get(self.part, (0, 0))[0],
            "max_memory_reserved": lambda device=None: self._start[1] + self.peak_per_part.get(self.part, (0, 0))[1],
            "mem_get_info": lambda device=None: (self.free, 80 * GIB),
            "memory_snapshot": lambda: [{"segment_pool_id": POOL}] if self.pool_held else [],
        }.items():
            monkeypatch.setattr(torch.cuda, name, fn)
        monkeypatch.setattr(gpu.Gpu, "_graph_pool", lambda card: POOL if self.allocator_capturing else None)
        monkeypatch.setattr(torch._C, "_cuda_endAllocateToPool", self.end_allocate, raising=False)
        monkeypatch.setattr(torch._C, "_cuda_releasePool", self.release_pool, raising=False)
        return self

    def fail_capture(self) -> None:
        self.stream, self.allocator_capturing, self.pool_held = "side", True, True

    def synchronize(self, device=None) -> None:
        if self.sticky is not None:
            raise self.sticky

    def empty_cache(self) -> None:
        self.synchronize()
        if self.allocator_capturing:
            raise RuntimeError("captures_underway.empty() INTERNAL ASSERT FAILED at CUDACachingAllocator.cpp")
        self.calls.append("empty_cache")

    def set_stream(self, stream) -> None:
        self.stream = stream
        self.calls.append(f"set_stream {stream}")

    def reset_peak(self, device=None) -> None:
        self._start = (self.allocated, self.reserved)

    def end_allocate(self, device, pool) -> None:
        if not (self.can_end_capture and self.allocator_capturing and tuple(pool) == POOL):
            raise RuntimeError("endAllocatePool: not currently recording to mempool_id")
        self.allocator_capturing = False
        self.calls.append("end_allocate")

    def release_pool(self, device, pool) -> None:
        assert self.pool_held and tuple(pool) == POOL, "a pool released twice"
        self.pool_held = False
        self.calls.append("release_pool")
