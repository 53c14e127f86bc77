"""Learning-rate search with KerasTuner, built on the public builders.

- `hypermodel`: `TransferHyperModel`, whose ``build(hp)`` only picks builder
  arguments and whose ``fit`` trains the head on cached features.
- `tuner`: `TransferTuner` (any oracle), `make_oracle`, `default_objective`.
- `search`: `tune_learning_rate`, the one call; `results`: what it returns.
"""

from tltf.training.tuning.hypermodel import TransferHyperModel
from tltf.training.tuning.results import TrialRecord, TuningResult
from tltf.training.tuning.search import tune_learning_rate
from tltf.training.tuning.tuner import (
    ORACLES,
    TransferTuner,
    default_objective,
    make_oracle,
)

__all__ = [
    "ORACLES",
    "TransferHyperModel",
    "TransferTuner",
    "TrialRecord",
    "TuningResult",
    "default_objective",
    "make_oracle",
    "tune_learning_rate",
]
