"""`tune_learning_rate`: one call that searches a model's learning rate(s).

It wraps `TransferHyperModel` and `TransferTuner` (`hypermodel.py`, `tuner.py`):
picks the objective from the task, shares one set of base weights across
all trials (saved in the project folder, so a resumed search keeps them),
resumes interrupted searches without re-running finished trials, and
returns a `TuningResult` with the best values, a table of trials, the
rebuilt best model and how much work feature reuse saved.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tltf import _compat, arguments
from tltf.data.base import LoadedData, class_names_of
from tltf.data.inputs import as_batched, as_labels, as_list
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError, DataError, TltfError
from tltf.files import atomic_path, write_json
from tltf.training.tuning.hypermodel import TransferHyperModel
from tltf.training.tuning.results import TrialRecord, TuningResult
from tltf.training.tuning.tuner import TransferTuner, default_objective, make_oracle

BASE_WEIGHTS_FILE = "shared_base.npz"
DATA_FILE = "data.json"


def tune_learning_rate(
    model: str | keras.Model | os.PathLike | TransferHyperModel,
    data: LoadedData | tf.data.Dataset,
    validation: tf.data.Dataset | None = None,
    *,
    num_classes: int | None = None,
    oracle: str | kt.Oracle = "bayesian",
    max_trials: int = 10,
    epochs: int = 3,
    fine_tune_epochs: int | None = None,
    objective: str | kt.Objective | None = None,
    directory: str | os.PathLike = "tltf_tuning",
    project_name: str = "learning_rate",
    overwrite: bool = False,
    distribution_strategy: tf.distribute.Strategy | str | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    seed: int | None = None,
    verbose: int = 1,
    **hypermodel_args: Any,
) -> TuningResult:
    """Searches the learning rate(s) of a transfer-learning model.

    Each trial builds the model through the public builder with the picked
    arguments, trains the head for ``epochs`` (on base features computed once
    per search when the base is frozen and nothing random runs before the
    head) and, if a fine-tuning rate is searched, fine-tunes for
    ``fine_tune_epochs``. Calling again with the same ``directory`` and
    ``project_name`` resumes: finished trials are not run again, and a larger
    ``max_trials`` adds trials. A resumed project keeps its saved search space
    and base weights; to change ranges or backbone, use a new
    ``project_name`` or ``overwrite=True``.

    Args:
        model: A backbone (registry name, ``keras.Model``, ``.keras`` path)
            or a ready `TransferHyperModel`.
        data: A `tltf.data.LoadedData`, or the batched training dataset.
        validation: Validation dataset (default: ``data.validation``).
        num_classes: Needed when ``data`` is a dataset and ``model`` a backbone.
        oracle: ``"bayesian"``, ``"random"``, ``"hyperband"`` or a
            ``kt.Oracle``.
        max_trials: Total trials of the project.
        epochs: Head-stage epochs per trial (sets the hypermodel's
            ``head_epochs``).
        fine_tune_epochs: Fine-tuning epochs per trial; default ``epochs``
            when ``fine_tune_learning_rate`` is searched, else 0.
        objective: Metric to optimize; default `default_objective`.
        directory: Folder of the search's files.
        project_name: Sub-folder of this search.
        overwrite: Start afresh instead of resuming.
        distribution_strategy: A ``tf.distribute.Strategy`` or a kind for
            `tltf.distribute.get_strategy` (``"auto"``); trials run in it.
        callbacks: Extra Keras callbacks for every trial.
        seed: Seed of the oracle.
        verbose: Verbosity of the search and of ``fit``.
        **hypermodel_args: `TransferHyperModel` arguments: search space
            (``head_learning_rate=(1e-5, 1e-1)``, ``fine_tune_learning_rate``,
            ``unfreeze_groups``, ``dropout``, ``weight_decay``) and builder
            arguments (``weights``, ``input_shape``, ...).

    Returns:
        A `TuningResult`; ``print(result)`` shows the table of trials.

    Raises:
        ConfigError: Bad arguments (``max_trials`` and ``epochs`` are
            integers >= 1), or a resumed project whose base differs.
        TltfError: No trial finished (the first failure is shown).

    Example:
        >>> result = tltf.tune_learning_rate(
        ...     "keras:mobilenet_v2", data, weights=None,
        ...     input_shape=(32, 32, 3), max_trials=4, epochs=2)
        >>> result.best_learning_rate
    """
    arguments.count("max_trials", max_trials)
    arguments.count("epochs", epochs)
    arguments.path("directory", directory)
    if not isinstance(project_name, str) or not project_name.strip():
        raise ConfigError(
            "project_name must be a non-empty string (the search's sub-folder). "
            f"Received: project_name={project_name!r}"
        )
    if fine_tune_epochs is not None:
        arguments.count("fine_tune_epochs", fine_tune_epochs, minimum=0)
    train, validation, num_classes = _split_data(data, validation, num_classes)
    hypermodel = _hypermodel(model, num_classes, hypermodel_args)
    fine = _fine_tune_epochs(hypermodel, fine_tune_epochs, epochs)
    hypermodel.head_epochs = epochs
    strategy = _strategy(distribution_strategy)
    tuner = TransferTuner(
        make_oracle(
            oracle,
            objective=objective
            or default_objective(hypermodel.task, validation is not None),
            max_trials=max_trials,
            max_epochs=epochs + fine,
            seed=seed,
        ),
        hypermodel,
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        distribution_strategy=strategy,
    )
    _share_base_weights(tuner, hypermodel)
    _check_same_data(Path(tuner.project_dir), train, validation, num_classes)
    done_before = set(tuner.oracle.trials)
    counts = hypermodel.base_batches, hypermodel.base_batches_without_reuse
    tuner.search(
        train,
        validation_data=validation,
        epochs=epochs + fine,
        callbacks=as_list(callbacks),
        verbose=verbose,
    )
    return _result(tuner, hypermodel, done_before, counts)


def _split_data(data, validation, num_classes):
    """Batched train and validation data, and the number of classes."""
    names = data.class_names if isinstance(data, LoadedData) else None
    if isinstance(data, LoadedData):
        validation = data.validation if validation is None else validation
    elif isinstance(data, tf.data.Dataset):
        names = class_names_of(data)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        labels = np.asarray(as_labels(data[1]))
        top = int(labels.max()) if labels.size and labels.dtype.kind in "iu" else -1
        num_classes = num_classes or (top + 1 if top >= 0 else None)
        if num_classes is not None and top >= num_classes:
            raise DataError(
                f"The labels go up to {top} but num_classes={num_classes}. Pass "
                f"num_classes={top + 1} or fix the labels."
            )
    else:
        raise ConfigError(
            "data must be a tltf.data.LoadedData, a batched tf.data.Dataset of "
            "(inputs, labels) or an (inputs, labels) tuple. Received: "
            f"{type(data).__name__}"
        )
    if names is not None and num_classes not in (None, len(names)):
        raise DataError(
            f"num_classes={num_classes} but the data has {len(names)} classes "
            f"{names[:5]}. Leave num_classes=None to take the data's."
        )
    num_classes = num_classes or (len(names) if names else None)
    train = as_batched(data, what="data", shuffle=True)
    if validation is not None:
        validation = as_batched(validation, split="validation", what="validation")
    return train, validation, num_classes


def _hypermodel(model, num_classes, args) -> TransferHyperModel:
    if isinstance(model, TransferHyperModel):
        if args:
            raise ConfigError(
                "Give search-space and builder arguments to the TransferHyperModel, "
                f"not to tune_learning_rate. Received: {sorted(args)}"
            )
        return model
    if num_classes is None:
        raise ConfigError(
            "num_classes is needed when data is a dataset: pass num_classes=, or "
            "data as a tltf.data.LoadedData."
        )
    return TransferHyperModel(model, num_classes, **args)


def _fine_tune_epochs(hypermodel, fine_tune_epochs, epochs) -> int:
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1. Received: epochs={epochs!r}")
    if fine_tune_epochs is None:
        return epochs if hypermodel.fine_tunes else 0
    if fine_tune_epochs > 0 and not hypermodel.fine_tunes:
        raise ConfigError(
            "fine_tune_epochs needs a fine-tuning rate to search: pass "
            "fine_tune_learning_rate=(1e-6, 1e-3). Received: "
            f"fine_tune_epochs={fine_tune_epochs!r}"
        )
    return int(fine_tune_epochs)


def _strategy(strategy):
    if strategy is None or isinstance(strategy, tf.distribute.Strategy):
        return strategy
    from tltf.distribute import get_strategy

    return get_strategy(strategy)


def _share_base_weights(tuner: TransferTuner, hypermodel: TransferHyperModel) -> None:
    """Loads the project's shared base weights, or saves them for a resume.

    A resumed project's weights are checked against one build right away, so
    a different backbone fails here with a clear error, not inside a trial.
    """
    path = Path(tuner.project_dir) / BASE_WEIGHTS_FILE
    if path.is_file():
        with np.load(path) as saved:
            hypermodel.base_weights = [
                saved[f"arr_{i}"] for i in range(len(saved.files))
            ]
    if path.is_file() or hypermodel.base_weights is None:
        with strategy_scope(tuner.distribution_strategy):
            hypermodel.build(tuner.oracle.get_space())
    if path.is_file():
        return
    with atomic_path(path) as temp, open(temp, "wb") as handle:
        np.savez(handle, *hypermodel.base_weights)


def _check_same_data(project: Path, train, validation, num_classes) -> None:
    """Refuses to resume a search that was run on other data.

    A resumed search keeps its finished trials, so resuming it on other data
    would return the old data's best model. The project records what it was
    run on (classes, batches, input spec) and a mismatch fails clearly.
    """
    seen = {
        "num_classes": num_classes,
        "train": _describe(train),
        "validation": None if validation is None else _describe(validation),
    }
    path = project / DATA_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        write_json(path, seen)
        return
    if recorded != seen:
        changed = sorted(k for k in seen if recorded.get(k) != seen[k])
        raise ConfigError(
            f"The search in {str(project)!r} was run on other data (its "
            f"{', '.join(changed)} differ), so resuming it would return that "
            "data's results. Pass overwrite=True to start afresh, or another "
            f"directory or project_name. Recorded: {recorded}; now: {seen}"
        )


def _describe(data: tf.data.Dataset) -> dict:
    inputs = tf.nest.flatten(data.element_spec)[0]
    return {
        "batches": int(data.cardinality()),
        "inputs": [inputs.dtype.name, *inputs.shape.as_list()[1:]],
    }


def _result(tuner, hypermodel, done_before, counts) -> TuningResult:
    oracle = tuner.oracle
    best = [t for t in oracle.get_best_trials(1) if t.status == "COMPLETED"]
    if not best:
        failures = [t.message for t in oracle.trials.values() if t.message]
        raise TltfError(
            "No trial of the search finished. First failure:\n"
            + (failures[0] if failures else "(no message)")
        )
    ranked = oracle.get_best_trials(len(oracle.trials))
    ranked += [t for t in oracle.trials.values() if t not in ranked]
    model, trained = _best_model(tuner, hypermodel, best[0])
    return TuningResult(
        best_hyperparameters=_values(best[0]),
        best_model=model,
        best_model_weights="trained" if trained else "fresh",
        trials=[
            TrialRecord(t.trial_id, _values(t), t.score, str(t.status)) for t in ranked
        ],
        objective=oracle.objective.name,
        direction=oracle.objective.direction,
        new_trials=len(set(oracle.trials) - done_before),
        base_batches=hypermodel.base_batches - counts[0],
        base_batches_without_reuse=hypermodel.base_batches_without_reuse - counts[1],
        project_dir=Path(tuner.project_dir),
        tuner=tuner,
    )


def _best_model(tuner, hypermodel, trial) -> tuple[keras.Model, bool]:
    """The best trial's model: its checkpoint if saved, else freshly built."""
    if os.path.exists(_compat.tuner_checkpoint_path(tuner, trial.trial_id)):
        with warnings.catch_warnings():
            # The checkpoint holds the head-stage optimizer's slots; the
            # rebuilt model starts with a fresh optimizer on purpose.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            return tuner.load_model(trial), True
    with strategy_scope(tuner.distribution_strategy):
        return hypermodel.build(trial.hyperparameters), False


def _values(trial) -> dict[str, Any]:
    return {
        k: v
        for k, v in trial.hyperparameters.values.items()
        if not k.startswith("tuner/")
    }
