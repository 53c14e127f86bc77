"""What each method trains with when the caller passes no optimizer.

MCC, when the base trains, brings Transfer-Learning-Library's digits
recipe, with which its published numbers were reproduced
(``benchmarks/domain_adaptation``): SGD with Nesterov momentum 0.9, weight
decay 1e-3 added to the gradient (PyTorch's coupled decay), and the rate
``0.01 * (1 + 0.001 i)^-0.75`` at step ``i``. When only the head trains on
a frozen base, it keeps the model's compiled optimizer (tltf's Adam): plain
SGD at 0.01 follows the scale of the frozen features, and diverged (NaN
within one epoch) on a randomly initialised base that reads raw pixels,
while the head on MiniLM features trained no better with it. DANN, CORAL
and MMD keep the compiled optimizer, as they always have.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from tltf.builders import fresh_optimizer

#: MCC's recipe (TLlib's digits scripts): rate, decay of the rate, momentum.
MCC_LEARNING_RATE = 0.01
MCC_WEIGHT_DECAY = 1e-3


@keras.saving.register_keras_serializable(package="tltf")
class InverseDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``rate * (1 + gamma * step) ** -power``: TLlib's and DANN's annealing.

    Args:
        rate: The rate at step 0.
        gamma: How fast it decays.
        power: The decay's exponent.
    """

    def __init__(self, rate: float, gamma: float = 0.001, power: float = 0.75):
        self.rate, self.gamma, self.power = float(rate), float(gamma), float(power)

    def __call__(self, step: Any) -> Any:
        step = keras.ops.cast(step, "float32")
        return self.rate * keras.ops.power(1.0 + self.gamma * step, -self.power)

    def get_config(self) -> dict[str, float]:
        return {"rate": self.rate, "gamma": self.gamma, "power": self.power}


@dataclasses.dataclass
class Recipe:
    """The optimizer of one adaptation run and the weight decay its step adds.

    Attributes:
        optimizer: A new optimizer (no state), for the model's variables.
        weight_decay: Added to each gradient as ``weight_decay * variable``
            (0 for none).
        name: What the run records: ``"sgd-nesterov"`` or ``"compiled"``.
    """

    optimizer: keras.optimizers.Optimizer
    weight_decay: float = 0.0
    name: str = "compiled"


def recipe_for(
    method: str,
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer | None = None,
    base_trains: bool = True,
) -> Recipe:
    """The optimizer and weight decay one run of ``method`` trains with.

    Args:
        method: A name of `tltf.training.domain.METHODS`.
        model: The compiled model (its optimizer: the other methods' recipe,
            and whether to scale the loss for mixed precision).
        optimizer: The caller's optimizer: a fresh copy is used, no weight
            decay added.
        base_trains: Whether the base trains (MCC's SGD recipe), or only the
            head (the compiled optimizer).

    Returns:
        A `Recipe` with a new optimizer.
    """
    if optimizer is not None:
        return Recipe(fresh_optimizer(optimizer), 0.0, "given")
    if method != "mcc" or not base_trains:
        return Recipe(fresh_optimizer(model.optimizer), 0.0, "compiled")
    sgd = keras.optimizers.SGD(
        learning_rate=InverseDecay(MCC_LEARNING_RATE),
        momentum=0.9,
        nesterov=True,
    )
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        sgd = keras.optimizers.LossScaleOptimizer(sgd)
    return Recipe(sgd, MCC_WEIGHT_DECAY, "sgd-nesterov")
