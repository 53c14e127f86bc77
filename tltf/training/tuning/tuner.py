"""`TransferTuner` and its factories: any KerasTuner oracle on a hypermodel.

`make_oracle` makes an oracle by name (Bayesian, random, Hyperband);
`default_objective` picks what a search optimizes from the head's task.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_tuner as kt

from tltf import _compat, arguments
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError

ORACLES = ("bayesian", "random", "hyperband")


@_compat.tuner_build_hook
class TransferTuner(kt.Tuner):
    """A KerasTuner ``Tuner`` that runs any oracle on a hypermodel.

    It adds what ``kt.Hyperband`` adds to ``kt.Tuner`` (epoch budgets and
    warm starts from earlier brackets), so the Hyperband, random-search,
    Bayesian and grid oracles all work with one tuner class.
    """

    def __init__(self, oracle: kt.Oracle, hypermodel: Any = None, **kwargs: Any):
        if not isinstance(oracle, kt.Oracle):
            raise ConfigError(
                "TransferTuner needs a keras_tuner Oracle (tltf.training.tuning."
                f"make_oracle('random', ...)). Received: oracle={oracle!r:.80}"
            )
        if not (isinstance(hypermodel, kt.HyperModel) or callable(hypermodel)):
            raise ConfigError(
                "TransferTuner needs a hypermodel: a tltf.TransferHyperModel (or "
                "any keras_tuner HyperModel, or a build(hp) function). Received: "
                f"hypermodel={hypermodel!r:.80}"
            )
        super().__init__(oracle, hypermodel, **kwargs)

    def run_trial(self, trial: kt.engine.trial.Trial, *args: Any, **kwargs: Any):
        values = trial.hyperparameters.values
        if "tuner/epochs" in values:
            kwargs["epochs"] = values["tuner/epochs"]
            kwargs["initial_epoch"] = values["tuner/initial_epoch"]
        return super().run_trial(trial, *args, **kwargs)

    def build_trial_model(self, hp: kt.HyperParameters) -> keras.Model:
        """KerasTuner's build of a trial's model, warm-started from the trial
        it continues (a Hyperband bracket's ``tuner/trial_id``)."""
        model = _compat.tuner_build(self, hp)
        if "tuner/trial_id" in hp.values:
            path = _compat.tuner_checkpoint_path(self, hp.values["tuner/trial_id"])
            with strategy_scope(self.distribution_strategy):
                model.load_weights(path)
        return model


# --- factories ---


def default_objective(task: str, has_validation: bool) -> kt.Objective:
    """Validation accuracy for classification with validation data, else loss.

    Args:
        task: The head's task.
        has_validation: Whether the search has validation data.

    Returns:
        ``val_accuracy`` (max), or ``val_loss`` / ``loss`` (min).
    """
    if has_validation and task in ("multiclass", "multilabel"):
        return kt.Objective("val_accuracy", "max")
    return kt.Objective("val_loss" if has_validation else "loss", "min")


def make_oracle(
    oracle: str | kt.Oracle,
    *,
    objective: str | kt.Objective,
    max_trials: int,
    max_epochs: int,
    seed: int | None = None,
) -> kt.Oracle:
    """An oracle by name (``"bayesian"``, ``"random"``, ``"hyperband"``).

    Args:
        oracle: A name, or a ready ``kt.Oracle`` (returned as is).
        objective: What to optimize.
        max_trials: Most trials; also caps Hyperband's brackets.
        max_epochs: Hyperband's largest epoch budget.
        seed: Random seed of the oracle.

    Returns:
        The oracle.
    """
    if isinstance(oracle, kt.Oracle):
        return oracle
    arguments.count("max_trials", max_trials)
    if oracle == "bayesian":
        try:
            return kt.oracles.BayesianOptimizationOracle(
                objective, max_trials, seed=seed
            )
        except ImportError as err:
            raise ConfigError(
                "The Bayesian oracle needs scikit-learn: pip install scikit-learn, "
                f"or pass oracle='random'. ({err})"
            ) from err
    if oracle == "random":
        return kt.oracles.RandomSearchOracle(objective, max_trials, seed=seed)
    if oracle == "hyperband":
        made = kt.oracles.HyperbandOracle(objective, max_epochs=max_epochs, seed=seed)
        made.max_trials = max_trials
        return made
    raise ConfigError(
        f"Unknown oracle {oracle!r}; use one of {ORACLES} or a keras_tuner "
        f"Oracle. Received: oracle={oracle!r}"
    )
