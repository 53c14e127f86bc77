"""What training prints: Keras progress bars on a terminal, plain lines elsewhere.

- `resolve_verbose`: ``verbose="auto"`` is Keras' bar (``1``) on a terminal and
  one plain line per epoch (``2``) when the output goes to a file or a pipe,
  where the bar's ANSI codes and backspaces would be noise.
- `EpochProgbar`: Keras' progress bar that numbers the epochs of a stage as
  the user counts them (``Epoch 1/3`` for ``epochs=3`` after a frozen stage,
  not ``Epoch 13/15``), and labels frozen-base epochs as such.
- `StageLine`: a whole stage (the head trained on cached features for up to
  50 epochs) as one line: updated in place on a terminal, written once
  otherwise.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import keras

from tltf import _compat

__all__ = ["EpochProgbar", "StageLine", "resolve_verbose"]


def resolve_verbose(verbose: Any) -> Any:
    """``1`` for ``"auto"`` on a terminal, ``2`` for ``"auto"`` elsewhere.

    Args:
        verbose: A Keras ``verbose`` value.

    Returns:
        ``verbose`` itself unless it is ``"auto"``.
    """
    if verbose != "auto":
        return verbose
    return 1 if _on_terminal() else 2


class EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, epochs numbered from the end of a frozen stage.

    Args:
        frozen: Epochs (from epoch 0 of the ``fit``) that train the head with
            the base frozen. Shown as ``Head only (base frozen): epoch k/n``
            when this ``fit`` runs them, else not counted: the epochs after
            them are ``Epoch 1/N``.
        shown: Whether this ``fit`` runs the frozen epochs (False when they
            ran before, in another call).
    """

    def __init__(self, frozen: int = 0, *, shown: bool = True) -> None:
        super().__init__()
        self.frozen, self.shown = int(frozen), shown

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.total = self.epochs

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        _compat.start_progbar(self)  # A new bar, as Keras' on_epoch_begin.
        if not self.verbose:
            return
        if epoch < self.frozen and self.shown:
            print(f"Head only (base frozen): epoch {epoch + 1}/{self.frozen}")
        elif self.total - self.frozen > 1 or self.frozen:
            print(f"Epoch {epoch - self.frozen + 1}/{self.total - self.frozen}")


class StageLine(keras.callbacks.Callback):
    """Shows a training stage as one line of progress.

    On a terminal the line is rewritten after every epoch; elsewhere it is
    written once, when the stage ends. It names the stage, the epochs run
    (of at most ``max_epochs``) and the logs of the last epoch, or with
    ``monitor`` of the best epoch by it (the one early stopping keeps).

    Args:
        label: The stage, e.g. ``"Head only (base frozen)"``.
        max_epochs: The most epochs the stage may run.
        monitor: The log that picks the best epoch (lower is better); None
            for the last epoch.
    """

    def __init__(self, label: str, max_epochs: int, monitor: str | None = None) -> None:
        super().__init__()
        self.label, self.max_epochs, self.monitor = label, max_epochs, monitor
        self.epochs: list[dict[str, float]] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epochs = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epochs.append({k: float(v) for k, v in (logs or {}).items()})
        if _on_terminal():
            sys.stdout.write("\r" + self.line())
            sys.stdout.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        sys.stdout.write(("\r" if _on_terminal() else "") + self.line() + "\n")
        sys.stdout.flush()

    def line(self) -> str:
        """The stage's line: epochs run and the best epoch's logs."""
        n = len(self.epochs)
        text = f"{self.label}: {n}/{self.max_epochs} epochs"
        shown = self._best() if self.monitor else (n - 1 if n else None)
        if shown is None:
            return text
        logs = " - ".join(f"{k}: {v:.4f}" for k, v in self.epochs[shown].items())
        which = f"best epoch {shown + 1}" if self.monitor else "last epoch"
        return f"{text}, {which}: {logs}"

    def _best(self) -> int | None:
        scores = [e.get(self.monitor, math.nan) for e in self.epochs]
        finite = [i for i, s in enumerate(scores) if math.isfinite(s)]
        return min(finite, key=scores.__getitem__) if finite else None


def _on_terminal() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())
