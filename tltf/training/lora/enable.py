"""`enable_lora`: low-rank adapters on a tltf model's base, the rest frozen."""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Sequence
from typing import Any

import keras

from tltf import _compat
from tltf.backbones.layers import Backbone, adapted_layers, adapter_variables
from tltf.data.inputs import as_list
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError
from tltf.model import backbone_of
from tltf.training.freezing import train_groups

logger = logging.getLogger(__name__)

#: Names of attention projections that take LoRA by default: the query and
#: value projections (Hu et al. 2021), as KerasHub's encoders name them.
ATTENTION_TARGETS = ("query", "value", "query_dense", "value_dense")
#: Convolution kernel sizes that take LoRA by default in image bases.
CONV_KERNELS = ((1, 1), (3, 3))


def enable_lora(
    model: keras.Model,
    rank: int = 8,
    *,
    alpha: float | None = None,
    groups: str | Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
) -> list[str]:
    """Adds LoRA adapters to the base's layers; the rest of the base is frozen.

    Each chosen layer's kernel ``W`` is frozen and ``W + (alpha / rank) A B``
    is used instead, with ``A`` (``in x rank``) and ``B`` (``rank x out``,
    zero at first, so the model's outputs do not change) trainable. After
    this call ``fit`` trains the adapters and the head and nothing else of
    the base (biases, norms and BatchNorm statistics included). With
    `tltf.StagedUnfreezing` or `tltf.fine_tune` the adapters of a layer group
    train once the schedule reaches that group.

    Call it before training. If the model's optimizer is built, the next
    ``fit`` (or ``save``) replaces it by a copy built on the adapters and the
    head (a built optimizer cannot take new variables; `tltf.traced`): its
    step count and the head's slots carry over.

    Args:
        model: A model built by a tltf builder on a Keras base (Keras
            applications, KerasHub).
        rank: Rank of the adapters.
        alpha: Scale numerator; None means ``rank`` (a scale of 1).
        groups: Layer groups of the base to adapt (names as in
            ``tltf.list_backbones`` / ``Backbone.group_names``); None for all.
        targets: Names of the layers to adapt, or ``fnmatch`` patterns (e.g.
            ``["query", "value"]``, ``"*conv*"``). None chooses per base: the
            attention query and value projections when the base has them
            (BERT-family encoders), else every 1x1 and 3x3 convolution and
            every dense layer.

    Returns:
        The adapted layers, as ``"<group>/<layer name>"``.

    Raises:
        ConfigError: Bad rank or alpha, unknown groups, no layer that can
            take LoRA (e.g. a TF Hub SavedModel base, whose layers are not
            Keras layers), or LoRA already enabled on this model.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> adapted = tltf.enable_lora(model, rank=4)
        >>> model.fit(images, labels)  # trains the adapters and the head
    """
    backbone = backbone_of(model)
    return add_adapters(
        model, backbone, rank, alpha=alpha, groups=groups, targets=targets
    )


def add_adapters(
    model: keras.Model,
    backbone: Backbone,
    rank: int,
    *,
    alpha: float | None = None,
    groups: str | Sequence[str] | None = None,
    targets: str | Sequence[str] | None = None,
) -> list[str]:
    """`enable_lora` on ``model``, whose `Backbone` the caller already holds."""
    _check_rank(rank, alpha)
    done = adapted_layers(backbone.model)
    if done:
        raise ConfigError(
            f"LoRA is already enabled on this model's base ({len(done)} layers, "
            f"rank {done[0].lora_rank}). Enable it once; for another rank or "
            "other layers, build the model again."
        )
    chosen = select_targets(backbone, groups, targets)
    with strategy_scope(model=model):
        for _, layer in chosen:
            layer.enable_lora(rank, lora_alpha=alpha)
        train_groups(backbone, backbone.group_names)
    summary = backbone_summary(model, backbone)
    logger.info(
        "LoRA rank %d on %d layers (%s): %s adapter parameters, %.2f%% of the "
        "model's %s; %s parameters train with the head.",
        rank,
        summary["layers"],
        ", ".join(sorted({layer.name for _, layer in chosen})[:6]),
        f"{summary['adapter_params']:,}",
        100 * summary["adapter_params"] / summary["total_params"],
        f"{summary['total_params']:,}",
        f"{summary['trainable_params']:,}",
    )
    return [f"{group}/{layer.name}" for group, layer in chosen]


