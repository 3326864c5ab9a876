"""Mixup, schedules, optimizer and models against their definitions."""

from __future__ import annotations

import math


import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from hw_hparams.mixup import mix_with, mixup_correct, mixup_loss, sample_lambda, sample_mix
from hw_hparams.models import build_model
from hw_hparams.optim import build_optimizer, build_scheduler
from omegaconf import OmegaConf


def test_mixup_loss_equals_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(16, 100)
    y_a, y_b = torch.randint(0, 100, (16,)), torch.randint(0, 100, (16,))
    lam = 0.3
    log_p = torch.log_softmax(logits, dim=1)
    expect = -(lam * log_p[torch.arange(16), y_a] + (1 - lam) * log_p[torch.arange(16), y_b]).mean()
    assert mixup_loss(logits, y_a, y_b, lam).item() == pytest.approx(expect.item(), rel=1e-6)
    soft = lam * F.one_hot(y_a, 100) + (1 - lam) * F.one_hot(y_b, 100)  # the soft-target form
    assert mixup_loss(logits, y_a, y_b, lam).item() == pytest.approx(F.cross_entropy(logits, soft.float()).item(), rel=1e-6)


def test_mix_mixes_images_with_a_permutation_of_the_batch():
    torch.manual_seed(0)
    x = torch.randn(32, 3, 4, 4)
    y = torch.arange(32)
    lam, perm = sample_mix(len(y), 0.2, y.device)
    xm = mix_with(x, lam, perm)
    y_b = y[perm]
    assert 0 <= float(lam) <= 1
    assert sorted(y_b.tolist()) == list(range(32))
    assert torch.allclose(xm, float(lam) * x + (1 - float(lam)) * x[y_b], atol=1e-6)


def test_lambda_follows_beta_alpha_alpha():
    torch.manual_seed(0)
    draws = [sample_lambda(0.2) for _ in range(3000)]
    assert stats.kstest(draws, stats.beta(0.2, 0.2).cdf).pvalue > 0.01


def test_mixup_accuracy_is_lambda_weighted():
    logits = torch.zeros(4, 3)
    logits[torch.arange(4), torch.tensor([0, 1, 2, 0])] = 1.0  # predictions 0, 1, 2, 0
    y_a, y_b = torch.tensor([0, 1, 0, 1]), torch.tensor([2, 2, 2, 0])
    # right under y_a: images 0, 1; under y_b: images 2, 3
    assert mixup_correct(logits, y_a, y_b, 0.7).item() == pytest.approx(0.7 * 2 + 0.3 * 2)


def _lrs(schedule, epochs, lr=0.05):
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, OmegaConf.create({"lr": lr, "momentum": 0.9, "weight_decay": 0.0}))
    sched = build_scheduler(opt, schedule, epochs)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, opt.param_groups[0]["lr"]


def test_cosine_schedule_equals_torch_and_the_formula():
    ours, after = _lrs("cosine", 300)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300, eta_min=0)
    theirs = []
    for _ in range(300):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert ours == pytest.approx([0.05 / 2 * (1 + math.cos(math.pi * e / 300)) for e in range(300)], abs=1e-12)
    assert after == pytest.approx(0.0, abs=1e-15)


def test_constant_schedule_is_constant():
    ours, after = _lrs("constant", 20)
    assert ours == [0.05] * 20 and after == 0.05


def test_weight_decay_is_sgds_own_on_every_parameter():
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, OmegaConf.create({"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 5e-4
    assert opt.param_groups[0]["momentum"] == 0.9
    assert sum(p.numel() for p in opt.param_groups[0]["params"]) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "params"), [("mobilenetv2", 2_351_972), ("mobilenetv1", 3_309_476)])
def test_model_parameter_counts(name, params):
    assert sum(p.numel() for p in build_model(name).parameters()) == params


def test_mobilenetv2_is_the_cifar_variant_of_torchvisions():
    from torchvision.models import mobilenet_v2

    ours, reference = build_model("mobilenetv2"), mobilenet_v2(num_classes=100)
    assert [p.shape for p in ours.parameters()] == [p.shape for p in reference.parameters()]
    x = torch.randn(2, 3, 32, 32)
    ours.eval()
    assert ours.features(x).shape == (2, 1280, 4, 4)  # 32 -> 4: strides 1 (stem), 1, 1, 2, 2, 1, 2, 1
    assert ours(x).shape == (2, 100)
