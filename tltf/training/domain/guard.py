"""`CollapseGuard`: stops an adaptation that collapsed, and keeps what it had.

Aligning two domains can be won without learning anything: when every
example's features become alike, the discriminator is at chance and CORAL's
and MMD's distances are 0, while the classifier can only guess. An
adaptation weight too large for the model does this within a few epochs
(``benchmarks/domain_adaptation/run.py``: MMD at weight 20 on the digits shift,
the task loss back at ln 10 by epoch 4 or 7, source accuracy at 10%), and
the model does not recover: dead or saturated units get no gradient.
`adapt_domain` runs this guard with every adaptation, so such a run ends
with the weights of its best healthy epoch and a warning that says what to
change, instead of returning a model that guesses.
"""

from __future__ import annotations

import math
import warnings

import keras

#: Collapsed features: an epoch's ``feature_spread`` at or below this share
#: of the largest so far (dead units drop it to 0; healthy adaptations seen
#: in the benchmark and tests stayed above a fifth of it).
SPREAD_SHARE = 1e-3
#: A task back at chance: the epoch's task loss at or above this share of a
#: guess's loss, after some epoch had reached `LEARNT_SHARE` of it.
CHANCE_SHARE = 0.95
LEARNT_SHARE = 0.75


def chance_loss(task: str, num_outputs: int) -> float | None:
    """The cross-entropy of a uniform guess (None when there is none)."""
    if task == "multiclass":
        return math.log(num_outputs)
    if task == "multilabel":
        return math.log(2.0)
    return None


class CollapseGuard(keras.callbacks.Callback):
    """Stops training when the adaptation collapsed; restores its best epoch.

    An epoch counts as collapsed when its ``feature_spread`` log (the share
    of the aligned features' mean square that varies from example to
    example, `tltf.training.domain.step.feature_spread`) is not finite or
    has fallen to `SPREAD_SHARE` of its largest, or when its
    ``task_loss`` is back at `CHANCE_SHARE` of a guess's loss after an
    earlier epoch had reached `LEARNT_SHARE` of it. The guard keeps a copy of the
    weights of the healthy epoch with the lowest task loss (the one that
    did the task best); on a collapse it stops training, puts that copy
    back and warns.

    Args:
        weight: The adaptation weight in use (named in the warning).
        chance: The task loss of a uniform guess (`chance_loss`), or None
            to watch the features only.

    Attributes:
        collapsed_epoch: The epoch (0-based) that collapsed, or None.
        restored_epoch: The epoch whose weights were put back, or None.
    """

    def __init__(self, weight: float, chance: float | None = None) -> None:
        super().__init__()
        self.weight = float(weight)
        self.chance = chance
        self.collapsed_epoch: int | None = None
        self.restored_epoch: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._largest_spread = 0.0
        self._lowest_task = math.inf
        self._best: list | None = None
        self._best_epoch: int | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.collapsed_epoch = self.restored_epoch = None
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if "feature_spread" not in logs:
            return
        spread = float(logs["feature_spread"])
        task = float(logs.get("task_loss", math.nan))
        why = self._collapse(spread, task)
        if why is None:
            self._largest_spread = max(self._largest_spread, spread)
            if self._best is None or task <= self._lowest_task:
                self._best, self._best_epoch = self.model.get_weights(), epoch
            self._lowest_task = min(self._lowest_task, task)
            return
        self.collapsed_epoch = epoch
        self.model.stop_training = True
        if self._best is not None:
            self.model.set_weights(self._best)
            self.restored_epoch = self._best_epoch
        warnings.warn(self._message(epoch, why), stacklevel=2)

    def _collapse(self, spread: float, task: float) -> str | None:
        """Why this epoch collapsed, or None."""
        if not math.isfinite(spread) or spread <= SPREAD_SHARE * self._largest_spread:
            return (
                f"the aligned features became alike (feature_spread {spread:.3g}, "
                f"largest before {self._largest_spread:.3g})"
            )
        if self.chance is None:
            return None
        learnt = self._lowest_task <= LEARNT_SHARE * self.chance
        if learnt and not task < CHANCE_SHARE * self.chance:
            return (
                f"the task loss is back at a guess's ({task:.3g}, a guess "
                f"{self.chance:.3g}; lowest before {self._lowest_task:.3g})"
            )
        return None

    def _message(self, epoch: int, why: str) -> str:
        kept = (
            f"the model has the weights of epoch {self.restored_epoch + 1}, whose "
            f"task loss was the lowest ({self._lowest_task:.3g})"
            if self.restored_epoch is not None
            else "no earlier epoch was healthy, so the model is as it ended"
        )
        return (
            f"adapt_domain stopped after epoch {epoch + 1}: {why}. Aligning the "
            "domains overpowered the task, and the classifier was left guessing. "
            f"Training stopped and {kept}. Adapt again with a smaller weight "
            f"(now weight={self.weight:g}; try a third of it)."
        )
