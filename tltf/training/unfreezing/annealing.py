"""Cosine annealing of the optimizer's rate over the last epochs of ``fit``.

`fine_tune` anneals its unfrozen epochs: the rate of every group falls
along a half cosine from its scheduled value to 0 at the last step, as
fastai's ``fit_one_cycle`` anneals and BERT's recipe decays linearly. With
a constant rate, the weights of the last step are as noisy as those of the
first unfrozen ones (one full-data epoch of CLINC150 at constant rates
scored below the head it started from; `benchmarks/clinc150/RESULTS.md`).

The per-group multipliers of `tltf.StagedUnfreezing` are untouched: the
annealing scales the optimizer's own rate, which they multiply.
"""

from __future__ import annotations

import math
from typing import Any

import keras

from tltf import _compat
from tltf.errors import ConfigError


@keras.saving.register_keras_serializable(package="tltf")
class CosineAnnealing(keras.callbacks.Callback):
    """Anneals the optimizer's rate to 0 over ``epochs`` epochs from ``start_epoch``.

    Step ``s`` of ``S`` annealed steps runs at ``rate * (1 + cos(pi s / S)) / 2``.
    When the number of steps per epoch is unknown (a dataset of unknown
    length), the first annealed epoch runs at the epoch-level factor and
    counts its steps; later epochs anneal step by step. Resuming with
    ``BackupAndRestore`` picks up the factor of the resumed epoch.

    The nominal rate comes back at every epoch's end (so ``lr_<group>``
    logs of `tltf.StagedUnfreezing` listed after this callback show the
    scheduled rates) and when ``fit`` ends; the logs get ``lr_factor``, the
    factor of the epoch's last step. An optimizer whose rate is a
    ``LearningRateSchedule`` is left alone: its schedule decides.

    Args:
        epochs: Number of annealed epochs.
        start_epoch: First annealed epoch (epochs before it keep the rate).

    Example:
        >>> model.fit(data, epochs=4, callbacks=[CosineAnnealing(3, start_epoch=1)])
    """

    def __init__(self, epochs: int, start_epoch: int = 0) -> None:
        super().__init__()
        for name, value in (("epochs", epochs), ("start_epoch", start_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(
                    f"CosineAnnealing's {name} must be an integer >= 0. "
                    f"Received: {name}={value!r}."
                )
        self.epochs = epochs
        self.start_epoch = start_epoch
        self._base: float | None = None
        self._steps: int | None = None
        self._epoch = 0
        self._seen = 0
        self._factor = 1.0

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Reads the rate to anneal and the steps per epoch, if known."""
        rate = _compat.configured_learning_rate(self.model.optimizer)
        self._base = _float_rate(rate)
        self._steps = (self.params or {}).get("steps")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Starts counting the epoch's steps."""
        self._epoch, self._seen = epoch, 0

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Sets the rate of this step."""
        done = self._epoch - self.start_epoch
        if self._base is None or done < 0 or not self.epochs:
            return
        if self._steps:
            progress = (done * self._steps + batch) / (self.epochs * self._steps)
        else:
            progress = done / self.epochs
        self._factor = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        self.model.optimizer.learning_rate = self._base * self._factor

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Counts the epoch's steps."""
        self._seen += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Brings the nominal rate back and logs the factor reached."""
        if self._base is None or epoch < self.start_epoch:
            return
        if not self._steps and self._seen:
            self._steps = self._seen  # learnt from the first annealed epoch
        if logs is not None:
            logs["lr_factor"] = self._factor
        self.model.optimizer.learning_rate = self._base

    def on_train_end(self, logs: dict | None = None) -> None:
        """Leaves the optimizer at its nominal rate."""
        if self._base is not None:
            self.model.optimizer.learning_rate = self._base

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {"epochs": self.epochs, "start_epoch": self.start_epoch}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CosineAnnealing:
        """The callback `get_config` describes."""
        return cls(**config)


def _float_rate(rate: Any) -> float | None:
    """A configured rate as a float, or None when a schedule object sets it."""
    if not isinstance(rate, keras.Variable):
        return None
    return float(keras.ops.convert_to_numpy(rate))
