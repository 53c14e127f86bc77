"""The plain ``model.fit`` call and history merging every recipe shares.

`fit_data` is ``model.fit`` on what tltf's functions accept as training data
(a batched dataset, or arrays ``(x, y[, sample_weight])``); `merge_histories`
joins the ``History`` of consecutive stages into one, as a single ``fit``
would have logged them. (Compiling another model like a given one:
`tltf.builders.compile_arguments` and `fresh_optimizer`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras


def fit_data(
    model: keras.Model,
    train: Any,
    validation: Any = None,
    *,
    epochs: int,
    initial_epoch: int = 0,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> keras.callbacks.History:
    """``model.fit`` on a batched dataset or on arrays ``(x, y[, sample_weight])``.

    Arrays are reshuffled every epoch, as ``fit`` does; a dataset is taken as
    it is (it shuffles itself, if at all).

    Args:
        model: A compiled model.
        train: A batched dataset, or a tuple ``(x, y)`` / ``(x, y, weights)``.
        validation: Validation data in any form ``fit`` takes, or None.
        epochs: The epoch to stop before (as in ``fit``).
        initial_epoch: The epoch to start from.
        callbacks: Keras callbacks.
        verbose: As in ``fit``.

    Returns:
        The ``History`` of this call.
    """
    kwargs = dict(
        validation_data=validation,
        initial_epoch=initial_epoch,
        epochs=epochs,
        callbacks=list(callbacks),
        verbose=verbose,
    )
    if isinstance(train, (tuple, list)):
        x, y, *weights = train
        return model.fit(x, y, sample_weight=weights[0] if weights else None, **kwargs)
    return model.fit(train, shuffle=False, **kwargs)


def merge_histories(
    histories: Sequence[keras.callbacks.History], model: keras.Model | None = None
) -> keras.callbacks.History:
    """One ``History`` for consecutive stages, epochs renumbered from 0.

    A key that a stage did not log gets NaN for that stage's epochs, so every
    list stays aligned with ``epoch``.

    Args:
        histories: The stages' histories, in order.
        model: The model to attach to the merged history (None: the last
            stage's).

    Returns:
        The merged ``History``; ``params`` are the last stage's.
    """
    merged = keras.callbacks.History()
    last = histories[-1] if histories else None
    if model is not None or (last is not None and last.model is not None):
        merged.set_model(model if model is not None else last.model)
    merged.params = dict(last.params) if last is not None and last.params else {}
    keys = list(dict.fromkeys(k for h in histories for k in h.history))
    lengths = [len(next(iter(h.history.values()), [])) for h in histories]
    merged.history = {
        key: [
            value
            for h, n in zip(histories, lengths)
            for value in h.history.get(key, [float("nan")] * n)
        ]
        for key in keys
    }
    merged.epoch = list(range(sum(lengths)))
    return merged
