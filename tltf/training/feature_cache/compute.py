"""Pooled base features computed once: `compute_features` and `FeatureSet`.

The base runs once per dataset (preprocess -> Backbone -> ``Head.pool``), in
inference mode, and the pooled features are kept in a `FeatureCache`
(`store.py`) under a key made of the base's weights and of the data, so a
changed base or changed data never reuses stale features. `safety.py` says
when this is allowed; `fit_head.py` trains the head on the result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import _compat
from tltf.data.inputs import as_batched, first_batch
from tltf.errors import ConfigError, DataError
from tltf.model import parts_of, require_model
from tltf.parts import require_backbone, require_head
from tltf.training.feature_cache.safety import cache_blockers
from tltf.training.feature_cache.store import (
    Examples,
    FeatureCache,
    concatenate,
    digest_base,
    key_of,
    resolve_cache,
    unbatched,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureSet",
    "base_key",
    "compute_features",
    "feature_key",
    "feature_set",
]

_SHUFFLE_BUFFER = 50_000
_POOLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def feature_key(
    model: keras.Model, data: tf.data.Dataset, base: str | None = None
) -> str:
    """The cache key of a feature set: the model's base and a batched dataset.

    It hashes every weight before the head, the pooling and BatchNorm
    policy, the dataset's element spec and cardinality and the contents of its
    first batch. Data changes that keep all of these (e.g. a file edited in
    place in the middle of a folder) are not detected: pass an explicit
    ``key`` to `compute_features` in that case.

    Args:
        model: A model built by a tltf builder.
        data: Batched ``(inputs, labels[, weights])`` dataset.
        base: The model's `base_key`, if already computed (hashing the
            base's weights is the costly part; one serves every dataset).

    Returns:
        A file-name-safe key.
    """
    return key_of(base or base_key(model), data, _first_batch(data))


def base_key(model: keras.Model) -> str:
    """Digest of the model's base: every weight before the head, and config."""
    parts = parts_of(model)
    head, backbone = require_head(parts), require_backbone(parts)
    extractor = parts.feature_model
    config = (
        head.pooling,
        backbone.train_bn,
        [type(x).__name__ for x in extractor.layers],
    )
    return digest_base(config, extractor.weights)


def compute_features(
    model: keras.Model,
    data: tf.data.Dataset | tuple,
    cache: bool | str | os.PathLike | FeatureCache = "auto",
    *,
    key: str | None = None,
    shuffle: bool | None = None,
) -> tf.data.Dataset:
    """Runs the frozen base over ``data`` once and returns pooled features.

    Features are ``Head.pool`` of the base's output, computed in inference
    mode; they are looked up in (or added to) ``cache`` under a key
    of the base weights and the data (`feature_key`).

    Args:
        model: A model built by a tltf builder whose features can be cached
            (see `can_cache_features`).
        data: Batched dataset of ``(inputs, labels[, sample weights])``, or
            a tuple of arrays ``(x, y[, w])`` (batched by 32, shuffled).
        cache: ``"auto"`` (process-wide cache: in memory within the cache
            budget, `tltf.data.set_cache_budget`, else in a temporary folder
            deleted at exit; one log line says which and why), True
            (process-wide memory cache, unbounded), False (compute, keep
            nothing), a folder path (disk cache, kept) or a `FeatureCache`.
        key: Explicit cache key instead of `feature_key`.
        shuffle: Reshuffle the features every epoch; None follows ``data``
            (True if its pipeline shuffles).

    Returns:
        Batched dataset of ``(pooled_features, labels[, weights])`` with the
        batch size of ``data``.

    Raises:
        ConfigError: The model's features cannot be cached (the reasons
            are listed).
        DataError: ``data`` is empty, unbatched or has no labels.

    Example:
        >>> train = compute_features(model, data.train)
        >>> head_model(model).predict(train.map(lambda f, y: f))
    """
    require_model(model)
    return feature_set(model, data, cache, key, shuffle).dataset()


