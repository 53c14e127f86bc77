"""Staged unfreezing: the schedule as data, per-group rates, and the callback.

- `schedule`: which layer groups train from which epoch, parsed and resolved
  (pure: no model needed to check one, and no TensorFlow: the command line
  checks ``--schedule`` with it before TensorFlow loads).
- `rates`: optimizers with a learning rate per variable (discriminative rates).
- `callback`: `StagedUnfreezing`, which applies a schedule during ``fit``.
- `annealing`: `CosineAnnealing`, the rate falling to 0 over the last epochs
  (`fine_tune`'s unfrozen epochs).

The names of `rates`, `callback` and `annealing` load on first use, so that
importing `schedule` does not import TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tltf.training.unfreezing.schedule import PRESETS, parse_schedule, resolve_stages

if TYPE_CHECKING:
    from tltf.training.unfreezing.annealing import CosineAnnealing
    from tltf.training.unfreezing.callback import StagedUnfreezing
    from tltf.training.unfreezing.rates import (
        GroupLearningRates,
        grouped_optimizer_class,
        grouped_part,
        rebuild_optimizer,
    )

_LAZY = {
    "CosineAnnealing": "annealing",
    "GroupLearningRates": "rates",
    "StagedUnfreezing": "callback",
    "grouped_optimizer_class": "rates",
    "grouped_part": "rates",
    "rebuild_optimizer": "rates",
}

__all__ = [
    "PRESETS",
    "CosineAnnealing",
    "GroupLearningRates",
    "StagedUnfreezing",
    "grouped_optimizer_class",
    "grouped_part",
    "parse_schedule",
    "rebuild_optimizer",
    "resolve_stages",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
    value = getattr(module, name)
    globals()[name] = value
    return value
