"""What `tltf.TransferModel` checks while it trains: batches seen, a finite loss.

Keras trains on, and returns, whatever happens: a negative learning rate
climbs the loss, an epoch that got no batch (every image of a folder failed
to decode, an empty dataset) ends with an empty ``History``, and NaN or inf
inputs train to ``loss: nan`` epoch after epoch. `FitChecks` stops the first
before any step and the others at the end of the first such epoch, with one
line that says what happened and what to do.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from tltf.errors import DataError, TrainingError

__all__ = ["FitChecks"]


class FitChecks(keras.callbacks.Callback):
    """Fails a fit with a negative learning rate, and an epoch that trained on
    no batch or whose loss is not finite.

    Raises:
        TrainingError: The optimizer's rate is negative or NaN (when training
            begins), or the epoch's loss is NaN or infinite (at its end).
        DataError: The epoch got no batch (at its end).
    """

    #: Counting batches needs no logs: Keras may call it off the main thread.
    async_safe = True

    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    def on_train_begin(self, logs: dict | None = None) -> None:
        rate = _learning_rate(self.model)
        if isinstance(rate, float) and not rate >= 0:  # NaN fails too.
            raise TrainingError(
                f"The optimizer's learning rate is {rate}: a negative rate climbs "
                "the loss instead of lowering it. Compile with a rate > 0 (e.g. "
                "tltf.compile_model(model, learning_rate=1e-3))."
            )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.batches = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.batches += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.batches:
            raise DataError(
                f"Epoch {epoch + 1} got no training batch: the training data is "
                "empty, or every example was left out (an image folder whose "
                "files all failed to decode: see the warning above and "
                "data.skipped). Check the data."
            )
        loss = (logs or {}).get("loss")
        if self.model.stop_training:
            return  # A callback stopped training (e.g. on divergence) on purpose.
        if loss is not None and not math.isfinite(float(np.mean(loss))):
            rate = _learning_rate(self.model)
            raise TrainingError(
                f"The training loss became {float(np.mean(loss))} in epoch "
                f"{epoch + 1}: the inputs or labels hold NaN or inf values, or "
                f"the learning rate ({rate}) is too high for this model. Check "
                "the data (np.isfinite) or lower the learning rate."
            )


def _learning_rate(model: keras.Model) -> Any:
    """The optimizer's current rate as a float; "unknown" if it has none."""
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # noqa: BLE001 - no optimizer, or a rate of another form.
        return "unknown"
