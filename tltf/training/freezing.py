"""Freeze and unfreeze a tltf model's base by named layer group.

These functions only flip ``trainable`` flags. Flipping flags in the middle of
``fit`` is not enough in Keras 3 (the compiled train step and the optimizer
keep the old variable set): `tltf.StagedUnfreezing` does the rest.

In a base with LoRA adapters (`tltf.enable_lora`), "trainable" means that
the adapters of the layer train and nothing else of the base does. Keras'
``layer.trainable = True`` makes every variable of a layer trainable again,
the frozen kernel of a LoRA layer included, so every function here that
unfreezes calls `freeze_outside_adapters` last.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from tltf.backbones.layers import (
    adapted_layers,
    find_backbone,
    freeze_outside_adapters,
)
from tltf.data.inputs import as_list


def freeze_backbone(model: keras.Model) -> None:
    """Freezes every layer of the model's base; the head stays trainable."""
    find_backbone(model).trainable = False


def unfreeze_backbone(model: keras.Model) -> None:
    """Makes every layer group of the model's base trainable."""
    backbone = find_backbone(model)
    set_trainable_groups(model, backbone.group_names)


def set_trainable_groups(model: keras.Model, groups: Iterable[str]) -> None:
    """Makes exactly ``groups`` of the base trainable, and the rest frozen.

    Args:
        model: A model built by a tltf builder.
        groups: Names of the groups to train (one name may be a bare
            string); other groups are frozen.

    Raises:
        ConfigError: A name is not a group of this backbone.
    """
    backbone = find_backbone(model)
    wanted = as_list(groups)
    unfrozen = {layer.name for g in wanted for layer in backbone.group_layers(g)}
    if not wanted:
        backbone.trainable = False
        return
    backbone.trainable = True
    for layer in backbone.base_layers():
        layer.trainable = layer.name in unfrozen
    freeze_outside_adapters(backbone)


def trainable_groups(model: keras.Model) -> list[str]:
    """Groups of the base whose layers are all trainable, in model order.

    With LoRA adapters: the groups whose adapted layers are all trainable.
    """
    backbone = find_backbone(model)
    if not backbone.trainable:
        return []
    if adapted_layers(backbone):
        return [
            group
            for group in backbone.group_names
            if (adapted := adapted_layers(backbone.group_layers(group)))
            and all(layer.trainable for layer in adapted)
        ]
    return [
        group
        for group in backbone.group_names
        if all(layer.trainable for layer in backbone.group_layers(group))
    ]


def variable_groups(model: keras.Model) -> dict[str, str]:
    """Maps the path of every trainable-able base variable to its group.

    Variables outside the base (the head, augmentation) map to ``"head"``.

    Returns:
        ``{variable.path: group name}`` for every variable of the model.
    """
    backbone = find_backbone(model)
    groups: dict[str, str] = {}
    for group in backbone.group_names:
        for layer in backbone.group_layers(group):
            for variable in layer.weights:
                groups[variable.path] = group
    for variable in model.weights:
        groups.setdefault(variable.path, "head")
    return groups


def count_trainable_params(model: keras.Model) -> int:
    """Number of scalar parameters that the next train step will update."""
    return int(sum(keras.ops.size(v) for v in model.trainable_weights))
