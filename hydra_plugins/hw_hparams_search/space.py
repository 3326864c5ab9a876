"""The search space of hydra/sweeper=search, written as for Hydra's Optuna sweeper.

Each key of `hydra.sweeper.params` and each sweep on the command line (which wins over params) is
one dimension, an Optuna distribution:

- `choice(a, b, ...)` or `a,b,...` (and `shuffle(...)` of a range): categorical over those values;
- `range(start, stop, step=1)`: the grid start, start + step, ... up to stop included, as Hydra's Optuna
  sweeper reads it (IntDistribution of integers; FloatDistribution with `step` when any is a number);
- `interval(a, b)`: uniform on [a, b] (integers when both ends are); `tag(log, interval(a, b))` on a log scale.

Every other override on the command line or in params is the same for every trial. A
`custom_search_space` function `fn(cfg, trial)` (a dotted path) may suggest more values on the trial
(trial.suggest_*); every suggested value becomes the job's override `key=value`.
Optuna is imported inside the functions: Hydra's plugin scan imports this module.
"""

from __future__ import annotations

import math
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer


def parse(params: dict[str, str] | None, arguments: list[str]) -> tuple[list[str], dict[str, Any]]:
    """(fixed overrides, {key: distribution}) from the sweeper's `params` and the command line's
    `arguments`; a key on the command line replaces the same key of params."""
    parser = OverridesParser.create()
    given = parser.parse_overrides(arguments)
    keys = {o.get_key_element() for o in given}
    from_params = [f"{k}={v}" for k, v in (params or {}).items() if k not in keys]
    fixed, space = [], {}
    for o in [*parser.parse_overrides(from_params), *given]:
        if o.is_sweep_override():
            space[o.get_key_element()] = distribution(o)
        else:
            fixed.append(o.input_line)
    return fixed, space


def distribution(o: Override) -> Any:
    """The Optuna distribution of one sweep override (module docstring); ValueError for one it cannot be."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    value = o.value()
    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        return CategoricalDistribution(list(o.sweep_iterator(transformer=Transformer.encode)))
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if all(isinstance(x, int) for x in (start, stop, step)):
            return IntDistribution(int(start), int(start + (stop - start) // step * step), step=int(step))
        last = start + math.floor((stop - start) / step + 1e-9) * step
        return FloatDistribution(float(start), float(last), step=float(step))
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ValueError(f"{o.input_line}: hydra/sweeper=search cannot search this sweep (use choice, range or interval)")


def as_override(key: str, value: Any) -> str:
    """`key=value` as Hydra reads it back to that value."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, float):
        return f"{key}={value!r}"
    if isinstance(value, str) and not value.replace("_", "").replace(".", "").replace("-", "").isalnum():
        return f"{key}='{value}'"
    return f"{key}={value}"


def trial_overrides(trial: Any, custom: Any, cfg: Any) -> list[str]:
    """The overrides of a `trial` asked with the space's distributions (study.ask), after `custom(cfg, trial)`
    (the custom search space, or None) suggested its own values."""
    if custom is not None:
        custom(cfg, trial)
    return [as_override(k, v) for k, v in trial.params.items()]
