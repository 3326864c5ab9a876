"""The CUDA fast path, checked on the CPU: no recompilation after capture, graph-safe optimizer state,
every group of a long sweep compiled, the precision rule, the self-check and its fallback, fused
groups that halve on out-of-memory, and resume across device types.

Tests marked `inductor` compile with the real Inductor backend (C++ code generation on the CPU,
~20-60 s each); the others use `aot_eager` (the same Dynamo graphs and guards, no code
generation). References are independent of the code under test: eager runs, runs alone, torch's
own GradScaler and SGD, a table written out here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_group
import torch
import torch.nn.functional as F
from run_compare import assert_same_run
from support import compose_train, read_rows, small_cfg, without_timing
from torch._dynamo.backends.registry import lookup_backend
from torch._dynamo.utils import counters

import hw_hparams.engine.group as fastpath
import hw_hparams.train.loop as training_module
import hw_hparams.train.sizing as fused_sizing
from hw_hparams.data import crop_flip
from hw_hparams.engine.compile_guard import TOLERANCE, CompiledStepError
from hw_hparams.engine.draws import RunRandom, init_weights, stack_plans
from hw_hparams.engine.models import build_model
from hw_hparams.engine.optim import LossScale
from hw_hparams.engine.precision import precision_for
from hw_hparams.runs import checkpoint
from hw_hparams.train.lifecycle import run, run_group
from hw_hparams.train.loop import Member

CPU, BATCH, N_TRAIN, NORM = tiny_group.CPU, tiny_group.BATCH, tiny_group.N_TRAIN, tiny_group.NORM
_data, _group, _train = tiny_group.data, tiny_group.group, tiny_group.train


class Backend:
    """aot_eager that remembers every graph it compiled (with a label the test sets) and counts its calls;
    `on_call(graph, args, outputs)` may inspect or change what a compiled graph returns."""

    def __init__(self, on_call=None, inner: str = "aot_eager"):
        self.inner, self.on_call, self.label, self.graphs = lookup_backend(inner), on_call, None, []

    def __call__(self, gm, example_inputs):
        graph = {"label": self.label, "calls": 0, "optimizer": any("foreach" in str(n.target) for n in gm.graph.nodes)}
        self.graphs.append(graph)
        fn = self.inner(gm, example_inputs)

        def run_graph(*args):
            graph["calls"] += 1
            out = fn(*args)
            return self.on_call(graph, args, out) if self.on_call else out

        run_graph._boxed_call = getattr(fn, "_boxed_call", False)
        return run_graph


def _use(monkeypatch, backend):
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    return backend


# --- layouts, recompilation, graph breaks -----------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_every_batch_gets_its_draws_from_one_buffer_laid_out_as_fresh_tensors(k):
    randoms = [RunRandom(seed, CPU) for seed in range(k)]
    plans = [r.epoch_plan(N_TRAIN, BATCH, True, 0.2) for r in randoms]
    group_plan = stack_plans(plans, CPU)
    storages = set()
    for j, start in enumerate(range(0, N_TRAIN, BATCH)):
        order, top, left, flip, lam, perm = group_plan.batch(j)
        size = min(BATCH, N_TRAIN - start)
        for t in (order, top, left, flip, perm):
            assert t.shape == (k, size) and t.stride() == (size, 1)  # what a fresh [k, size] tensor has
            storages.add(t.untyped_storage().data_ptr())
        assert lam.shape == (k,) and lam.stride() == (1,)
        for i, p in enumerate(plans):  # the numpy plan, value for value
            cols = slice(start, start + size)
            assert order[i].tolist() == p.order[cols].tolist() and top[i].tolist() == p.top[cols].tolist()
            assert left[i].tolist() == p.left[cols].tolist() and flip[i].bool().tolist() == p.flip[cols].tolist()
            assert perm[i].tolist() == p.perms[j].tolist() and lam[i].item() == pytest.approx(p.lam[j], rel=1e-7)
    assert len(storages) == 1  # one buffer: one host-to-device copy per epoch


def _graph_counts():
    return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())


@pytest.mark.inductor
@pytest.mark.parametrize("k", [1, 2])
def test_inductor_compiles_once_and_trains_like_eager_for_k_runs(k):
    train, val = _data()
    eager = _train(_group("false", k), train, val, epochs=3)
    group = _group("true", k, backend="inductor")
    fastpath.prepare(group, train, val)
    assert group.fast_step is not None and group.record.graphs >= 2, group.record  # forward + backward, optimizer
    after_capture = _graph_counts()
    compiled = _train(group, train, val, epochs=3)  # a new learning rate each epoch
    assert _graph_counts() == after_capture, "recompiled or broke a graph after capture"
    record = group.record.as_dict()
    assert (
        record["recompiles"] == 0 and record["graph_breaks"] == 0 and record["compiled"] and record["fallback"] is None
    )
    assert record["self_check"]["max_rel_diff"] <= TOLERANCE["fp32"]
    for epoch_eager, epoch_fast in zip(eager, compiled):
        for run_eager, run_fast in zip(epoch_eager, epoch_fast):
            assert run_fast == pytest.approx(run_eager, rel=1e-4, abs=1e-6)  # float rounding of another summation order


def test_ten_groups_in_one_process_each_train_with_their_compiled_steps(monkeypatch):
    backend = _use(monkeypatch, Backend(inner="eager"))  # Dynamo's graphs and guards, run as they are (fast)
    train, val = _data()
    for g in range(10):  # Dynamo's recompile limit is 8: were guards to pile up, the 9th group would run eagerly
        backend.label = g
        group = _group("true", 1, compile=True)
        fastpath.prepare(group, train, val)
        for graph in backend.graphs:
            graph["calls"] = 0
        group.optimizer.set_lr([0.01])
        fastpath.train_epoch(group, train)
        calls = [(x["optimizer"], x["calls"]) for x in backend.graphs if x["calls"]]
        assert sorted(calls) == [(False, 2), (True, 2)], (g, calls)  # two full batches: one forward, one update each
        assert group.record.compiled and group.record.reused == (g % 7 != 0), (g, group.record)
    assert len({x["label"] for x in backend.graphs}) == 2  # compiled for group 0, and again after 7 groups


def test_a_part_of_equal_size_reuses_the_compiled_graphs_and_trains_exactly_as_eager(monkeypatch):
    backend = _use(monkeypatch, Backend())
    train, val = _data()
    first = _group("true", 2, compile=True)
    _train(first, train, val, epochs=1)
    compiled = len(backend.graphs)
    second = _group("true", 2, mixup_alpha=0.2, compile=True)  # another part: other hyperparameters, same shapes
    fastpath.prepare(second, train, val)
    assert second.record.reused and second.record.graphs == 0 and len(backend.graphs) == compiled
    assert _train(second, train, val) == _train(_group("false", 2, mixup_alpha=0.2), train, val)
    assert second.record.as_dict()["recompiles"] == 0


def test_every_input_a_compiled_step_mutates_has_a_static_address(monkeypatch):
    mutated = []

    class Recording(Backend):
        def __call__(self, gm, example_inputs):
            fn = super().__call__(gm, example_inputs)

            def run_graph(*args):
                versions = [a._version if isinstance(a, torch.Tensor) else None for a in args]
                out = fn(*args)
                for a, v in zip(args, versions):
                    if v is not None and a._version != v:
                        mutated.append((self.graphs[-1]["optimizer"], getattr(a, "_dynamo_static_input_type", None)))
                return out

            run_graph._boxed_call = getattr(fn, "_boxed_call", False)
            return run_graph

    _use(monkeypatch, Recording())
    train, val = _data()
    group = _group("true", 2, precision="fp16", compile=True)  # fp16: the loss scales are mutated too
    fastpath.prepare(group, train, val)
    kinds = {optimizer for optimizer, _ in mutated}
    assert kinds == {True, False}, (
        "expected mutations in the forward graph (BatchNorm statistics) and the optimizer graph"
    )
    assert all(static is not None for _, static in mutated), "a mutated graph input without a static address"


# --- precision --------------------------------------------------------------------------------

PRECISION_TABLE = {  # capability: {setting: precision}; docs/speed.md's table
    None: {"auto": "fp32", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"},
    (7, 0): {"auto": "fp16", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"},
    (7, 5): {"auto": "fp16", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"},
    (8, 0): {"auto": "bf16", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"},
    (9, 0): {"auto": "bf16", "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"},
}


@pytest.mark.parametrize("capability", list(PRECISION_TABLE))
@pytest.mark.parametrize("setting", ["auto", "fp32", "bf16", "fp16"])
def test_the_precision_rule(capability, setting):
    precision, warning = precision_for(capability, setting)
    assert precision == PRECISION_TABLE[capability][setting]
    emulated = setting == "bf16" and capability is not None and capability < (8, 0)
    assert (warning is not None) == emulated
    if emulated:
        assert "\n" not in warning and "trainer.precision=bf16" in warning and "fp16" in warning


def test_auto_on_a_pre_ampere_gpu_is_fp16_with_a_loss_scale_per_run(monkeypatch):
    monkeypatch.setattr(fastpath, "device_capability", lambda device: (7, 5))  # a T4
    settings = fastpath.resolve_settings(compose_train([]).trainer, torch.device("cuda"), "mobilenetv2")
    assert settings.precision == "fp16" and settings.compile


def test_fp16_trains_as_torch_autocast_with_torch_grad_scaler(monkeypatch):
    train, _ = _data()
    group = _group("false", 1, precision="fp16")
    group.optimizer.set_lr([0.05])
    reference = init_weights(lambda: build_model("tiny"), 0)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cpu")
    draws = RunRandom(0, CPU)
    for _ in range(2):
        (ours,) = fastpath.train_epoch(group, train)
        plan = draws.epoch_plan(len(train), BATCH, True, None)
        loss_sum = 0.0
        for start in range(0, len(train), BATCH):
            cols = slice(start, start + BATCH)
            idx = torch.as_tensor(plan.order[cols])
            x = NORM(
                crop_flip(train.images[idx], *(torch.as_tensor(a[cols]) for a in (plan.top, plan.left, plan.flip)))
            )
            with torch.autocast("cpu", dtype=torch.float16):
                loss = F.cross_entropy(reference(x).float(), train.labels[idx])
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.item() * len(idx)
        assert ours.loss == pytest.approx(loss_sum / len(train), rel=1e-3)
        assert group.optimizer.scaler.scale.item() == scaler.get_scale()  # the same skipped steps, the same scale


# --- self-check and fallback ------------------------------------------------------------------


def _wrong_forward(graph, args, out):
    """Every float output of the forward graph 10% too large (a miscompiled step)."""
    if graph["optimizer"]:
        return out
    return [o * 1.1 if isinstance(o, torch.Tensor) and o.is_floating_point() else o for o in out]


@pytest.mark.parametrize("compile_", ["auto", "true"])
def test_a_compiled_step_that_disagrees_with_eager_is_not_used(monkeypatch, compile_):
    _use(monkeypatch, Backend(_wrong_forward))
    train, val = _data()
    group = _group(compile_, 1, compile=True)
    if compile_ == "true":
        with pytest.raises(CompiledStepError) as err:
            fastpath.prepare(group, train, val)
        assert "\n" not in str(err.value) and "disagrees" in str(err.value) and "trainer.compile=true" in str(err.value)
        return
    fastpath.prepare(group, train, val)
    record = group.record.as_dict()
    assert group.fast_step is None and not record["compiled"] and "disagrees" in record["fallback"]
    assert record["self_check"]["max_rel_diff"] > TOLERANCE["fp32"]
    assert _train(group, train, val) == _train(_group("false", 1), train, val)  # eager from the start, exactly


@pytest.mark.parametrize("compile_", ["auto", "true"])
def test_a_compiled_step_that_raises_in_epoch_1_restarts_it_eagerly(monkeypatch, compile_):
    armed = []

    def fail_once_armed(graph, args, out):
        if armed and not graph["optimizer"]:
            raise RuntimeError("simulated failure inside a compiled step")
        return out

    _use(monkeypatch, Backend(fail_once_armed))
    train, val = _data()
    group = _group(compile_, 2, mixup_alpha=0.2, compile=True)
    fastpath.prepare(group, train, val)
    assert group.fast_step is not None
    armed.append(True)
    if compile_ == "true":
        with pytest.raises(CompiledStepError) as err:
            _train(group, train, val)
        assert "\n" not in str(err.value) and "simulated failure" in str(err.value)
        return
    fallen_back = _train(group, train, val)
    assert group.fast_step is None and "first epoch" in group.record.fallback
    assert fallen_back == _train(_group("false", 2, mixup_alpha=0.2), train, val)  # eager from epoch 1, never a mix


# --- runs: out of memory, resume, the record ----------------------------------------------------


def test_out_of_memory_retries_a_group_with_half_the_runs_until_it_fits(small_root, tmp_path, monkeypatch):
    configs = [
        small_cfg(small_root, f"optim.lr={lr}", f"seed={seed}")
        for lr, seed in [(0.01, 0), (0.02, 1), (0.005, 2), (0.03, 3), (0.01, 4)]
    ]
    for i, cfg in enumerate(configs):
        run(cfg, tmp_path / f"alone{i}")
    real_train_epoch, sizes = training_module.train_epoch, []

    def out_of_memory_above_2(group, split, bar=None):
        sizes.append(group.k)
        if group.k > 2 and sizes.count(group.k) == 2:  # in epoch 2, after epoch 1's checkpoints are written
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_train_epoch(group, split, bar)

    monkeypatch.setattr(training_module, "train_epoch", out_of_memory_above_2)
    results = run_group([Member(cfg, tmp_path / f"fused{i}") for i, cfg in enumerate(configs)])
    assert [r.summary["status"] for r in results] == ["completed"] * 5, results
    assert sizes == [5, 5, 2, 2, 1]  # 5 fail in epoch 2; then 2 + 2 + 1, each resuming after epoch 1
    for i in range(5):
        assert_same_run(tmp_path / f"alone{i}", tmp_path / f"fused{i}", 1e-5, 1, 1e-3)


def _stop_after_epoch_1(monkeypatch):
    real_evaluate, calls = training_module.evaluate, []

    def evaluate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(training_module, "evaluate", evaluate_then_stop)
    return lambda: monkeypatch.setattr(training_module, "evaluate", real_evaluate)


def test_a_run_resumes_from_a_checkpoint_whose_generators_come_from_another_device_type(
    small_root, tmp_path, monkeypatch
):
    cfg = small_cfg(small_root, "augmentation=mixup")
    run(cfg, tmp_path / "straight")
    undo = _stop_after_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "moved")
    undo()
    path = tmp_path / "moved" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    assert state["random"]["torch_device"] == "cpu" and state["precision"] == "fp32"
    state["random"]["torch"] = (
        torch.cuda.default_generators[0].get_state()
        if torch.cuda.is_available()
        else torch.zeros(16, dtype=torch.uint8)
    )
    state["random"]["torch_device"] = "cuda"  # as saved by a CUDA generator (Philox: 16 bytes)
    torch.save(state, path)
    assert run(cfg, tmp_path / "moved")["status"] == "completed"
    # the tiny network has no dropout: every draw it uses comes from numpy and continues exactly
    assert without_timing(read_rows(tmp_path / "moved" / "history.csv")) == without_timing(
        read_rows(tmp_path / "straight" / "history.csv")
    )


def test_a_resumed_run_keeps_the_precision_it_started_with(small_root, tmp_path, monkeypatch):
    cfg = small_cfg(small_root)  # trainer.precision=auto
    undo = _stop_after_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "r")
    undo()
    path = tmp_path / "r" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    state["precision"] = "bf16"  # as if it had started on a GPU with native bf16
    torch.save(state, path)
    run(cfg, tmp_path / "r")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["compile"]["precision"] == "bf16"
    assert torch.load(path, weights_only=False)["precision"] == "bf16"


def test_an_fp16_run_resumes_exactly_with_its_loss_scale(small_root, tmp_path, monkeypatch):
    monkeypatch.setattr(
        LossScale, "GROWTH_INTERVAL", 1
    )  # the scale doubles every step until fp16 overflows, then halves
    cfg = small_cfg(small_root, "trainer.precision=fp16", "batch_size=25")
    run(cfg, tmp_path / "straight")
    undo = _stop_after_epoch_1(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "resumed")
    undo()
    assert checkpoint.load(tmp_path / "resumed", CPU)["loss_scale"]["scale"] == 2.0**20  # 4 steps grown
    run(cfg, tmp_path / "resumed")
    assert without_timing(read_rows(tmp_path / "resumed" / "history.csv")) == without_timing(
        read_rows(tmp_path / "straight" / "history.csv")
    )


def test_the_compile_record_is_in_summary_json_and_in_the_analysis(small_root, tmp_path):
    import analysis

    run(small_cfg(small_root), tmp_path / "sweep" / "eager")
    record = json.loads((tmp_path / "sweep" / "eager" / "summary.json").read_text())["compile"]
    assert record["precision"] == "fp32" and record["compiled"] is False and record["fallback"] is None
    runs, _ = analysis.collect([tmp_path / "sweep"])
    assert runs["compile"].tolist() == ["eager, fp32"]


def test_parts_are_sized_to_free_memory_from_the_measured_cost_per_run():
    gib = 2**30
    assert fused_sizing.fit(16 * gib, 2 * gib, 9) == 7  # 90% of 16 GiB holds 7 runs of 2 GiB
    assert fused_sizing.fit(16 * gib, 2 * gib, 3) == 3  # never more than the group
    assert fused_sizing.fit(gib, 2 * gib, 4) == 1  # at least one
    assert np.floor(0.9 * 80 / 1.5) == fused_sizing.fit(80 * gib, int(1.5 * gib), 100)
