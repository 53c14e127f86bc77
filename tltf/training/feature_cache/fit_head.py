"""`fit_frozen_head`: train the head on base features computed once.

`fit_frozen_head` is ``model.fit`` for a model whose base is frozen: the base
runs once per dataset (`compute.py`), and the model's own head layers train
on the pooled features, in memory by `head_loop.fit_arrays` (a whole epoch
per compiled call) or from a disk cache by ``fit``. The head
is shared with the model, so after `fit_frozen_head` returns,
``model.predict`` uses the trained head. When caching would be wrong, it
says why and runs ``model.fit``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import keras
import tensorflow as tf

from tltf import arguments
from tltf.data.inputs import as_list, check_finite
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError
from tltf.model import check_classes, check_data, parts_of, require_model
from tltf.parts import require_head
from tltf.progress import StageLine, resolve_verbose
from tltf.training.feature_cache import head_loop
from tltf.training.feature_cache.compute import FeatureSet, base_key, feature_set
from tltf.training.feature_cache.head_compile import (
    callbacks_for,
    compile_like,
    uses_batch_hooks,
)
from tltf.training.feature_cache.safety import cache_blockers
from tltf.training.feature_cache.store import FeatureCache, resolve_cache
from tltf.training.fitting import fit_data
from tltf.training.unfreezing.callback import StagedUnfreezing

logger = logging.getLogger(__name__)

# epochs="auto": train the head until it stops improving, as a probe is
# trained to convergence (an epoch on cached features costs milliseconds).
AUTO_MAX_EPOCHS = 50
AUTO_PATIENCE = 3

__all__ = ["fit_frozen_head", "fit_head_on_features", "head_model", "until_converged"]


def head_model(model: keras.Model) -> keras.Model:
    """A model from pooled features to outputs that shares the model's head.

    Its layers are the head's own hidden, dropout and output layers, so
    training it trains ``model``'s head in place.

    Args:
        model: A model built by a tltf builder.

    Returns:
        An uncompiled functional model ``pooled features -> outputs``.

    Example:
        >>> small = head_model(model)
        >>> small.compile("adam", "sparse_categorical_crossentropy")
        >>> small.fit(compute_features(model, data.train), epochs=3)
    """
    parts = parts_of(model)
    head = require_head(parts)
    inputs = keras.Input(shape=parts.pooled_shape()[1:], name="pooled_features")
    return keras.Model(inputs, head.classify(inputs), name=f"{model.name}_head")


def fit_frozen_head(
    model: keras.Model,
    train_data: tf.data.Dataset | tuple,
    validation_data: tf.data.Dataset | tuple | None = None,
    *,
    epochs: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
    cache: bool | str | os.PathLike | FeatureCache = "auto",
) -> keras.callbacks.History:
    """Trains the head of a frozen-base model on base features computed once.

    Equivalent to ``model.fit(train_data, validation_data=..., epochs=...)``
    for a frozen base, but the base runs once per dataset instead of once per
    epoch. The model's own head layers are trained, with its loss, metrics
    and optimizer (a fresh one of the same class and config if the model's
    optimizer is already built on other variables). Callbacks see ``model``
    (checkpoints save the whole model). When caching would be wrong (see
    `can_cache_features`, or a staged-unfreezing callback), this logs why and
    runs ``model.fit``.

    Args:
        model: A compiled model built by a tltf builder.
        train_data: Batched dataset of ``(inputs, labels)`` or arrays
            ``(x, y)``.
        validation_data: Same for validation, or None.
        epochs: Number of epochs, or ``"auto"``: until the validation loss
            (the training loss without validation data) has not improved for
            3 epochs, at most 50, keeping the best epoch's head.
        callbacks: Keras callbacks.
        verbose: As in ``model.fit``.
        cache: ``"auto"`` (memory while the features fit the cache budget,
            `tltf.data.set_cache_budget`; beyond it they spill to a temporary
            folder and stream from disk, with the same training), True
            (memory), False, a folder path (disk) or a `FeatureCache`.

    Returns:
        The ``History``, with the same keys ``model.fit`` would log.

    Raises:
        ConfigError: The model is not compiled, or ``epochs`` is not an
            integer >= 1 or ``"auto"``.
        DataError: The data does not fit the model, or holds NaN or inf.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> history = fit_frozen_head(model, data.train, data.validation, epochs=5)
    """
    require_model(model)
    if not model.compiled:
        raise ConfigError(
            f"Model '{model.name}' is not compiled. Call tltf.compile_model(model) "
            "or model.compile(...) before fit_frozen_head."
        )
    check_data(model, train_data, "train_data")
    if validation_data is not None:
        check_data(model, validation_data, "validation_data")
    epochs = arguments.count("epochs", epochs, words=("auto",))
    callbacks = as_list(callbacks)
    if epochs == "auto":
        epochs = AUTO_MAX_EPOCHS
        monitor = "val_loss" if validation_data is not None else "loss"
        callbacks.append(until_converged(validation_data is not None))
        if resolve_verbose(verbose):  # One line, not up to 50 epoch bars.
            callbacks.append(StageLine("Head only (base frozen)", epochs, monitor))
            verbose = 0
    reasons = cache_blockers(model) + [
        f"callback {type(cb).__name__} changes the base during training"
        for cb in callbacks
        if isinstance(cb, StagedUnfreezing)
    ]
    if reasons:
        logger.info(
            "Feature caching off (%s); training with model.fit.", "; ".join(reasons)
        )
        fit = dict(epochs=epochs, callbacks=callbacks, verbose=verbose)
        return fit_data(model, train_data, validation_data, **fit)
    # The base's weights are hashed once for both feature sets.
    base = base_key(model) if resolve_cache(cache) is not None else None
    train = feature_set(model, train_data, cache, base=base)
    val = None
    if validation_data is not None:
        val = feature_set(model, validation_data, cache, shuffle=False, base=base)
    for features, what in ((train, "train_data"), (val, "validation_data")):
        if features is not None and features.arrays is not None:
            check_finite(features.arrays[0], f"{what} (the base's features of it)")
            check_classes(model, labels=features.arrays[1], what=what)
    return fit_head_on_features(
        model, train, val, epochs=epochs, callbacks=callbacks, verbose=verbose
    )


def fit_head_on_features(
    model: keras.Model,
    train: FeatureSet,
    val: FeatureSet | None = None,
    *,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """Trains ``model``'s head on computed feature sets, as ``fit`` would.

    The head model gets the whole model's loss, metrics and optimizer
    (`compile_like`); callbacks see the whole model. Features in memory train
    in the lean loop (`head_loop.fit_arrays`), others with ``fit``.

    Args:
        model: The compiled whole model.
        train: Training features (`feature_set`).
        val: Validation features, or None.
        epochs: Number of epochs.
        callbacks: Keras callbacks, set on ``model``.
        verbose: As in ``fit``.

    Returns:
        The ``History`` (also set as ``model.history``).
    """
    callbacks = list(callbacks)
    batch_hooks = any(map(uses_batch_hooks, callbacks))
    with strategy_scope(model=model):  # Optimizer and metrics in it too.
        small = head_model(model)
        compile_like(small, model, batch_hooks=batch_hooks)
    callback_list = callbacks_for(small, model, callbacks, verbose, epochs, train.steps)
    model.stop_training = False
    history = _train_head(small, train, val, epochs, callback_list, batch_hooks)
    model.history = history
    return history


def until_converged(has_validation: bool) -> keras.callbacks.Callback:
    """Stops head training once it has not improved for `AUTO_PATIENCE` epochs."""
    return keras.callbacks.EarlyStopping(
        monitor="val_loss" if has_validation else "loss",
        patience=AUTO_PATIENCE,
        restore_best_weights=True,
    )


def _train_head(
    small: keras.Model,
    train: FeatureSet,
    val: FeatureSet | None,
    epochs: int,
    callback_list: keras.callbacks.CallbackList,
    batch_hooks: bool,
) -> keras.callbacks.History:
    """`head_loop.fit_arrays` on features in memory when it can, else ``fit``."""
    reasons = head_loop.loop_blockers(small, batch_hooks)
    if train.arrays is None or (val is not None and val.arrays is None):
        reasons.append("the features stream from disk")
    if not reasons:
        return head_loop.fit_arrays(
            small,
            train.arrays,
            val.arrays if val is not None else None,
            batch_size=train.batch_size,
            validation_batch_size=val.batch_size if val is not None else None,
            epochs=epochs,
            shuffle=train.shuffle,
            callbacks=callback_list,
        )
    logger.debug("Training the head with fit (%s).", "; ".join(reasons))
    return small.fit(
        train.dataset(),
        validation_data=val.dataset() if val is not None else None,
        epochs=epochs,
        callbacks=callback_list,
        verbose=0,  # The callback list has its own progress bar.
        shuffle=False,  # The feature dataset reshuffles itself.
    )
