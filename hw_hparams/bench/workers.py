"""What one benchmark process measures: the classic pipeline, or our training step (eager or fast).

Each measurement runs in its own process (bench.py starts them), so peak memory is that pipeline's
and k runs can share one GPU. Data: CIFAR-shaped random uint8 images and labels from a fixed seed,
the same in every process (throughput does not depend on pixel values). An epoch is one pass over
the training images plus one evaluation pass over the validation images; its time is wall-clock
seconds including the host synchronisation that ends it.
"""

from __future__ import annotations

import resource
import statistics
import time
import traceback
import warnings
from typing import Any, Optional

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

# CIFAR-100 40k-split statistics (as reported by public solutions, docs/study.md); any fixed values time the same.
MEAN, STD = [0.5068, 0.4861, 0.4403], [0.2671, 0.2563, 0.2759]


def make_data(n_train: int, n_val: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images uint8 [N, 3, 32, 32], train labels [N], val images, val labels) on the CPU."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train + n_val, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 100, (n_train + n_val,), generator=g)
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def _peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "memory_kind": "GPU max_memory_allocated"}
    return {
        "peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "memory_kind": "process peak RSS",
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model} ({torch.get_num_threads()} threads)"


def _epochs(p: dict, one_epoch) -> tuple[list[float], float, float]:
    """Run warmup + timed epochs; (timed epoch seconds, monotonic start and end of the timed ones)."""
    times, t_timed = [], time.monotonic()
    for e in range(p["warmup_epochs"] + p["epochs"]):
        if e == p["warmup_epochs"]:
            t_timed = time.monotonic()
        t = time.perf_counter()
        one_epoch()
        if e >= p["warmup_epochs"]:
            times.append(time.perf_counter() - t)
    return times, t_timed, time.monotonic()


def measure_classic(p: dict, barrier=None) -> dict:
    """numpy -> PIL -> torchvision transforms -> DataLoader, fp32, eager, `loss.item()` every step."""
    from torch.utils.data import DataLoader
    from torchvision import transforms
    from torchvision.datasets import CIFAR100, VisionDataset

    from hw_hparams.engine.models import build_model

    device = torch.device(p["device"])
    tr_i, tr_l, va_i, va_l = make_data(p["train"], p["val"], p["seed"])

    def dataset(images: torch.Tensor, labels: torch.Tensor, tf) -> CIFAR100:
        """torchvision's CIFAR100 class (its own __getitem__: numpy HWC -> PIL -> transform) over our arrays."""
        ds = CIFAR100.__new__(CIFAR100)
        VisionDataset.__init__(ds, root=None, transform=tf)
        ds.data, ds.targets, ds.train = images.permute(0, 2, 3, 1).numpy().copy(), labels.tolist(), True
        return ds

    normalize = [transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), *normalize])
    loader = dict(num_workers=p["workers"], pin_memory=device.type == "cuda")
    train = DataLoader(dataset(tr_i, tr_l, train_tf), batch_size=p["batch_size"], shuffle=True, **loader)
    val = DataLoader(dataset(va_i, va_l, transforms.Compose(normalize)), batch_size=p["eval_batch"], **loader)
    model = build_model(p["model"]).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

    def one_epoch():
        model.train()
        loss_sum = correct = 0.0
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        model.eval()
        with torch.no_grad():
            for x, y in val:
                out = model(x.to(device, non_blocking=True))
                loss_sum += F.cross_entropy(out, y.to(device), reduction="sum").item()

    times, t0, t1 = _epochs(p, one_epoch)
    settings = f"PIL + torchvision transforms, DataLoader {p['workers']} workers, fp32, eager, loss.item() each step"
    return {
        "epoch_times": times,
        "t_start": t0,
        "t_end": t1,
        "compile_s": 0.0,
        "settings": settings,
        "recompiles": None,
        "syncs_per_epoch": None,
        **_peak_memory(device),
        "device_name": _device_name(device),
    }


