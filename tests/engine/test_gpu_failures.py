"""When the fast path fails on a GPU (engine/gpu.py, engine/group.py), checked on the CPU by faking the
device where CUDA would fail (tests/fake_cuda.py): a failed capture repaired or ending the job, out of
memory found anywhere in the exception chain, an unusable device never taken for a compiler failure,
Dynamo's caches dropped before an eager retry, the optimizer graph's size independent of k, and the
warning for an NVIDIA GPU that torch cannot use.
"""

from __future__ import annotations

import logging

import pytest
import tiny_group
import torch
from fake_cuda import FakeCuda

import hw_hparams.engine.group as fastpath
from hw_hparams.engine import device as device_module
from hw_hparams.engine import gpu
from hw_hparams.engine.compile_guard import CompiledStepError

CPU = tiny_group.CPU
_data, _train = tiny_group.data, tiny_group.train


def _group(compile_: str, k: int = 2, **overrides) -> fastpath.Group:
    return tiny_group.group(compile_, k, mixup_alpha=0.2, **overrides)


def _failing_backend(monkeypatch, fail):
    """aot_eager whose forward graph calls `fail()` while `armed` holds anything (where a capture would fail)."""
    from torch._dynamo.backends.registry import lookup_backend

    armed, inner = [], lookup_backend("aot_eager")

    def backend(gm, example_inputs):
        fn, optimizer = inner(gm, example_inputs), any("foreach" in str(n.target) for n in gm.graph.nodes)

        def run_graph(*args):
            if armed and not optimizer:
                fail()
            return fn(*args)

        run_graph._boxed_call = getattr(fn, "_boxed_call", False)
        return run_graph

    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    return armed


def _capture_end_raises(cuda):
    def fail():
        cuda.fail_capture()  # as torch 2.11 leaves it when capture_end() raises
        raise torch.AcceleratorError("CUDA error: operation not permitted when stream is capturing")

    return fail


def test_a_failed_capture_is_repaired_then_the_group_trains_eagerly_exactly_and_the_next_group_compiles(
    monkeypatch, caplog
):
    cuda = FakeCuda().install(monkeypatch)
    armed = _failing_backend(monkeypatch, _capture_end_raises(cuda))
    train, val = _data()
    armed.append(True)
    group = _group("auto", compile=True)
    with caplog.at_level(logging.WARNING):
        fastpath.prepare(group, train, val)
    assert cuda.stream == "default" and not cuda.allocator_capturing and not cuda.pool_held
    assert cuda.calls[:4] == ["set_stream default", "end_allocate", "empty_cache", "release_pool"], cuda.calls
    record = group.record.as_dict()
    assert group.fast_step is None and not record["compiled"] and "could not compile" in record["fallback"]
    assert "operation not permitted" in record["fallback"]
    assert _train(group, train, val) == _train(_group("false"), train, val)  # eager from a clean state, exactly
    armed.clear()
    later = _group("auto", compile=True)  # a later group of the same process: compiled as if nothing happened
    fastpath.prepare(later, train, val)
    assert later.fast_step is not None and later.record.compiled and later.record.fallback is None
    assert _train(later, train, val) == _train(_group("false"), train, val)


@pytest.mark.parametrize("compile_", ["auto", "true"])
def test_a_failed_capture_whose_aftermath_cannot_be_repaired_ends_the_job_in_one_line(monkeypatch, compile_):
    cuda = FakeCuda().install(monkeypatch)
    cuda.can_end_capture = False  # a torch without the call that ends the allocator's capture
    armed = _failing_backend(monkeypatch, _capture_end_raises(cuda))
    train, val = _data()
    armed.append(True)
    group = _group(compile_, compile=True)
    with pytest.raises(gpu.DeviceUnusable) as err:
        fastpath.prepare(group, train, val)
    line = str(err.value)
    assert "\n" not in line and "INTERNAL ASSERT" in line and "re-run the same command" in line
    assert ("with the eager step" in line) == (compile_ == "auto")
    assert not group.record.compiled
    if compile_ == "auto":  # the runs' summaries say so: the next process trains them eagerly
        assert "train on eagerly in a fresh process" in group.record.fallback
    else:
        assert group.record.fallback is None


def test_a_sticky_device_error_in_a_compiled_step_ends_the_job_and_is_never_a_fallback(monkeypatch, caplog):
    cuda = FakeCuda().install(monkeypatch)
    sticky = torch.AcceleratorError("CUDA error: an illegal memory access was encountered")

    def fail():
        cuda.sticky = sticky
        raise sticky

    armed = _failing_backend(monkeypatch, fail)
    train, val = _data()
    armed.append(True)
    group = _group("auto", compile=True)
    with caplog.at_level(logging.WARNING), pytest.raises(gpu.DeviceUnusable) as err:
        fastpath.prepare(group, train, val)
    assert "illegal memory access" in str(err.value) and "eager" not in str(err.value)
    assert not any("eagerly" in r.getMessage() for r in caplog.records), "fell back to a step that must fail too"
    assert group.record.fallback is None  # a device error is no reason to train the runs eagerly afterwards


