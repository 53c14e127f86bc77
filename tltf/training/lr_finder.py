"""The learning-rate range test (fastai's ``lr_find``), for any compiled model.

`find_learning_rate` trains for up to ``num_steps`` batches while the learning
rate grows exponentially from ``min_lr`` to ``max_lr``, records the loss of
every batch, smooths it (exponential moving average with bias correction,
``beta=0.98``, as fastai does) and stops early once the smoothed loss exceeds
``diverge`` times its minimum. Afterwards the model's weights and its
optimizer's state (slots, step count, learning rate) are put back exactly, so
the test can run before real training.

The suggested rate is fastai's ``"valley"`` by default: the rate halfway along
the longest run of falling smoothed loss (fastai's start + 1/3 + 1/6 of it).
``"steep"`` (the rate where the smoothed loss falls fastest per unit of log
rate) and ``"minimum"`` (a tenth of the rate at the lowest loss) are also
computed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import _compat, arguments
from tltf.data.base import LoadedData
from tltf.data.inputs import as_batched
from tltf.errors import ConfigError, DataError
from tltf.files import atomic_path
from tltf.model import check_data, require_model
from tltf.traced import match_optimizer

SUGGESTIONS = ("valley", "steep", "minimum")
#: A smoothed loss that stays within this share of its first value over the
#: whole sweep did not move: batch-to-batch noise alone moves it ~1-2%.
FLAT_CHANGE = 0.05

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LRFinderResult:
    """What a learning-rate range test measured.

    Attributes:
        learning_rates: Rate used at each recorded step.
        losses: Raw training loss of each step.
        smoothed_losses: Bias-corrected moving average of ``losses``.
        suggestion: The suggested learning rate (by ``method``).
        method: ``"valley"``, ``"steep"`` or ``"minimum"``.
        suggestions: All three suggestions, by name (None if not computable).
        stopped_early: True if the sweep stopped because the loss diverged.
        plot_path: Where the loss-versus-rate PNG was saved, or None.
    """

    learning_rates: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    suggestion: float
    method: str
    suggestions: dict[str, float | None]
    stopped_early: bool
    plot_path: Path | None = None

    def plot(self, path: str | os.PathLike) -> Path:
        """Saves the smoothed loss against the learning rate (log axis) as PNG.

        Args:
            path: File to write; its folder is created if needed.

        Returns:
            The path written.
        """
        check_plot_path(path)
        return save_plot(self, path)

    def __str__(self) -> str:
        lines = [
            f"Learning-rate range test: {len(self.losses)} steps, "
            f"{self.learning_rates[0]:.2e} -> {self.learning_rates[-1]:.2e}"
            + (" (stopped: loss diverged)" if self.stopped_early else ""),
            f"Suggested learning rate ({self.method}): {self.suggestion:.2e}",
        ]
        for name, value in self.suggestions.items():
            if value is not None and name != self.method:
                lines.append(f"  {name}: {value:.2e}")
        return "\n".join(lines)


@keras.saving.register_keras_serializable(package="tltf")
class LearningRateSweep(keras.callbacks.Callback):
    """Sets an exponentially growing rate per batch and records the loss.

    Before each batch it resets the model's metrics, so the loss logged after
    the batch is that batch's loss, not the running mean of the epoch.

    Args:
        min_lr: First learning rate.
        max_lr: Last learning rate.
        num_steps: Number of steps from ``min_lr`` to ``max_lr``.
        beta: Smoothing factor of the moving average of the loss.
        diverge: Stop when the smoothed loss exceeds this many times its
            minimum (or is not finite).
    """

    def __init__(
        self,
        min_lr: float = 1e-7,
        max_lr: float = 1.0,
        num_steps: int = 100,
        beta: float = 0.98,
        diverge: float = 4.0,
    ) -> None:
        super().__init__()
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.num_steps = int(num_steps)
        self.beta = float(beta)
        self.diverge = float(diverge)
        self.learning_rates: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.stopped_early = False
        self._average = 0.0

    def rate(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        fraction = step / max(self.num_steps - 1, 1)
        return self.min_lr * (self.max_lr / self.min_lr) ** fraction

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate = self.rate(batch)
        for metric in self.model.metrics:
            metric.reset_state()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", float("nan")))
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** (len(self.losses) + 1))
        self.learning_rates.append(self.rate(batch))
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        best = min(self.smoothed)
        if not math.isfinite(smoothed) or smoothed > self.diverge * best:
            self.stopped_early = True
            self.model.stop_training = True

    def get_config(self) -> dict[str, Any]:
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "num_steps": self.num_steps,
            "beta": self.beta,
            "diverge": self.diverge,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LearningRateSweep:
        return cls(**config)


def find_learning_rate(
    model: keras.Model,
    data: tf.data.Dataset | LoadedData | tuple,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_steps: int = 200,
    method: str = "valley",
    beta: float = 0.98,
    diverge: float = 4.0,
    batch_size: int = 32,
    plot_path: str | os.PathLike | None = "lr_finder.png",
    verbose: int = 0,
) -> LRFinderResult:
    """Runs a learning-rate range test and suggests a learning rate.

    The model trains on ``data`` (repeated as needed) for up to ``num_steps``
    batches with a learning rate growing exponentially from ``min_lr`` to
    ``max_lr``, stopping early when the loss diverges. The model's weights and
    optimizer state are restored afterwards: the model is exactly as before.

    Args:
        model: A compiled model whose optimizer has a float learning rate
            (e.g. from a tltf builder). Trainable flags are used as they are:
            freeze or unfreeze first to test the stage you are about to run.
        data: Batched ``(inputs, labels)`` dataset, a `tltf.data.LoadedData`
            (its ``train`` split is used) or an ``(x, y)`` tuple of arrays.
        min_lr: Smallest rate tried.
        max_lr: Largest rate tried.
        num_steps: Most batches to train (fastai uses 100; a few hundred
            give a smoother curve).
        method: Which suggestion to return: ``"valley"`` (default, fastai's
            default), ``"steep"`` or ``"minimum"``.
        beta: Smoothing of the loss (0 = none).
        diverge: Stop when the smoothed loss exceeds this multiple of its
            minimum.
        batch_size: Batch size for an ``(x, y)`` tuple.
        plot_path: Where to save the loss-versus-rate PNG; None for no file.
        verbose: Keras verbosity of the sweep.

    Returns:
        An `LRFinderResult` with the curve and the suggestion.

    Raises:
        ConfigError: Uncompiled model, a learning-rate schedule, bad bounds,
            or a loss that diverged before enough steps were recorded.
        DataError: ``data`` yields no batches.

    Example:
        >>> result = tltf.find_learning_rate(model, data.train, num_steps=50,
        ...                                  plot_path=None)
        >>> model.optimizer.learning_rate.assign(result.suggestion)
    """
    require_model(model)
    _check_arguments(model, min_lr, max_lr, num_steps, method, diverge)
    _check_options(beta, batch_size, plot_path)
    check_data(model, data)
    dataset = as_batched(data, batch_size)
    sweep = LearningRateSweep(min_lr, max_lr, num_steps, beta=beta, diverge=diverge)
    with _restored(model):
        model.fit(
            dataset.repeat(),
            epochs=1,
            steps_per_epoch=num_steps,
            callbacks=[sweep],
            verbose=verbose,
            shuffle=False,
        )
    return _result(sweep, method, plot_path)


def suggest(
    learning_rates: list[float], losses: list[float], num_steps: int
) -> dict[str, float | None]:
    """Computes fastai's three suggestions from a (smoothed) loss curve.

    The first tenth of the planned steps and any steps after a non-finite
    loss are left out, as fastai does.

    Args:
        learning_rates: Rate of each step.
        losses: Smoothed loss of each step.
        num_steps: Planned number of steps.

    Returns:
        ``{"valley": ..., "steep": ..., "minimum": ...}``; None where the curve
        is too short to say.
    """
    lrs = np.asarray(learning_rates, "float64")[num_steps // 10 :]
    loss = np.asarray(losses, "float64")[num_steps // 10 :]
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        lrs, loss = lrs[: bad[0]], loss[: bad[0]]
    if loss.size < 2:
        return dict.fromkeys(SUGGESTIONS)
    slopes = np.diff(loss) / np.diff(np.log(lrs))
    return {
        "valley": float(lrs[_valley_index(loss)]),
        "steep": float(lrs[int(np.argmin(slopes))]),
        "minimum": float(lrs[int(np.argmin(loss))] / 10.0),
    }


def _valley_index(loss: np.ndarray) -> int:
    """fastai's valley: a point in the longest decreasing run of the curve."""
    n = len(loss)
    lengths = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[end] < lengths[i]:
                end = i
                start = end - lengths[end]
    sections = (end - start) / 3
    return start + int(sections) + int(sections / 2)


