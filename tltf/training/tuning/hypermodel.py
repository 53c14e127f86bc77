"""`TransferHyperModel`: a KerasTuner hypermodel built on the public builders.

`TransferHyperModel.build(hp)` only picks arguments (head learning rate, and
optionally fine-tuning rate, unfreezing depth, dropout, weight decay) and
calls `tltf.build_image_classifier` or `tltf.build_text_classifier`; its
``fit`` trains the head, then optionally fine-tunes the top layer groups.

Cheap by design: every model the hypermodel builds gets the same base
weights (those of its first build), so while the base is frozen and nothing
random runs before the head, the base's pooled features are computed once
per dataset (`tltf.training.feature_cache`) and every trial and epoch trains
its head on them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from tltf import arguments, builders
from tltf.backbones.registry import get_backbone
from tltf.data.inputs import as_list
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError, TltfError, first_line
from tltf.model import backbone_of
from tltf.training import feature_cache as caching
from tltf.training.fitting import merge_histories
from tltf.training.freezing import train_groups

logger = logging.getLogger(__name__)

Range = float | int | tuple | list | None


class TransferHyperModel(kt.HyperModel):
    """A KerasTuner hypermodel over a tltf builder's arguments.

    Each search-space argument is a ``(low, high)`` range (log scale for
    rates and weight decay), a list of choices, a fixed value, or None (not
    searched). Every model it builds gets the base weights of its first build
    (`base_weights`), so trials differ only in what is searched.

    Args:
        backbone: Registry name, ``keras.Model`` or ``.keras`` path, as for
            the builder.
        num_classes: Number of classes (or regression targets).
        builder: ``"auto"`` (text builder for text backbones, else image),
            ``"image"``, ``"text"``, or a callable with the builders'
            signature.
        head_learning_rate: Rate while only the head trains.
        fine_tune_learning_rate: Rate of the fine-tuning stage; None for no
            fine-tuning stage.
        unfreeze_groups: How many of the base's last layer groups fine-tuning
            unfreezes: an int, ``(low, high)``, choices, or None for all.
        dropout: Head dropout to search; None keeps the builder's.
        weight_decay: AdamW weight decay to search; None uses Adam.
        head_epochs: Epochs of the head stage within ``fit``'s ``epochs``;
            None gives every epoch to the head without fine-tuning, and half
            (at least one) with it.
        feature_cache: ``"auto"`` (memory within the cache budget,
            `tltf.data.set_cache_budget`, else a temporary folder on disk),
            True (memory), a folder (disk) or False: where the head stage
            keeps base features.
        **build_kwargs: Fixed builder arguments (``weights``,
            ``input_shape``, ``task``, ``augment``, ...).

    Example:
        >>> hypermodel = TransferHyperModel(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> tuner = kt.RandomSearch(hypermodel, "val_accuracy", max_trials=3)
    """

    def __init__(
        self,
        backbone: str | keras.Model | os.PathLike,
        num_classes: int,
        *,
        builder: str | Callable[..., keras.Model] = "auto",
        head_learning_rate: Range = (1e-5, 1e-1),
        fine_tune_learning_rate: Range = None,
        unfreeze_groups: Range = None,
        dropout: Range = None,
        weight_decay: Range = None,
        head_epochs: int | None = None,
        feature_cache: bool | str | os.PathLike = "auto",
        **build_kwargs: Any,
    ) -> None:
        super().__init__(name="tltf_transfer")
        if head_learning_rate is None:
            raise ConfigError("head_learning_rate cannot be None: give a range.")
        arguments.count("num_classes", num_classes)
        _check_space(
            head_learning_rate=head_learning_rate,
            fine_tune_learning_rate=fine_tune_learning_rate,
            weight_decay=weight_decay,
            dropout=dropout,
            unfreeze_groups=unfreeze_groups,
        )
        self.backbone = backbone
        self.num_classes = num_classes
        self.builder = _resolve_builder(builder, backbone)
        self.head_learning_rate = head_learning_rate
        self.fine_tune_learning_rate = fine_tune_learning_rate
        self.unfreeze_groups = unfreeze_groups
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.head_epochs = head_epochs
        self.build_kwargs = build_kwargs
        self.base_weights: list[np.ndarray] | None = None
        self.cache = None if feature_cache is False else _feature_cache(feature_cache)
        self.base_batches = 0
        self.base_batches_without_reuse = 0
        self._keys: dict[int, tuple[tf.data.Dataset, str, int]] = {}

    @property
    def task(self) -> str:
        """The head's task (``"multiclass"``, ``"multilabel"``, ``"regression"``)."""
        head = self.build_kwargs.get("head")
        if head is not None:
            return head.task
        return self.build_kwargs.get("task", "multiclass")

    @property
    def fine_tunes(self) -> bool:
        """Whether ``fit`` has a fine-tuning stage."""
        return self.fine_tune_learning_rate is not None

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        """Picks the arguments from ``hp`` and builds a compiled model."""
        rate = _pick(hp, "head_learning_rate", self.head_learning_rate, log=True)
        decay = _pick(hp, "weight_decay", self.weight_decay, log=True)
        kwargs = dict(self.build_kwargs)
        if self.dropout is not None:
            kwargs["dropout"] = _pick(hp, "dropout", self.dropout)
        model = self.builder(self.backbone, self.num_classes, compile=False, **kwargs)
        backbone = backbone_of(model)
        base = backbone.model
        if self.base_weights is None:
            self.base_weights = [np.array(w) for w in base.get_weights()]
        else:
            _set_base_weights(base, self.base_weights)
        if self.fine_tunes:
            _pick(hp, "fine_tune_learning_rate", self.fine_tune_learning_rate, log=True)
            groups = len(backbone.group_names)
            _pick(hp, "unfreeze_groups", self.unfreeze_groups or groups, cap=groups)
        builders.compile_model(model, optimizer=_optimizer(rate, decay))
        return model

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        x: tf.data.Dataset,
        validation_data: tf.data.Dataset | None = None,
        *,
        epochs: int = 1,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] | None = None,
        verbose: int | str = "auto",
    ) -> keras.callbacks.History:
        """Trains the head (on cached features when possible), then fine-tunes.

        Epochs ``[initial_epoch, head_end)`` train the head with the base
        frozen; if the hypermodel fine-tunes, epochs ``[head_end, epochs)``
        unfreeze the last ``unfreeze_groups`` groups at the fine-tuning rate.

        Returns:
            One ``History`` covering both stages.
        """
        callbacks = as_list(callbacks)
        head_end = self._head_end(epochs)
        histories = []
        with strategy_scope(model=model):
            if initial_epoch < head_end:
                n = head_end - initial_epoch
                histories.append(
                    self._fit_head(model, x, validation_data, n, callbacks, verbose)
                )
            start = max(initial_epoch, head_end)
            if epochs > start:
                self._unfreeze(hp, model)
                history = self._fit_full(
                    model, x, validation_data, epochs - start, callbacks, verbose
                )
                histories.append(history)
        return merge_histories(histories)

    # --- stages ---

    def _head_end(self, epochs: int) -> int:
        if not self.fine_tunes:
            return epochs
        return min(epochs, self.head_epochs or max(1, epochs // 2))

    def _fit_head(self, model, x, validation_data, epochs, callbacks, verbose):
        """Trains the head on cached features if possible, else the model."""
        if self.cache is not None and caching.can_cache_features(model):
            try:
                train, val, batches = self._all_features(model, x, validation_data)
            except (
                TltfError,
                ValueError,
                TypeError,
                AttributeError,
                tf.errors.OpError,
            ) as err:
                logger.warning(
                    "Cannot cache base features (%s); trials train the whole "
                    "model instead.",
                    str(err).strip().splitlines()[-1].strip(),
                )
                self.cache = None
            else:
                self.base_batches_without_reuse += batches * epochs
                return caching.fit_head_on_features(
                    model,
                    train,
                    val,
                    epochs=epochs,
                    callbacks=callbacks,
                    verbose=verbose,
                )
        return self._fit_full(model, x, validation_data, epochs, callbacks, verbose)

    def _fit_full(self, model, x, validation_data, epochs, callbacks, verbose):
        def count(*_args: Any, **_kwargs: Any) -> None:
            self.base_batches += 1
            self.base_batches_without_reuse += 1

        counter = keras.callbacks.LambdaCallback(
            on_train_batch_end=count, on_test_batch_end=count
        )
        return model.fit(
            x,
            validation_data=validation_data,
            epochs=epochs,
            callbacks=[*callbacks, counter],
            verbose=verbose,
            shuffle=False,
        )

    def _all_features(self, model, x, validation_data):
        train, batches = self._features(model, x)
        val = None
        if validation_data is not None:
            val, val_batches = self._features(model, validation_data)
            batches += val_batches
        return train, val, batches

    def _features(self, model: keras.Model, data: tf.data.Dataset):
        """The `FeatureSet` of ``data`` (the base runs at most once) and its batches."""
        entry = self._keys.get(id(data))
        if entry is None:
            # One key per dataset object: every trial's base has the same
            # weights, and a shuffled pipeline's first batch (part of the
            # content fingerprint) changes on every pass.
            key = caching.feature_key(model, data)
            fresh = self.cache.lookup(key) is None
            features = caching.feature_set(model, data, self.cache, key=key)
            self._keys[id(data)] = (data, key, features.steps)
            self.base_batches += features.steps if fresh else 0
        else:
            _, key, _ = entry
            features = caching.feature_set(model, data, self.cache, key=key)
        return features, self._keys[id(data)][2]

    def _unfreeze(self, hp: kt.HyperParameters, model: keras.Model) -> None:
        backbone = backbone_of(model)
        groups = backbone.group_names
        depth = int(hp.get("unfreeze_groups"))
        train_groups(backbone, groups[len(groups) - depth :])
        rate = float(hp.get("fine_tune_learning_rate"))
        decay = hp.get("weight_decay") if "weight_decay" in hp.values else None
        builders.compile_model(model, optimizer=_optimizer(rate, decay))


# --- helpers ---


def _check_space(**spaces: Range) -> None:
    """Declares every search space once, so a bad one fails when given."""
    probe = kt.HyperParameters()
    for name, spec in spaces.items():
        _pick(probe, name, spec, log=name in _LOG_SPACES)


_LOG_SPACES = ("head_learning_rate", "fine_tune_learning_rate", "weight_decay")


def _pick(hp, name: str, spec: Range, *, log: bool = False, cap: int | None = None):
    """Declares ``name`` in ``hp`` from a range, choices or fixed value."""
    if spec is None:
        return None
    if isinstance(spec, tuple) and len(spec) == 2:
        low, high = spec
        if not (arguments.is_number(low) and arguments.is_number(high)):
            raise ConfigError(
                f"{name} range must be two numbers (low, high). Received: "
                f"{name}={spec!r}"
            )
        if isinstance(low, int) and isinstance(high, int) and not log:
            return hp.Int(name, max(1, low), min(high, cap or high))
        if not (0 < low < high if log else low < high):
            raise ConfigError(
                f"{name} range must satisfy {'0 < ' if log else ''}low < high. "
                f"Received: {name}={spec!r}"
            )
        return hp.Float(
            name, float(low), float(high), sampling="log" if log else "linear"
        )
    if isinstance(spec, list):
        return hp.Choice(name, spec)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return hp.Fixed(name, min(spec, cap) if cap else spec)
    raise ConfigError(
        f"{name} must be a (low, high) tuple, a list of choices or a number. "
        f"Received: {name}={spec!r}"
    )


def _optimizer(rate: float, weight_decay: float | None) -> keras.optimizers.Optimizer:
    if weight_decay:
        return keras.optimizers.AdamW(float(rate), weight_decay=float(weight_decay))
    return keras.optimizers.Adam(float(rate))


def _resolve_builder(builder, backbone) -> Callable[..., keras.Model]:
    if callable(builder):
        return builder
    if builder == "auto":
        text = isinstance(backbone, str) and not backbone.endswith(".keras")
        builder = (
            "text" if text and get_backbone(backbone).modality == "text" else "image"
        )
    if builder == "image":
        return builders.build_image_classifier
    if builder == "text":
        text_builder = getattr(builders, "build_text_classifier", None)
        if text_builder is None:
            raise ConfigError("This tltf version has no build_text_classifier.")
        return text_builder
    raise ConfigError(
        "builder must be 'auto', 'image', 'text' or a builder function. "
        f"Received: builder={builder!r}"
    )


def _set_base_weights(base: keras.Model, weights: list[np.ndarray]) -> None:
    try:
        base.set_weights(weights)
    except ValueError as err:
        raise ConfigError(
            "The search's shared base weights do not fit this base "
            f"({first_line(err)}). A resumed search must use the same "
            "backbone: use a new project_name, or overwrite=True."
        ) from err


def _feature_cache(setting: bool | str | os.PathLike) -> caching.FeatureCache:
    """A cache of the search's own: in memory, spilling, or in a folder."""
    if setting is True or setting == "auto":
        return caching.FeatureCache(spill=setting == "auto")
    return caching.FeatureCache(setting)