def test_out_of_memory_anywhere_in_the_chain_is_out_of_memory_and_never_a_compiler_failure(monkeypatch):
    cuda = FakeCuda().install(monkeypatch)

    def fail():  # capture_end() raising while an out-of-memory unwinds the capture
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except torch.cuda.OutOfMemoryError:
            cuda.fail_capture()
            raise RuntimeError("CUDA error: operation failed due to a previous error during capture") from None

    armed = _failing_backend(monkeypatch, fail)
    train, val = _data()
    armed.append(True)
    group = _group("true", compile=True)  # were it taken for a compiler failure: a CompiledStepError
    with pytest.raises(RuntimeError) as err:
        fastpath.prepare(group, train, val)
    assert not isinstance(err.value, CompiledStepError) and gpu.out_of_memory(err.value)
    assert cuda.stream == "default" and not cuda.allocator_capturing  # repaired before it goes to the sizer
    assert not gpu.out_of_memory(RuntimeError("CUDA error: an illegal memory access was encountered"))
    chained = RuntimeError("outer")
    chained.__cause__ = ValueError("middle")
    chained.__cause__.__context__ = torch.cuda.OutOfMemoryError("deep")
    assert gpu.out_of_memory(chained) and not gpu.out_of_memory(gpu.DeviceUnusable("x"))


def test_dynamo_caches_are_dropped_before_the_eager_retry(monkeypatch):
    def fail():
        raise RuntimeError("simulated failure inside a compiled step")

    armed = _failing_backend(monkeypatch, fail)
    train, val = _data()
    group = _group("auto", compile=True)
    fastpath.prepare(group, train, val)
    events, real_reset, real_step = [], torch._dynamo.reset, group.eager_step
    monkeypatch.setattr(torch._dynamo, "reset", lambda: (events.append("reset"), real_reset())[1])

    def eager_step(*args):
        events.append("eager step")
        return real_step(*args)

    group.eager_step = eager_step
    armed.append(True)
    fastpath.train_epoch(group, train)
    assert group.fast_step is None and events[0] == "reset" and "eager step" in events, events


@pytest.mark.inductor
def test_the_compiled_optimizer_graph_does_not_grow_with_k():
    from torch._inductor import metrics
    from torch._inductor.compile_fx import compile_fx

    sizes = {}
    for k in (2, 8):
        group = _group("false", k)
        for p in group.model.parameters():
            p.grad = torch.randn_like(p)
        nodes = []

        def counting(gm, example_inputs, nodes=nodes):
            nodes.append(sum(n.op == "call_function" for n in gm.graph.nodes))
            return compile_fx(gm, example_inputs)

        torch._dynamo.reset()
        metrics.reset()
        args = group.optimizer.update_args()
        expected = [t.clone() for t in args[0]]
        fastpath.sgd_update(expected, args[1], [b.clone() for b in args[2]], *args[3:])
        torch.compile(fastpath._update_no_grad, backend=counting, dynamic=False)(*args)
        sizes[k] = (nodes, metrics.generated_kernel_count)
        for got, want in zip(args[0], expected):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    print("optimizer graph (call_function FX nodes per graph, Inductor kernels):", sizes)
    assert sizes[2] == sizes[8] and len(sizes[2][0]) == 1, sizes


@pytest.mark.parametrize(
    "cuda_build, init_error, reason",
    [
        (None, None, "this torch build has no CUDA"),
        (
            "13.0",
            "The NVIDIA driver on your system is too old (found version 12020)",
            "driver on your system is too old",
        ),
    ],
)
def test_device_auto_says_once_why_an_nvidia_gpu_is_not_used(
    monkeypatch, tmp_path, caplog, cuda_build, init_error, reason
):
    version = tmp_path / "version"
    version.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build\n")
    monkeypatch.setattr(device_module, "NVIDIA_DRIVER", version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda_build)

    def init():
        raise RuntimeError(init_error)

    monkeypatch.setattr(torch.cuda, "init", init)
    device_module._warn_if_gpu_unusable.cache_clear()
    with caplog.at_level(logging.WARNING, logger="hw_hparams"):
        for _ in range(3):  # a sweep picks the device once per job: said once
            assert device_module.pick_device("auto") == CPU
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "driver 550.54.15" in line and reason in line and "trainer.device=cpu" in line


def test_device_auto_on_a_machine_without_an_nvidia_gpu_says_nothing(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(device_module, "NVIDIA_DRIVER", tmp_path / "absent")
    monkeypatch.setattr(device_module, "NVIDIA_DEVICE", tmp_path / "absent0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device_module._warn_if_gpu_unusable.cache_clear()
    with caplog.at_level(logging.WARNING, logger="hw_hparams"):
        assert device_module.pick_device("auto") == CPU
    assert not caplog.records
