"""The ways to adapt: MCC, DANN, CORAL and MMD, behind one small interface.

A method takes the source and target features of a batch (MCC: the target
logits) and returns what to add to the task loss, plus a domain
classifier's logits on both batches (for the ``domain_accuracy`` log; MCC
has none). DANN's discriminator is the adversary itself, trained through a
gradient-reversal layer; CORAL and MMD minimize a distance, and the same
kind of discriminator, on detached features, only watches how far apart the
domains still look. MCC needs no discriminator: it makes the target
predictions confident without confusing classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import tensorflow as tf

from tltf.errors import ConfigError
from tltf.training.domain.losses import (
    Kernel,
    coral_distance,
    mcc_loss,
    mmd_distance,
    reverse_gradient,
)

METHODS = ("mcc", "dann", "coral", "mmd")
PROBE_UNITS = 256  # width of the discriminator that watches CORAL and MMD


@dataclasses.dataclass
class Terms:
    """One batch's adaptation terms.

    Attributes:
        total: What the training loss adds (gradients flow through it; for
            CORAL and MMD it includes the watching discriminator's loss,
            whose gradients reach only that discriminator).
        objective: The part of ``total`` the model itself minimizes (the
            logged ``loss`` is the task loss plus this).
        distance: The logged ``adaptation_loss``: the discriminator's loss
            (DANN) or the feature distance (CORAL, MMD), unweighted.
        logits: Domain logits of the source then the target batch, or None
            (a method without a domain classifier).
    """

    total: tf.Tensor
    objective: tf.Tensor
    distance: tf.Tensor
    logits: tf.Tensor | None = None


class Method:
    """What `adapt_domain` asks of a method."""

    name = ""
    #: True when `terms` reads the target logits rather than features.
    reads_logits = False

    def __init__(self, domain_classifier: keras.layers.Layer | None) -> None:
        self.domain_classifier = domain_classifier

    @property
    def variables(self) -> list:
        """Variables the method trains besides the model's (its own optimizer)."""
        if self.domain_classifier is None:
            return []
        return list(self.domain_classifier.trainable_variables)

    def terms(self, source: tf.Tensor, target: tf.Tensor, weight: tf.Tensor) -> Terms:
        """The adaptation terms of features ``(n_s, d)`` and ``(n_t, d)``."""
        raise NotImplementedError

    def _domain_loss(self, logits: tf.Tensor, n_source: tf.Tensor) -> tf.Tensor:
        logits = tf.cast(logits, tf.float32)
        labels = domain_labels(n_source, tf.shape(logits)[0] - n_source)
        return tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
        )


class MCC(Method):
    """Minimum class confusion on the target predictions (Jin et al., ECCV 2020)."""

    name = "mcc"
    reads_logits = True

    def __init__(self) -> None:
        super().__init__(None)

    def terms(self, source, target, weight):
        """``source`` is unused; ``target`` holds the target logits."""
        confusion = mcc_loss(target)
        objective = tf.cast(weight, tf.float32) * confusion
        return Terms(total=objective, objective=objective, distance=confusion)


class DANN(Method):
    """Features the discriminator cannot tell apart, by gradient reversal."""

    name = "dann"

    def terms(self, source, target, weight):
        both = reverse_gradient(tf.concat([source, target], axis=0), weight)
        logits = self.domain_classifier(both, training=True)
        loss = self._domain_loss(logits, tf.shape(source)[0])
        return Terms(total=loss, objective=loss, distance=loss, logits=logits)


