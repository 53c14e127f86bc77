"""A lean training loop for the head on base features held in memory.

Once the base's features are cached, a head step is tiny (one Dense layer on
a batch of pooled vectors), and what ``fit`` spends around it dominates: per
batch, a ``tf.data`` get-next and Keras' step bookkeeping. `fit_arrays` runs
the head model's own ``train_step`` and ``test_step`` over batches gathered
from tensors in memory, a whole epoch per compiled call, and drives the
callbacks as ``fit`` does with ``steps_per_execution`` equal to the epoch:
``on_train_batch_*`` once per epoch, everything else unchanged. What this
saves is measured against ``fit`` in ``benchmarks/speed/`` (the frozen-stage rows).

Without shuffling, the result is the same training as ``fit`` on a dataset
of those arrays: the same batches in the same order, the same dropout draws,
the same logs (a test checks it). With shuffling, every epoch draws a fresh
permutation of all the examples (TensorFlow's global seed makes it
repeatable), as a shuffle buffer as large as the data would.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tltf import _compat
from tltf.distribute.scope import is_default

__all__ = ["fit_arrays", "loop_blockers"]

Arrays = Sequence[np.ndarray]


def loop_blockers(small: keras.Model, batch_hooks: bool) -> list[str]:
    """Why `fit_arrays` cannot train ``small``; empty if it can.

    Args:
        small: The compiled head model.
        batch_hooks: Whether a user callback acts on single batches.

    Returns:
        Human-readable reasons (``small.fit`` is used instead).
    """
    reasons = []
    if batch_hooks:
        reasons.append("a callback acts on every batch")
    if small.run_eagerly:
        reasons.append("the model runs eagerly")
    if small.jit_compile:
        reasons.append("the model is compiled with XLA")
    if tf.distribute.has_strategy() or not is_default(small.distribute_strategy):
        reasons.append("a distribution strategy is in use")
    if not _compat.can_symbolic_build(small):
        reasons.append("this Keras version builds models differently")
    return reasons


def fit_arrays(
    small: keras.Model,
    train: Arrays,
    validation: Arrays | None,
    *,
    batch_size: int,
    validation_batch_size: int | None = None,
    epochs: int,
    shuffle: bool,
    callbacks: keras.callbacks.CallbackList,
) -> keras.callbacks.History:
    """Trains ``small`` on in-memory arrays as ``small.fit`` would.

    Args:
        small: A compiled model (see `loop_blockers`).
        train: ``(inputs, labels[, sample weights])`` arrays.
        validation: The same for validation, or None.
        batch_size: Training batch size (the last batch may be smaller).
        validation_batch_size: Validation batch size; ``batch_size`` if None.
        epochs: Number of epochs.
        shuffle: Draw a new order of the training examples every epoch.
        callbacks: A ``CallbackList`` made for ``small`` with a History.

    Returns:
        The ``History`` of the run (also set as ``small.history``).

    Example:
        >>> small = head_model(model)
        >>> small.compile("adam", "sparse_categorical_crossentropy")
        >>> callbacks = keras.callbacks.CallbackList(add_history=True, model=small)
        >>> fit_arrays(small, (features, labels), None, batch_size=32,
        ...            epochs=5, shuffle=True, callbacks=callbacks)
    """
    train_epoch = _Epochs(small, train, batch_size, training=True)
    _compat.symbolic_build(small, train_epoch.first_batch())
    evaluate = None
    if validation is not None:
        val_batch = validation_batch_size or batch_size
        evaluate = _Epochs(small, validation, val_batch, training=False)
    small.stop_training = False
    callbacks.on_train_begin()
    epoch_logs: dict = {}
    for epoch in range(epochs):
        callbacks.on_epoch_begin(epoch)
        callbacks.on_train_batch_begin(0)
        order = tf.random.shuffle(tf.range(train_epoch.num_examples))
        logs = train_epoch(order if shuffle else None)
        callbacks.on_train_batch_end(train_epoch.steps - 1, logs)
        epoch_logs = dict(logs)
        if evaluate is not None:
            epoch_logs.update(_validate(small, evaluate, callbacks))
        callbacks.on_epoch_end(epoch, epoch_logs)
        if small.stop_training:
            break
    if epochs > 0:
        small.optimizer.finalize_variable_values(small.trainable_weights)
    callbacks.on_train_end(logs=epoch_logs)
    return small.history


def _validate(
    small: keras.Model, evaluate: _Epochs, callbacks: keras.callbacks.CallbackList
) -> dict:
    """One pass over the validation arrays; its logs with a ``val_`` prefix."""
    callbacks.on_test_begin()
    callbacks.on_test_batch_begin(0)
    logs = evaluate()
    callbacks.on_test_batch_end(evaluate.steps - 1, logs)
    callbacks.on_test_end(logs)
    return {f"val_{name}": value for name, value in logs.items()}


class _Epochs:
    """Runs the model's train or test step on every batch of in-memory arrays,
    one compiled call per epoch.

    A call takes the order of the examples (a permutation of their indices,
    or None for their own order), resets the model's metrics and returns
    them after the last batch. The last batch may be short: the step is traced once, for
    any batch size.
    """

    def __init__(
        self, model: keras.Model, arrays: Arrays, batch_size: int, training: bool
    ) -> None:
        self.model = model
        self.tensors = tuple(tf.convert_to_tensor(a) for a in arrays)
        self.batch_size = int(batch_size)
        self.num_examples = int(self.tensors[0].shape[0])
        self.steps = -(-self.num_examples // self.batch_size)
        self._step = model.train_step if training else model.test_step
        self._run = tf.function(self._epoch, autograph=False)

    def __call__(self, order: tf.Tensor | None = None) -> dict:
        return self._run(order)

    def first_batch(self) -> tuple:
        return tuple(t[: self.batch_size] for t in self.tensors)

    def _epoch(self, order: tf.Tensor | None) -> dict:
        size = self.batch_size

        def body(i):
            if order is None:
                batch = tuple(t[i * size : (i + 1) * size] for t in self.tensors)
            else:
                rows = order[i * size : (i + 1) * size]
                batch = tuple(tf.gather(t, rows) for t in self.tensors)
            self._step(batch)
            return (i + 1,)

        self.model.reset_metrics()  # Ordered before the steps: same variables.
        done = tf.while_loop(lambda i: i < self.steps, body, (tf.constant(0),))
        with tf.control_dependencies(done):
            return self.model.get_metrics_result()