def _unique_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _count_syncs(fn) -> int:
    """Host synchronisations CUDA reports while `fn` runs (torch.cuda.set_sync_debug_mode)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def _group(p: dict, compile: str, precision: str, k: int, **overrides):
    """A group of k fresh runs (seeds 0..k-1) of the study's kind: SGD momentum 0.9, weight decay
    5e-4, crop + flip (+ mixup with p["mixup_alpha"]), on `p["device"]`, trained as one network."""
    from hw_hparams.data import Normalize
    from hw_hparams.engine.group import RunSpec, build_group, resolve_settings

    device = torch.device(p["device"])
    settings = resolve_settings(
        OmegaConf.create({"compile": compile, "precision": precision}), device, p["model"], **overrides
    )
    runs = [RunSpec(seed, 0.05, "cosine", 0.9, 5e-4, True, p["mixup_alpha"]) for seed in range(k)]
    return build_group(p["model"], runs, device, Normalize(MEAN, STD, device), settings, p["batch_size"])


def _splits(p: dict):
    from hw_hparams.data import Split

    device = torch.device(p["device"])
    tr_i, tr_l, va_i, va_l = make_data(p["train"], p["val"], p["seed"])
    return Split(tr_i.to(device), tr_l.to(device)), Split(va_i.to(device), va_l.to(device))


def measure_ours(p: dict, barrier=None) -> dict:
    """Our training step (group.Group) of `p["fused"]` runs as one network (default 1), with
    `p["trainer"]` settings and `p["overrides"]`; the learning rate changes every epoch (cosine)."""
    from hw_hparams.engine.group import evaluate, prepare, train_epoch
    from hw_hparams.engine.optim import lr_at

    device = torch.device(p["device"])
    train, val = _splits(p)
    k = p.get("fused", 1)
    group = _group(p, p["trainer"]["compile"], p["trainer"]["precision"], k, **p["overrides"])
    compile_s = prepare(group, train, val)
    if barrier is not None:
        barrier.wait(timeout=p["timeout"])
    epochs, epoch = p["warmup_epochs"] + p["epochs"] + 1, [0]

    def one_epoch():
        group.optimizer.set_lr([lr_at("cosine", 0.05, epoch[0], epochs)] * k)
        train_epoch(group, train)
        evaluate(group, val)
        epoch[0] += 1

    times, t0, t1 = _epochs(p, one_epoch)
    syncs = _count_syncs(one_epoch) if device.type == "cuda" else None
    record = group.record.as_dict()  # the compile record a run's summary.json holds
    compiled = record["compiled"]
    settings = (
        group.settings.describe()
        if compiled or not group.settings.compile
        else f"{group.settings.describe()} (fell back to eager)"
    )
    return {
        "epoch_times": times,
        "t_start": t0,
        "t_end": t1,
        "compile_s": compile_s,
        "settings": settings,
        "recompiles": record["recompiles"] if compiled else None,
        "syncs_per_epoch": syncs,
        "fused": k,
        "cudagraph_skips": record["cudagraph_skips"] if compiled else None,
        "graph_breaks": record["graph_breaks"] if compiled else None,
        "self_check": (record["self_check"] or {}).get("max_rel_diff"),
        "fallback": record["fallback"],
        **_peak_memory(device),
        "device_name": _device_name(device),
    }


def measure_equivalence(p: dict, barrier=None) -> dict:
    """Eager vs compiled step in fp32 from the same weights and draws (each run's own generators):
    per-epoch train/val losses of both and their largest relative difference (float rounding only,
    if the paths agree)."""
    from hw_hparams.engine.group import evaluate, prepare, train_epoch
    from hw_hparams.engine.optim import lr_at

    device = torch.device(p["device"])
    train, val = _splits(p)
    losses, recompiles = {}, None
    for compile_ in ("false", "true"):
        group = _group(p, compile_, "fp32", 1, **p["overrides"])
        prepare(group, train, val)
        graphs = _unique_graphs()
        losses[compile_] = []
        for e in range(p["epochs"]):
            group.optimizer.set_lr([lr_at("cosine", 0.05, e, p["epochs"] + 1)])
            (t,), (v,) = train_epoch(group, train), evaluate(group, val)
            losses[compile_] += [t.loss, v.loss]
        if compile_ == "true":
            recompiles = _unique_graphs() - graphs
    diff = max(abs(a - b) / abs(a) for a, b in zip(losses["false"], losses["true"]))
    return {
        "eager_losses": losses["false"],
        "fast_losses": losses["true"],
        "max_rel_diff": diff,
        "recompiles": recompiles,
        "epoch_times": [0.0],
        "device_name": _device_name(device),
    }


MEASURES = {"classic": measure_classic, "ours": measure_ours, "equivalence": measure_equivalence}


def child(kind: str, p: dict, queue, barrier=None, threads: Optional[int] = None) -> None:
    """Process entry: measure and put the result (or the error) on `queue`."""
    try:
        if threads:
            torch.set_num_threads(threads)
        result = MEASURES[kind](p, barrier)
        result["median_epoch_s"] = statistics.median(result["epoch_times"])
        queue.put(result)
    except BaseException as err:  # the parent reports it in the table; a broken barrier frees the siblings
        if barrier is not None:
            barrier.abort()
        queue.put({"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()})
