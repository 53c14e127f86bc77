"""`BackboneSpec`: everything tltf needs to know about a pretrained base.

A spec is data. Adding a backbone means declaring a spec in one of the source
modules (`keras_apps`, `tfhub`, `kerashub`); the builders never special-case
a backbone by name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import keras

from tltf.errors import ConfigError

#: Ordered ``(group name, regex)`` pairs, matched against layer names.
GroupPatterns = Sequence[tuple[str, str]]


#: The kinds of backbone tltf builds classifiers on.
MODALITIES = ("image", "text")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """Declarative description of a pretrained base.

    Attributes:
        name: Registry name, ``"source:name"`` (e.g. ``"keras:resnet50"``).
        modality: ``"image"`` or ``"text"``.
        constructor: Called as ``constructor(input_shape=..., weights=...)``
            for images (``**kwargs`` for other sources); returns a
            ``keras.Model`` that maps preprocessed inputs to features.
        default_input_shape: Input shape used when the caller gives none.
        min_size: Smallest spatial side the base accepts.
        preprocessing: Mode of :class:`tltf.backbones.layers.Preprocess` that
            maps raw 0-255 pixels to what the base expects.
        group_patterns: Ordered ``(group, regex)`` pairs naming the blocks of
            the base, from input to output. The unfreezing scheduler speaks in
            these groups.
        weights_file: File name of the ImageNet weights (no top) in the Keras
            cache, used to tell offline users which file to place where.
        weights_url: Where that file is downloaded from.
        description: One line for ``list_backbones(verbose=True)``.
        extra: Source-specific settings.
    """

    name: str
    modality: str
    constructor: Callable[..., keras.Model]
    default_input_shape: tuple[int | None, ...] | None = None
    min_size: int = 32
    preprocessing: str = "none"
    group_patterns: GroupPatterns = ()
    weights_file: str | None = None
    weights_url: str | None = None
    description: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(
                f"A backbone's modality is one of {MODALITIES}. Received: "
                f"modality={self.modality!r} for {self.name!r}"
            )


def kind_of(spec: BackboneSpec) -> str:
    """``"an image backbone"`` or ``"a text backbone"``, for messages."""
    article = "an" if spec.modality[0] in "aeiou" else "a"
    return f"{article} {spec.modality} backbone"


def match_layer_groups(
    model: keras.Model, patterns: GroupPatterns
) -> dict[str, list[str]]:
    """Assigns every layer of ``model`` to a named group.

    Layers are visited in model order. A layer joins the first group whose
    regex matches its name; a layer without weights that matches nothing joins
    the group of the layer before it (activations, pooling, adds).

    Args:
        model: The base model.
        patterns: Ordered ``(group, regex)`` pairs.

    Returns:
        An ordered dict from group name to layer names, earliest group first.

    Raises:
        ConfigError: A layer with weights matches no pattern.
    """
    groups: dict[str, list[str]] = {name: [] for name, _ in patterns}
    compiled = [(name, re.compile(regex)) for name, regex in patterns]
    current: str | None = None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        group = next((g for g, rx in compiled if rx.search(layer.name)), None)
        if group is None:
            if layer.weights:
                raise ConfigError(
                    f"Layer '{layer.name}' of '{model.name}' matches no layer "
                    f"group. Known groups: {list(groups)}. Pass layer_groups= "
                    "to name the blocks of this model."
                )
            group = current or compiled[0][0]
        groups[group].append(layer.name)
        current = group
    return {g: names for g, names in groups.items() if names}


def split_into_groups(model: keras.Model, num_groups: int = 4) -> dict[str, list[str]]:
    """Default groups for a user model: consecutive chunks of weighted layers.

    Args:
        model: A model whose layer names tltf does not know.
        num_groups: How many groups to make (fewer if the model is small).

    Returns:
        An ordered dict ``{"part1": [...], ..., "partN": [...]}``.
    """
    layers = [
        layer
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]
    weighted = [i for i, layer in enumerate(layers) if layer.weights]
    if not weighted:
        return {}
    n = max(1, min(num_groups, len(weighted)))
    # Group boundaries fall on weighted layers, spread evenly.
    starts = [weighted[(k * len(weighted)) // n] for k in range(n)]
    groups: dict[str, list[str]] = {}
    for k, start in enumerate(starts):
        stop = starts[k + 1] if k + 1 < n else len(layers)
        begin = 0 if k == 0 else start
        groups[f"part{k + 1}"] = [layer.name for layer in layers[begin:stop]]
    return groups
