"""How `fit_frozen_head` trains the head model as if it were the whole model.

The small ``pooled features -> outputs`` model gets the whole model's loss,
metrics and optimizer; user callbacks see the whole model (a checkpoint saves
it, early stopping stops the small model's loop).
"""

from __future__ import annotations

from typing import Any

import keras

from tltf import _compat
from tltf.builders import compile_arguments, fresh_optimizer

# Head steps run per compiled call when no callback needs every batch.
_HEAD_STEPS_PER_EXECUTION = 16
_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


def compile_like(small: keras.Model, model: keras.Model, batch_hooks: bool) -> None:
    """Compiles ``small`` with ``model``'s loss and metrics (fresh objects).

    The optimizer is ``model``'s own when it can update ``small``'s variables
    (so its step count and slots carry on), else a fresh copy of its config.
    Without callbacks that act on every batch, several head steps run per
    compiled call (same updates, far less per-step overhead).

    Args:
        small: The head model to compile.
        model: The compiled whole model.
        batch_hooks: Whether a user callback acts on single batches.
    """
    config = compile_arguments(model)
    config["optimizer"] = _optimizer_for(small, model)
    if not batch_hooks and not config.get("run_eagerly"):
        steps = config.get("steps_per_execution") or 1
        config["steps_per_execution"] = max(steps, _HEAD_STEPS_PER_EXECUTION)
    small.compile(**config)


def uses_batch_hooks(callback: keras.callbacks.Callback) -> bool:
    """Whether ``callback`` acts on single batches (not only on epochs)."""
    base = keras.callbacks.Callback
    return any(
        hook in vars(callback)
        or getattr(type(callback), hook) is not getattr(base, hook)
        for hook in _BATCH_HOOKS
    )


def _optimizer_for(
    small: keras.Model, model: keras.Model
) -> keras.optimizers.Optimizer:
    """The model's optimizer when it can update the head, else a fresh copy."""
    optimizer = model.optimizer
    if not optimizer.built:
        return optimizer
    if _compat.optimizer_knows(optimizer, small.trainable_variables):
        return optimizer
    return fresh_optimizer(optimizer)


def callbacks_for(
    small: keras.Model,
    model: keras.Model,
    callbacks: list[keras.callbacks.Callback],
    verbose: str | int,
    epochs: int,
    steps: int | None,
) -> keras.callbacks.CallbackList:
    """Callbacks that see ``model`` while ``small`` trains.

    Args:
        small: The head model that ``fit`` runs.
        model: The whole model the user's callbacks should act on.
        callbacks: The user's callbacks.
        verbose: As in ``fit`` (adds a progress bar unless 0).
        epochs: Number of epochs, for the progress bar.
        steps: Training steps per epoch, for the progress bar (None if
            unknown).

    Returns:
        A ``CallbackList`` for ``small.fit``: History and progress bar on
        ``small``, the user's callbacks on ``model``, and a callback that
        stops ``small`` when a callback stops ``model``.
    """

    def sync_stop(*_args: Any, **_kwargs: Any) -> None:
        if model.stop_training:
            small.stop_training = True

    sync = keras.callbacks.LambdaCallback(
        on_train_batch_end=sync_stop, on_epoch_end=sync_stop
    )
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, sync],
        add_history=True,
        add_progbar=verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=small,
    )
    for callback in callbacks:
        callback.set_model(model)
    return callback_list