def save_plot(result: LRFinderResult, path: str | os.PathLike) -> Path:
    """Writes the loss-versus-rate plot of ``result`` to ``path`` as PNG.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend
    change). The file is written to a temporary name and then renamed, so a
    failed write leaves no partial file.

    Args:
        result: A range-test result.
        path: Destination ``.png`` file.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot(result.learning_rates, result.losses, alpha=0.3, label="loss")
    axes.plot(result.learning_rates, result.smoothed_losses, label="smoothed")
    axes.axvline(
        result.suggestion,
        color="red",
        linestyle="--",
        label=f"{result.method}: {result.suggestion:.1e}",
    )
    axes.set_xscale("log")
    axes.set_xlabel("learning rate")
    axes.set_ylabel("loss")
    axes.legend()
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png")
    return path


class _restored:
    """Context manager that puts back a model's weights and optimizer state."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model

    def __enter__(self) -> None:
        match_optimizer(self.model)  # The one fit will use: built, on these.
        model, optimizer = self.model, self.model.optimizer
        self.weights = [np.array(v) for v in model.weights]
        self.slots = [np.array(v) for v in optimizer.variables]
        self.history = getattr(model, "history", None)

    def __exit__(self, *exc: object) -> None:
        model, optimizer = self.model, self.model.optimizer
        for variable, value in zip(model.weights, self.weights):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, self.slots):
            variable.assign(value)
        if self.history is not None:
            model.history = self.history