@dataclasses.dataclass
class FeatureSet:
    """A computed feature set and how ``fit`` would batch it.

    Attributes:
        examples: Unbatched ``(features, labels[, weights])``: numpy arrays
            in memory, or a dataset streaming from a disk cache.
        batch_size: The batch size of the data the features came from.
        shuffle: Whether every epoch reshuffles the examples.
    """

    examples: Examples
    batch_size: int
    shuffle: bool

    @property
    def arrays(self) -> tuple[np.ndarray, ...] | None:
        """The examples as arrays if they are in memory, else None."""
        return None if isinstance(self.examples, tf.data.Dataset) else self.examples

    @property
    def steps(self) -> int | None:
        """Batches per epoch, if known."""
        if self.arrays is not None:
            return -(-len(self.arrays[0]) // self.batch_size)
        steps = int(self.dataset().cardinality())
        return steps if steps >= 0 else None

    def dataset(self) -> tf.data.Dataset:
        """The examples batched (and reshuffled every epoch if ``shuffle``)."""
        examples = unbatched(self.examples)
        if self.shuffle:
            examples = examples.shuffle(_SHUFFLE_BUFFER, reshuffle_each_iteration=True)
        return examples.batch(self.batch_size).prefetch(tf.data.AUTOTUNE)


def feature_set(
    model: keras.Model,
    data: tf.data.Dataset | tuple,
    cache: bool | str | os.PathLike | FeatureCache,
    key: str | None = None,
    shuffle: bool | None = None,
    base: str | None = None,
) -> FeatureSet:
    """`compute_features` before batching: the examples and how to batch them.

    Arguments as in `compute_features`; ``base`` is the model's `base_key`
    if it is already computed (hashing the base's weights is the costly
    part of a key, and one serves every dataset).
    """
    reasons = cache_blockers(model)
    if reasons:
        raise ConfigError(
            "Cannot cache features of this model: " + "; ".join(reasons) + ". "
            "Freeze the base and remove augmentation, or train with model.fit."
        )
    data, default_shuffle = _batched(data)
    first = _first_batch(data, len(tf.nest.flatten(model.inputs)[0].shape))
    batch_size = int(tf.nest.flatten(first)[0].shape[0])
    store = resolve_cache(cache)
    examples = None
    if store is not None:
        key = key or key_of(base or base_key(model), data, first)
        examples = store.lookup(key)
    if examples is None:
        batches = _extract(model, data)
        if store is None:
            examples = concatenate(batches)
        else:
            count = int(data.cardinality())
            examples = store.store(key, batches, count if count >= 0 else None)
    else:
        logger.info("Reusing cached base features %s.", key)
    return FeatureSet(
        examples, batch_size, default_shuffle if shuffle is None else shuffle
    )


def _pooler(model: keras.Model) -> Callable:
    """One ``inputs -> pooled features`` tf.function per model, in inference mode."""
    if model not in _POOLERS:
        _POOLERS[model] = tf.function(parts_of(model).pooled_features)
    return _POOLERS[model]


def _any_batch_size(spec: Any) -> Any:
    """``spec`` with an unknown batch dimension (tensor specs only)."""
    if isinstance(spec, tf.TensorSpec) and spec.shape.rank:
        return tf.TensorSpec([None, *spec.shape[1:]], spec.dtype, spec.name)
    return spec


def _extract(model: keras.Model, data: tf.data.Dataset) -> Iterator[tuple]:
    x_spec = keras.utils.unpack_x_y_sample_weight(data.element_spec)[0]
    # One trace for every batch size: a short last batch does not retrace the
    # whole base (which costs about as much as a quarter of a pass over it).
    pooled = _pooler(model).get_concrete_function(
        tf.nest.map_structure(_any_batch_size, x_spec)
    )
    for element in data:
        x, y, w = keras.utils.unpack_x_y_sample_weight(element)
        out = (pooled(x), y) if w is None else (pooled(x), y, w)
        yield tuple(np.asarray(t) for t in out)


def _batched(data: Any) -> tuple[tf.data.Dataset, bool]:
    """Batched dataset of the data and whether it shuffles each epoch."""
    batched = as_batched(data, what="data")
    if isinstance(data, (tuple, list)):
        return batched, True  # Arrays reshuffle every epoch, as in fit.
    return batched, _compat.dataset_shuffles(batched)


def _first_batch(data: tf.data.Dataset, rank: int | None = None) -> Any:
    if int(data.cardinality()) == tf.data.INFINITE_CARDINALITY:
        raise DataError(
            "Feature caching needs a finite dataset (one pass = one epoch); "
            "remove .repeat() from the pipeline."
        )
    element = first_batch(
        data, "The dataset", "There is nothing to compute features on."
    )
    flat = tf.nest.flatten(element)
    if not isinstance(element, tuple) or len(element) < 2:
        raise DataError(
            "Feature caching needs (inputs, labels) elements. Received "
            f"elements of spec {data.element_spec}"
        )
    if len(flat[0].shape) == 0 or (rank and len(flat[0].shape) < rank):
        raise DataError(
            "Feature caching needs a batched dataset; call .batch(). "
            f"Received inputs of shape {flat[0].shape}"
        )
    return element