def select_targets(
    backbone: Backbone,
    groups: str | Sequence[str] | None,
    targets: str | Sequence[str] | None,
) -> list[tuple[str, keras.layers.Layer]]:
    """The ``(group, layer)`` pairs `enable_lora` adapts, in model order.

    Raises:
        ConfigError: Unknown groups, or no layer to adapt.
    """
    names = backbone.group_names if groups is None else as_list(groups)
    candidates = [
        (group, layer)
        for group in names
        for top in backbone.group_layers(group)  # ConfigError for unknown
        for layer in _compat.sublayers(top)
        if _can_adapt(layer)
    ]
    source = backbone.label
    if not candidates:
        raise ConfigError(
            f"The base '{source}' has no layer that can take LoRA in groups "
            f"{names} (LoRA needs Keras Dense, EinsumDense, Embedding or "
            "convolution layers; a TF Hub SavedModel's layers are not Keras "
            "layers). Use a Keras applications or KerasHub base, or fine-tune "
            "without lora_rank."
        )
    if targets is None:
        chosen = [(g, layer) for g, layer in candidates if _default_target(layer)]
        if any(layer.name in ATTENTION_TARGETS for _, layer in chosen):
            chosen = [pair for pair in chosen if pair[1].name in ATTENTION_TARGETS]
    else:
        patterns = as_list(targets)
        chosen = [
            (g, layer)
            for g, layer in candidates
            if any(fnmatch.fnmatchcase(layer.name, p) for p in patterns)
        ]
    if not chosen:
        known = sorted({layer.name for _, layer in candidates})
        raise ConfigError(
            f"No layer of the base '{source}' matches targets={targets!r} in "
            f"groups {names}. Layers that can take LoRA there: "
            f"{known[:20]}{' ...' if len(known) > 20 else ''}."
        )
    return chosen


def default_targets(model: keras.Model) -> list[str]:
    """The layers `enable_lora` adapts by default, as ``"<group>/<name>"``.

    Example:
        >>> tltf.training.lora.default_targets(model)[:2]
        ['encoder_0/query', 'encoder_0/value']
    """
    chosen = select_targets(backbone_of(model), None, None)
    return [f"{group}/{layer.name}" for group, layer in chosen]


def lora_summary(model: keras.Model) -> dict[str, Any]:
    """Counts of a model with LoRA: adapted layers, rank, parameters.

    Returns:
        ``{"layers", "rank", "alpha", "adapter_params", "trainable_params",
        "total_params"}``; ``layers`` is 0 without LoRA.
    """
    return backbone_summary(model, backbone_of(model))


def backbone_summary(model: keras.Model, backbone: Backbone) -> dict[str, Any]:
    """`lora_summary` of ``model``, whose `Backbone` is ``backbone``."""
    adapted = adapted_layers(backbone.model)
    return {
        "layers": len(adapted),
        "rank": adapted[0].lora_rank if adapted else None,
        "alpha": adapted[0].lora_alpha if adapted else None,
        "adapter_params": _size(v for a in adapted for v in adapter_variables(a)),
        "trainable_params": _size(model.trainable_weights),
        "total_params": _size(model.weights),
    }


def _size(variables: Any) -> int:
    return int(sum(keras.ops.size(v) for v in variables))


def _can_adapt(layer: keras.layers.Layer) -> bool:
    return (
        callable(getattr(layer, "enable_lora", None))
        and not isinstance(layer, keras.Model)
        and layer.built
        and not getattr(layer, "lora_enabled", False)
    )


def _default_target(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, keras.layers.Embedding):
        return False
    kernel_size = getattr(layer, "kernel_size", None)
    return kernel_size is None or tuple(kernel_size) in CONV_KERNELS


def _check_rank(rank: int, alpha: float | None) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(
            f"LoRA rank must be an integer >= 1. Received: rank={rank!r}."
        )
    if alpha is not None and (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        raise ConfigError(
            f"LoRA alpha must be a number > 0 (or None for alpha = rank). "
            f"Received: alpha={alpha!r}."
        )
