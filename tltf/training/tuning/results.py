"""What a learning-rate search returns: `TuningResult` and its `TrialRecord` rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt


@dataclasses.dataclass
class TrialRecord:
    """One trial of a search: its values, score and status."""

    trial_id: str
    hyperparameters: dict[str, Any]
    score: float | None
    status: str


@dataclasses.dataclass
class TuningResult:
    """The outcome of `tune_learning_rate`.

    Attributes:
        best_hyperparameters: Values of the best trial, e.g.
            ``{"head_learning_rate": 0.003}``.
        best_model: The best configuration rebuilt through the builder:
            compiled at the best head rate, base frozen, base weights the
            search's shared ones. With ``best_model_weights == "trained"`` its
            head (and any groups the trial fine-tuned) hold the weights of the
            best trial's best epoch; with ``"fresh"`` the head is untrained.
        best_model_weights: ``"trained"`` or ``"fresh"``.
        trials: Every trial of the project (earlier runs too), best first.
        objective: Name of the metric the search optimized.
        direction: ``"max"`` or ``"min"``.
        new_trials: Number of trials run by this call.
        base_batches: Batches the base ran in this call.
        base_batches_without_reuse: Batches it would have run without reusing
            features across epochs and trials.
        project_dir: The search's folder (resume by calling again with it).
        tuner: The KerasTuner tuner, for anything else.
    """

    best_hyperparameters: dict[str, Any]
    best_model: keras.Model
    best_model_weights: str
    trials: list[TrialRecord]
    objective: str
    direction: str
    new_trials: int
    base_batches: int
    base_batches_without_reuse: int
    project_dir: Path
    tuner: kt.Tuner

    @property
    def best_learning_rate(self) -> float:
        """The best head learning rate."""
        return float(self.best_hyperparameters["head_learning_rate"])

    def summary(self) -> str:
        """A table of trials and what feature reuse saved, as text."""
        names = list(self.best_hyperparameters)
        widths = [max(len(n), 9) for n in names]
        lines = [
            f"Learning-rate search in {self.project_dir}: {len(self.trials)} "
            f"trials ({self.new_trials} new), objective {self.objective} "
            f"({self.direction})",
            "  ".join(
                ["trial", *(n.rjust(w) for n, w in zip(names, widths))]
                + ["   score", "status"]
            ),
        ]
        for t in self.trials:
            values = [
                _fmt(t.hyperparameters.get(n)).rjust(w) for n, w in zip(names, widths)
            ]
            score = "-" if t.score is None else f"{t.score:.4f}"
            lines.append(
                "  ".join([f"{t.trial_id:>5}", *values, f"{score:>8}", t.status])
            )
        best = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_hyperparameters.items())
        return "\n".join(
            [*lines, f"Best: {best}", self._model_line(), self._work_line()]
        )

    def _model_line(self) -> str:
        if self.best_model_weights == "trained":
            return (
                "Best model: weights of the best trial's best epoch (trained "
                "head; base = the weights shared by all trials, fine-tuned if "
                "that epoch was a fine-tuning one)."
            )
        return "Best model: fresh head; base weights shared by all trials."

    def _work_line(self) -> str:
        saved = self.base_batches_without_reuse - self.base_batches
        share = saved / self.base_batches_without_reuse if saved > 0 else 0.0
        return (
            f"Base forward passes this run: {self.base_batches} batches (without "
            f"feature reuse: {self.base_batches_without_reuse}; {share:.0%} saved)."
        )

    def __str__(self) -> str:
        return self.summary()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2e}" if value and abs(value) < 1e-2 else f"{value:.4g}"
    return "-" if value is None else str(value)
