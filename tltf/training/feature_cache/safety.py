"""When a model's base features can be computed once: `cache_blockers`.

While the base is frozen and nothing random runs before the head, every epoch
of ``model.fit`` pushes the same inputs through the same base, so the head
can train on pooled features computed once. `cache_blockers` lists what would
make cached features differ from what ``fit`` computes: a trainable base,
augmentation, dropout inside a base that runs in training mode, or a head
that is not the model's one output.
"""

from __future__ import annotations

import keras

from tltf import _compat
from tltf.errors import ConfigError
from tltf.model import parts_of
from tltf.parts import require_backbone, require_head

__all__ = ["cache_blockers", "can_cache_features"]

_DROPOUT_TYPES = (
    keras.layers.Dropout,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
    keras.layers.AlphaDropout,
)


def can_cache_features(model: keras.Model) -> bool:
    """Whether the head can train on base features computed once.

    True when the model's base is fully frozen, nothing random (augmentation
    layers, dropout or noise; inside the base too when ``train_bn`` makes it
    run in training mode) acts before the head, and the head is called once
    and gives the model's only output.

    Args:
        model: A model built by a tltf builder.

    Returns:
        True if `fit_frozen_head` can use cached features.
    """
    return not cache_blockers(model)


def cache_blockers(model: keras.Model) -> list[str]:
    """Reasons why the model's features cannot be cached; empty if they can.

    Args:
        model: A model built by a tltf builder.

    Returns:
        Human-readable reasons, e.g. ``["the base has 12 trainable weights"]``.
    """
    parts = parts_of(model)
    try:
        backbone, head = require_backbone(parts), require_head(parts)
    except ConfigError as err:
        return [str(err)]
    reasons = []
    if _compat.symbolic_calls(head) != 1:
        reasons.append("the head is called more than once")
    elif len(model.outputs) != 1 or model.outputs[0] is not head.output:
        reasons.append("the head's output is not the model's only output")
    head_ids = {id(v) for v in head.weights}
    trainable = [v.path for v in model.trainable_weights if id(v) not in head_ids]
    if trainable:
        reasons.append(
            f"the base has {len(trainable)} trainable weight(s), e.g. {trainable[0]!r}"
        )
    for layer in model.layers:
        if layer is head:
            continue
        inner = _compat.sublayers(layer)
        if layer is backbone and not backbone.train_bn:
            inner = [layer]  # The base runs in inference mode.
        random = [sub.name for sub in inner if _is_random(sub)]
        if random:
            reasons.append(f"layer {random[0]!r} is random in training")
    return reasons


def _is_random(layer: keras.layers.Layer) -> bool:
    if layer.name.startswith("augment_") or isinstance(layer, _DROPOUT_TYPES):
        return getattr(layer, "rate", 1.0) != 0.0
    return any(isinstance(v, keras.random.SeedGenerator) for v in vars(layer).values())
