"""Staged unfreezing: the schedule as data, per-group rates, and the callback.

- `schedule`: which layer groups train from which epoch, parsed and resolved
  (pure: no model needed to check one).
- `rates`: optimizers with a learning rate per variable (discriminative rates).
- `callback`: `StagedUnfreezing`, which applies a schedule during ``fit``.
- `annealing`: `CosineAnnealing`, the rate falling to 0 over the last epochs
  (`fine_tune`'s unfrozen epochs).
"""

from tltf.training.unfreezing.annealing import CosineAnnealing
from tltf.training.unfreezing.callback import StagedUnfreezing
from tltf.training.unfreezing.rates import (
    GroupLearningRates,
    grouped_optimizer_class,
    grouped_part,
    rebuild_optimizer,
)
from tltf.training.unfreezing.schedule import PRESETS, parse_schedule, resolve_stages

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
