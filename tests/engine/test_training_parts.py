"""Mixup, schedules, optimizer and models against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from hw_hparams.engine.draws import RunRandom
from hw_hparams.engine.fusion import copy_state, fuse, part_of
from hw_hparams.engine.mixup import mix_with, mixup_correct, mixup_loss
from hw_hparams.engine.models import build_model
from hw_hparams.engine.optim import FusedSGD, lr_at


def test_mixup_loss_equals_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(16, 100)
    y_a, y_b = torch.randint(0, 100, (16,)), torch.randint(0, 100, (16,))
    lam = 0.3
    log_p = torch.log_softmax(logits, dim=1)
    expect = -(lam * log_p[torch.arange(16), y_a] + (1 - lam) * log_p[torch.arange(16), y_b]).mean()
    assert mixup_loss(logits, y_a, y_b, lam).item() == pytest.approx(expect.item(), rel=1e-6)
    soft = lam * F.one_hot(y_a, 100) + (1 - lam) * F.one_hot(y_b, 100)  # the soft-target form
    assert mixup_loss(logits, y_a, y_b, lam).item() == pytest.approx(
        F.cross_entropy(logits, soft.float()).item(), rel=1e-6
    )


def test_mix_mixes_images_with_a_permutation_of_the_batch():
    torch.manual_seed(0)
    x = torch.randn(32, 3, 4, 4)
    y = torch.arange(32)
    plan = RunRandom(0, torch.device("cpu")).epoch_plan(32, 32, crop_flip=False, mixup_alpha=0.2)
    lam, perm = torch.tensor(plan.lam[0], dtype=torch.float32), torch.as_tensor(plan.perms[0])
    xm = mix_with(x, lam, perm)
    y_b = y[perm]
    assert 0 <= float(lam) <= 1
    assert sorted(y_b.tolist()) == list(range(32))
    assert torch.allclose(xm, float(lam) * x + (1 - float(lam)) * x[y_b], atol=1e-6)


def test_lambda_follows_beta_alpha_alpha_and_permutations_are_uniform():
    plan = RunRandom(0, torch.device("cpu")).epoch_plan(3000 * 8, 8, crop_flip=False, mixup_alpha=0.2)
    assert len(plan.lam) == 3000 and stats.kstest(plan.lam, stats.beta(0.2, 0.2).cdf).pvalue > 0.01
    first = np.bincount([p[0] for p in plan.perms], minlength=8)  # where each batch's first image goes
    assert sorted(plan.perms[0].tolist()) == list(range(8)) and stats.chisquare(first).pvalue > 0.01


def test_mixup_accuracy_is_lambda_weighted():
    logits = torch.zeros(4, 3)
    logits[torch.arange(4), torch.tensor([0, 1, 2, 0])] = 1.0  # predictions 0, 1, 2, 0
    y_a, y_b = torch.tensor([0, 1, 0, 1]), torch.tensor([2, 2, 2, 0])
    # right under y_a: images 0, 1; under y_b: images 2, 3
    assert mixup_correct(logits, y_a, y_b, 0.7).item() == pytest.approx(0.7 * 2 + 0.3 * 2)


def test_cosine_schedule_equals_torch_and_the_formula():
    ours = [lr_at("cosine", 0.05, e, 300) for e in range(301)]
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=300, eta_min=0)
    theirs = []
    for _ in range(301):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert ours[:300] == pytest.approx([0.05 / 2 * (1 + math.cos(math.pi * e / 300)) for e in range(300)], abs=1e-12)
    assert ours[300] == pytest.approx(0.0, abs=1e-15)


def test_constant_schedule_is_constant():
    assert [lr_at("constant", 0.05, e, 20) for e in range(21)] == [0.05] * 21


def test_fused_sgd_is_torchs_sgd_for_each_run_with_its_own_hyperparameters():
    """Three runs with different lr, momentum (0 included) and weight decay, fused, against three
    torch.optim.SGD on the same three networks, fed the same gradients (so only the optimizers
    differ): weights and momentum agree to float rounding after several steps."""
    hyper = [(0.1, 0.9, 5e-4), (0.05, 0.0, 0.0), (0.5, 0.5, 1e-4)]
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build_model("tiny"))
    fused = fuse(nets)
    opts = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=mom, weight_decay=wd) for m, (lr, mom, wd) in zip(nets, hyper)
    ]
    ours = FusedSGD(fused, 3, [h[1] for h in hyper], [h[2] for h in hyper])
    ours.set_lr([h[0] for h in hyper])
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        x, y = torch.randn(3, 16, 3, 32, 32, generator=g), torch.randint(0, 100, (3, 16), generator=g)
        for i, net in enumerate(nets):
            opts[i].zero_grad()
            F.cross_entropy(net(x[i]), y[i]).backward()
        for name, p in fused.named_parameters():
            p.grad = torch.zeros_like(p)
            for i, net in enumerate(nets):
                part_of(fused, name, p.grad, i).copy_(net.get_parameter(name).grad)
        for opt in opts:
            opt.step()
        ours.step()
    for i, net in enumerate(nets):
        for name, tensor in copy_state(fused, i).items():
            if "running" not in name and "num_batches" not in name:  # BatchNorm statistics: not the optimizer's
                torch.testing.assert_close(tensor, net.state_dict()[name], rtol=1e-6, atol=1e-7, msg=name)
        if hyper[i][1]:
            for name, buf in ours.buffers.items():
                torch.testing.assert_close(
                    part_of(fused, name, buf, i),
                    opts[i].state[net.get_parameter(name)]["momentum_buffer"],
                    rtol=1e-6,
                    atol=1e-7,
                )


def test_a_fused_network_computes_each_copy_as_it_would_alone():
    """Forward and backward of three MobileNetV2 copies fused vs each alone (same inputs, same dropout
    masks), in float64 so that the comparison sees the mathematics and not the rounding: outputs and
    every gradient agree to 1e-10 of the largest gradient. (In float32 the two differ by rounding,
    which BatchNorm's backward over a small batch amplifies to ~1e-3 relative in places.)"""
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build_model("mobilenetv2").double())
    fused = fuse(nets)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 8, 3, 32, 32, generator=g, dtype=torch.float64)
    masks = (torch.rand(3, 8, 1280, generator=g) >= 0.2).double() / 0.8
    out = fused(x.transpose(0, 1).flatten(1, 2), masks.transpose(0, 1).flatten(1)).unflatten(1, (3, -1))
    out.square().sum().backward()
    for i, net in enumerate(nets):
        alone = net(x[i], masks[i])
        alone.square().sum().backward()
        torch.testing.assert_close(out[:, i], alone, rtol=1e-12, atol=1e-12)
        scale = max(p.grad.abs().max() for p in net.parameters())
        for name, p in fused.named_parameters():
            assert (part_of(fused, name, p.grad, i) - net.get_parameter(name).grad).abs().max() <= 1e-10 * scale, name


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
