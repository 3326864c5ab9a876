"""Winners are worded against the noise: binomial standard errors on n images, or the spread over seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import noise


def _runs(rows):
    """rows: (setting, status, val_acc, val_loss, train_loss)."""
    return pd.DataFrame(rows, columns=["setting", "status", "val_acc", "val_loss", "train_loss"])


def test_binomial_standard_error():
    assert noise.binomial_se(0.5, 10000) == 0.005
    assert math.isclose(noise.binomial_se(0.3, 400), math.sqrt(0.3 * 0.7 / 400))
    assert math.isnan(noise.binomial_se(0.3, 0))


def test_a_lead_inside_two_standard_errors_is_worded_as_within_noise():
    runs = _runs(
        [
            ("lr 0.5", "completed", 0.450, 2.1, 1.9),
            ("lr 0.05", "completed", 0.455, 2.0, 1.7),
            ("lr 0.01", "completed", 0.400, 2.3, 2.0),
        ]
    )
    ests = noise.estimates(runs, "val_acc")
    assert [e.setting for e in ests] == ["lr 0.05", "lr 0.5", "lr 0.01"]
    sizes = {"val": 10000}
    se = math.hypot(math.sqrt(0.455 * 0.545 / 1e4), math.sqrt(0.45 * 0.55 / 1e4))  # about 0.70 points
    g = noise.gap(ests[0], ests[1], "val_acc", sizes)
    assert math.isclose(g.diff, 0.005) and math.isclose(g.se, se) and g.within_noise
    text = noise.ranking_sentence(ests, "val_acc", sizes)
    assert text.startswith("Validation accuracy: highest for lr 0.05 (45.50%), then lr 0.5 (45.00%), lr 0.01 (40.00%).")
    assert "within noise" in text and f"standard error {100 * se:.2f} points" in text
    assert "10000 validation images" in text and "do not tell the two apart" in text
    # the same lead on 100x more images is beyond the noise
    far = noise.ranking_sentence(ests, "val_acc", {"val": 1_000_000})
    assert "beyond noise" in far and "within noise" not in far


def test_several_seeds_use_the_spread_over_seeds():
    a, b = [0.50, 0.52, 0.51], [0.40, 0.41, 0.43]
    runs = _runs(
        [("wd 5e-4", "completed", v, 1.0, 0.1) for v in a] + [("wd 1e-4", "completed", v, 1.2, 0.05) for v in b]
    )
    ests = noise.estimates(runs, "val_acc")
    g = noise.gap(ests[0], ests[1], "val_acc", {"val": 50})
    want = math.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3)
    assert math.isclose(g.se, want) and g.basis == "spread over 3 seeds each"
    assert not g.within_noise and math.isclose(g.diff, np.mean(a) - np.mean(b))


def test_a_loss_from_single_runs_has_no_noise_estimate_and_says_so():
    runs = _runs([("constant", "completed", 0.5, 3.7, 0.007), ("cosine", "completed", 0.51, 3.3, 0.001)])
    text = noise.ranking_sentence(noise.estimates(runs, "train_loss"), "train_loss", {"val": 10000})
    assert text.startswith("Training loss: lowest for cosine (0.0010), then constant (0.0070).")
    assert "untested" in text and "no noise estimate" in text


def test_diverged_runs_rank_last_and_are_named():
    runs = _runs(
        [("lr 0.5", "diverged", float("nan"), float("nan"), float("nan")), ("lr 0.05", "completed", 0.45, 2.0, 1.7)]
    )
    text = noise.ranking_sentence(noise.estimates(runs, "val_loss"), "val_loss", None)
    assert text.startswith("Validation loss: lowest for lr 0.05 (2.0000), then lr 0.5 (diverged).")


def test_a_standard_error_of_zero_is_no_measurable_noise_never_infinitely_many():
    """Every seed of each setting gave one value (a spread of 0), or one run each at 100% and 0% (a binomial
    error of 0): the lead is untested, neither within nor beyond noise, and no division by zero."""
    same = _runs([("wd 5e-4", "completed", 0.5, 1.0, 0.1)] * 2 + [("wd 1e-4", "completed", 0.4, 1.2, 0.1)] * 2)
    extreme = _runs([("lr 0.05", "completed", 1.0, 0.1, 0.1), ("lr 0.5", "completed", 0.0, 4.6, 4.6)])
    for runs, lead in [
        (
            same,
            "The lead over wd 1e-4 (10.00 points) is untested: no measurable noise, a standard error of 0 "
            "(spread over 2 seeds each)",
        ),
        (
            extreme,
            "The lead over lr 0.5 (100.00 points) is untested: no measurable noise, a standard error of 0 "
            "(binomial, 60 validation images)",
        ),
    ]:
        ests = noise.estimates(runs, "val_acc")
        g = noise.gap(ests[0], ests[1], "val_acc", {"val": 60})
        assert g.se == 0 and not g.tested and not g.within_noise and not g.beyond_noise
        text = noise.ranking_sentence(ests, "val_acc", {"val": 60})
        assert text.endswith(f"{lead}, so there is no noise to measure it against.")
        assert "inf" not in text and "beyond" not in text