class _Distance(Method):
    """A feature distance, weighted; a discriminator on detached features watches."""

    def distance(self, source: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def terms(self, source, target, weight):
        distance = self.distance(source, target)
        both = tf.stop_gradient(tf.concat([source, target], axis=0))
        logits = self.domain_classifier(both, training=True)
        probe_loss = self._domain_loss(logits, tf.shape(source)[0])
        objective = tf.cast(weight, distance.dtype) * distance
        return Terms(
            total=objective + probe_loss,
            objective=objective,
            distance=distance,
            logits=logits,
        )


class CORAL(_Distance):
    """Aligned second-order statistics (feature covariances)."""

    name = "coral"

    def distance(self, source, target):
        return coral_distance(source, target)


class MMD(_Distance):
    """Aligned kernel mean embeddings (multi-kernel MMD)."""

    name = "mmd"

    def __init__(self, domain_classifier: keras.layers.Layer, kernel: Kernel | None):
        super().__init__(domain_classifier)
        self.kernel = kernel

    def distance(self, source, target):
        return mmd_distance(source, target, self.kernel)


def make_method(
    method: str, discriminator: Any = None, kernel: Kernel | None = None
) -> Method:
    """The method named ``method``, with its domain classifier.

    Args:
        method: ``"mcc"``, ``"dann"``, ``"coral"`` or ``"mmd"``.
        discriminator: DANN's discriminator (features -> one logit); None
            for `default_discriminator`.
        kernel: MMD's kernel; None for the default Gaussian kernels.

    Returns:
        The method (its layers unbuilt).

    Raises:
        ConfigError: An unknown method, or an argument of another method.
    """
    check_method(method, discriminator, kernel)
    if method == "mcc":
        return MCC()
    if method == "dann":
        return DANN(discriminator or default_discriminator())
    # A discriminator on detached features: it only watches (domain_accuracy),
    # so a narrower one (a quarter of DANN's width) keeps the step cheap.
    probe = default_discriminator(PROBE_UNITS)
    return CORAL(probe) if method == "coral" else MMD(probe, kernel)


def check_method(
    method: str,
    discriminator: Any = None,
    kernel: Kernel | None = None,
    names: tuple[str, ...] = METHODS,
) -> None:
    """Raises `ConfigError` for an unknown ``method`` or another method's
    argument, without making anything (a discriminator's initialisers would
    draw from the random state). ``names``: what the caller accepts; a name
    that is not one of `METHODS` (``"auto"``) is resolved and checked later."""
    if method not in names:
        raise ConfigError(
            f"Unknown domain adaptation method {method!r}. Use one of "
            f"{list(names)}. Received: method={method!r}"
        )
    if method not in METHODS:
        return
    if discriminator is not None and method != "dann":
        raise ConfigError(
            f"discriminator= is DANN's; method={method!r} aligns features "
            "without one. Pass method='dann', or drop discriminator=."
        )
    if kernel is not None and method != "mmd":
        raise ConfigError(
            f"kernel= is MMD's. Pass method='mmd', or drop kernel=. "
            f"Received: method={method!r}"
        )


def default_discriminator(units: int = 1024, dropout: float = 0.5) -> keras.Model:
    """DANN's domain classifier: two ReLU layers of ``units`` with dropout, one logit.

    The adversarial network of the reference DANN / CDAN code (Ganin et al.
    2016 for the larger models; Long et al., CDAN, NeurIPS 2018): 1024 ->
    1024 -> 1, dropout 0.5 after each hidden layer. The dropout matters:
    without it the discriminator saturates within the first epoch on a shift
    it can tell apart by colour alone (``benchmarks/domain_adaptation/run.py``),
    its loss falls to ~0, and the reversed gradient, proportional to that
    loss's slope, vanishes: the features never adapt.
    """
    layers: list[keras.layers.Layer] = []
    for _ in range(2):
        layers += [
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
        ]
    return keras.Sequential(
        [*layers, keras.layers.Dense(1)], name="domain_discriminator"
    )


def domain_labels(n_source: tf.Tensor, n_target: tf.Tensor) -> tf.Tensor:
    """``(n_source + n_target, 1)`` float labels: 0 for source, 1 for target."""
    return tf.concat(
        [tf.zeros([n_source, 1], tf.float32), tf.ones([n_target, 1], tf.float32)],
        axis=0,
    )
