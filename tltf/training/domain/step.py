"""The train step of a model while it adapts: task loss plus adaptation terms.

`AdaptationStep` replaces the train step of a `tltf.TransferModel` for the
length of `tltf.adapt_domain` (`TransferModel.train_step_replaced`) and is
detached afterwards, so the model itself never holds the discriminator: it
saves, exports and serves as before. The step reads batches ``((x_s, y_s[, w_s]),
x_t)``: a labelled source batch and an unlabelled target batch.

The features aligned are the pooled base features (``align="pooled"``, as
DANN aligns its feature extractor's output) or those the output layer reads
(``align="hidden"``: the head's last hidden layer, `Head.represent`).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tltf.model import parts_of
from tltf.parts import require_head
from tltf.training.domain.losses import ramp
from tltf.training.domain.methods import Method, Terms, domain_labels

#: What the step logs besides the compiled metrics.
LOG_KEYS = (
    "loss",
    "task_loss",
    "adaptation_loss",
    "adaptation_weight",
    "domain_accuracy",
    "feature_spread",
)


class AdaptationStep:
    """One adaptation step for ``model`` (a plain object: Keras tracks nothing).

    Args:
        model: The compiled tltf classifier being adapted.
        method: MCC, DANN, CORAL or MMD (`tltf.training.domain.methods`),
            or None to train on the source alone with the same recipe (the
            run `adapt_domain` compares an adaptation with).
        weight: The largest adaptation weight.
        ramped: Whether the weight follows DANN's ramp over ``total_steps``.
        total_steps: Steps of the whole adaptation (for the ramp).
        learning_rate: Rate of the method's own optimizer (discriminator or
            probe).
        align: ``"pooled"`` or ``"hidden"``: which features are aligned.
        weight_decay: ``weight_decay / 2 * sum(v^2)`` over the model's
            trainable variables joins the loss (PyTorch's coupled decay).
    """

    def __init__(
        self,
        model: keras.Model,
        method: Method | None,
        *,
        weight: float,
        ramped: bool,
        total_steps: int,
        learning_rate: float,
        align: str = "pooled",
        weight_decay: float = 0.0,
    ) -> None:
        self.method = method
        self.align = align
        self.parts = parts_of(model)
        self.head = require_head(self.parts)
        self.weight = float(weight)
        self.ramped = ramped
        self.weight_decay = float(weight_decay)
        self.total_steps = max(int(total_steps), 1)
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step")
        self.optimizer = keras.optimizers.Adam(learning_rate)
        watched = method is not None and method.domain_classifier is not None
        keys = [k for k in LOG_KEYS if watched or k != "domain_accuracy"]
        self.means = {key: keras.metrics.Mean(name=key) for key in keys}

    def reset(self) -> None:
        """Starts the logged means afresh (at every epoch)."""
        for mean in self.means.values():
            mean.reset_state()

    def current_weight(self) -> tf.Tensor:
        """The adaptation weight at the current step."""
        if not self.ramped:
            return tf.constant(self.weight, tf.float32)
        progress = tf.cast(self.step, tf.float32) / float(self.total_steps)
        return self.weight * ramp(progress)

    def features(self, x: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """``(aligned features as float32, what the output layer reads)``."""
        pooled = self.parts.pooled_features(x, training=True)
        hidden = self.head.represent(pooled, training=True)
        aligned = pooled if self.align == "pooled" else hidden
        return tf.cast(aligned, tf.float32), hidden

    def both_domains(
        self, x_source: Any, x_target: Any
    ) -> tuple[tuple[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        """``((source aligned, source hidden), (target aligned, target hidden))``.

        One forward pass over the source and target batches joined, as DANN,
        MCC and their reference implementations run it (cheaper than two
        passes; BatchNorm layers that train see both domains' statistics),
        or two passes when the batches cannot be joined (inputs of other
        shapes).
        """
        joined = join_batches(x_source, x_target)
        if joined is None:
            return self.features(x_source), self.features(x_target)
        n_source = tf.shape(tf.nest.flatten(x_source)[0])[0]
        aligned, hidden = self.features(joined)
        source = (aligned[:n_source], hidden[:n_source])
        return source, (aligned[n_source:], hidden[n_source:])

    def terms(self, source: tf.Tensor, target: Any, weight: tf.Tensor) -> Terms:
        """The method's terms; zeros when training on the source alone."""
        if self.method is None:
            zero = tf.zeros([], tf.float32)
            return Terms(total=zero, objective=zero, distance=zero)
        target_aligned, target_hidden = target
        if self.method.reads_logits:
            logits = self.head.logits_from(target_hidden, training=True)
            return self.method.terms(source, logits, weight)
        return self.method.terms(source, target_aligned, weight)

    def decay(self, model: keras.Model) -> tf.Tensor:
        """The weight-decay term of the loss (0 without decay)."""
        if not self.weight_decay:
            return tf.zeros([], tf.float32)
        squares = [
            tf.reduce_sum(tf.square(tf.cast(v, tf.float32)))
            for v in model.trainable_variables
        ]
        return 0.5 * self.weight_decay * tf.add_n(squares)

    def __call__(self, model: keras.Model, data: Any) -> dict[str, tf.Tensor]:
        source, x_target = (data, None) if self.method is None else data
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(source)
        weight = self.current_weight()
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:
            if x_target is None:
                (aligned, hidden), target = self.features(x), None
            else:
                (aligned, hidden), target = self.both_domains(x, x_target)
            y_pred = self.head.predict_from(hidden, training=True)
            task = model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            terms = self.terms(aligned, target, weight)
            extra = terms.total / replicas  # compute_loss is already per replica
            decay = self.decay(model) / replicas
            total = tf.cast(task, tf.float32) + extra + decay
            scaled = model.optimizer.scale_loss(total)
        variables = model.trainable_variables
        model.optimizer.apply_gradients(
            zip(tape.gradient(scaled, variables), variables)
        )
        own = self.method.variables if self.method is not None else []
        if own:
            self.optimizer.apply_gradients(zip(tape.gradient(extra, own), own))
        del tape
        self.step.assign_add(1)
        both = aligned if target is None else tf.concat([aligned, target[0]], axis=0)
        batch = (x, y, sample_weight, y_pred)
        return self._logs(model, batch, task, terms, weight, feature_spread(both))

    def _logs(self, model, batch, task, terms, weight, spread) -> dict[str, tf.Tensor]:
        x, y, sample_weight, y_pred = batch
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        task = tf.cast(task, tf.float32) * replicas
        values = {
            "loss": task + tf.cast(terms.objective, tf.float32),
            "task_loss": task,
            "adaptation_loss": terms.distance,
            "adaptation_weight": weight,
            "feature_spread": spread,
        }
        if terms.logits is not None:
            n_source = tf.shape(y_pred)[0]
            labels = domain_labels(n_source, tf.shape(terms.logits)[0] - n_source)
            guessed = tf.cast(tf.cast(terms.logits, tf.float32) > 0.0, tf.float32)
            values["domain_accuracy"] = tf.reduce_mean(
                tf.cast(guessed == labels, tf.float32)
            )
        for key, value in values.items():
            if key in self.means:
                self.means[key].update_state(value)
        logs = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        logs.update({key: mean.result() for key, mean in self.means.items()})
        return logs


def feature_spread(features: tf.Tensor) -> tf.Tensor:
    """How far apart the examples' features are, for any scale: 0 when all alike.

    The share of the features' mean square that varies from example to
    example: ``E||f - mean f||^2 / E||f||^2``, in [0, 1] (0 for features
    that are all 0). What `CollapseGuard` watches: aligning can be won by
    making every example's features the same (dead ReLUs), which leaves the
    task at chance; aligning that merely shrinks the features leaves it
    unchanged.
    """
    centred = features - tf.reduce_mean(features, axis=0, keepdims=True)
    varying = tf.reduce_mean(tf.reduce_sum(tf.square(centred), axis=-1))
    total = tf.reduce_mean(tf.reduce_sum(tf.square(features), axis=-1))
    return tf.math.divide_no_nan(varying, total)


def join_batches(x_source: Any, x_target: Any) -> Any:
    """The source then the target inputs as one batch, or None if they differ.

    They join when they have the same structure, dtypes and (known)
    per-example shapes; token ids padded to other lengths, say, do not.
    """
    try:
        tf.nest.assert_same_structure(x_source, x_target)
        flat = [tf.nest.flatten(x) for x in (x_source, x_target)]
        pairs = [
            (tf.convert_to_tensor(a), tf.convert_to_tensor(b)) for a, b in zip(*flat)
        ]
    except (TypeError, ValueError):  # Another structure, or ragged / sparse.
        return None
    for a, b in pairs:
        same_shape = a.shape[1:].is_fully_defined() and a.shape[1:] == b.shape[1:]
        if a.dtype != b.dtype or a.shape.rank != b.shape.rank or not same_shape:
            return None
    joined = [tf.concat([a, b], axis=0) for a, b in pairs]
    return tf.nest.pack_sequence_as(x_source, joined)