def _check_arguments(model, min_lr, max_lr, num_steps, method, diverge) -> None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ConfigError(
            f"find_learning_rate needs a compiled model; '{model.name}' is not "
            "compiled. Compile it first, e.g. tltf.compile_model(model)."
        )
    learning_rate = _compat.configured_learning_rate(optimizer)
    if not isinstance(learning_rate, keras.Variable):
        raise ConfigError(
            "find_learning_rate sets the learning rate step by step, so the "
            "optimizer needs a float learning rate, not a schedule. Compile "
            "with e.g. keras.optimizers.Adam(1e-3) for the test. Received: "
            f"learning_rate={learning_rate!r}"
        )
    if not arguments.rate("min_lr", min_lr) < arguments.rate("max_lr", max_lr):
        raise ConfigError(
            f"Need 0 < min_lr < max_lr. Received: min_lr={min_lr!r}, max_lr={max_lr!r}"
        )
    arguments.count("num_steps (at least 10 for a usable curve)", num_steps, minimum=10)
    if method not in SUGGESTIONS:
        raise ConfigError(f"Unknown method {method!r}; use one of {SUGGESTIONS}.")
    if arguments.positive_number("diverge", diverge) <= 1:
        raise ConfigError(f"diverge must be > 1. Received: {diverge!r}")


def _check_options(beta: Any, batch_size: Any, plot_path: Any) -> None:
    arguments.fraction("beta", beta)
    arguments.count("batch_size", batch_size)
    if plot_path is not None:
        check_plot_path(plot_path, "plot_path")


def check_plot_path(path: Any, name: str = "path") -> None:
    """Fails clearly when the plot's ``path`` is not a path, or is a folder."""
    if arguments.path(name, path).is_dir():
        raise ConfigError(
            f"{name} {str(path)!r} is a folder; pass a file path such as "
            f"'{Path(path) / 'lr_finder.png'}'."
        )


def _result(sweep: LearningRateSweep, method: str, plot_path) -> LRFinderResult:
    if not sweep.losses:
        raise DataError(
            "The data yielded no batches, so no learning rate was tried. Pass a "
            "non-empty batched dataset of (inputs, labels)."
        )
    suggestions = suggest(sweep.learning_rates, sweep.smoothed, sweep.num_steps)
    if suggestions[method] is None:
        raise ConfigError(
            f"The loss diverged after {len(sweep.losses)} of {sweep.num_steps} "
            f"steps (rate {sweep.learning_rates[-1]:.2e}), too early to suggest "
            "a rate. Lower min_lr or raise num_steps. Received: "
            f"min_lr={sweep.min_lr!r}"
        )
    result = LRFinderResult(
        learning_rates=sweep.learning_rates,
        losses=sweep.losses,
        smoothed_losses=sweep.smoothed,
        suggestion=suggestions[method],
        method=method,
        suggestions=suggestions,
        stopped_early=sweep.stopped_early,
    )
    _warn_if_flat(sweep)
    if plot_path is not None:
        result.plot_path = save_plot(result, plot_path)
    return result


def _warn_if_flat(sweep: LearningRateSweep) -> None:
    """Warns when the loss hardly moved: then no rate is better than another."""
    smoothed = np.asarray(sweep.smoothed, "float64")
    smoothed = smoothed[np.isfinite(smoothed)]
    if smoothed.size < 2:
        return
    change = np.max(np.abs(smoothed - smoothed[0])) / max(abs(smoothed[0]), 1e-12)
    if change < FLAT_CHANGE:
        logger.warning(
            "The loss did not move over the range test (within %.2g%% of its "
            "first value between rates %.2e and %.2e), so the suggested rate "
            "means nothing. Check that the model "
            "has trainable weights that reach the loss, that the labels fit the "
            "data, and try a wider range (max_lr=).",
            100 * change,
            sweep.learning_rates[0],
            sweep.learning_rates[-1],
        )
