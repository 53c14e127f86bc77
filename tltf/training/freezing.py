"""Freeze and unfreeze a tltf model's base by named layer group.

These functions only flip ``trainable`` flags. Flipping flags in the middle of
``fit`` is not enough in Keras 3 (the compiled train step and the optimizer
keep the old variable set): `tltf.StagedUnfreezing` does the rest.

In a base with LoRA adapters (`tltf.enable_lora`), "trainable" means that
the adapters of the layer train and nothing else of the base does. Keras'
``layer.trainable = True`` makes every variable of a layer trainable again,
the frozen kernel of a LoRA layer included, so every function here that
unfreezes calls `freeze_outside_adapters` last.

The public functions take a model and read its backbone (`tltf.model.parts_of`);
code that already holds the backbone calls `train_groups` and
`groups_in_training` on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from tltf.backbones.layers import Backbone, adapted_layers, freeze_outside_adapters
from tltf.data.inputs import as_list
from tltf.model import backbone_of


def freeze_backbone(model: keras.Model) -> None:
    """Freezes every layer of the model's base; the head stays trainable."""
    backbone_of(model).trainable = False


def unfreeze_backbone(model: keras.Model) -> None:
    """Makes every layer group of the model's base trainable."""
    backbone = backbone_of(model)
    train_groups(backbone, backbone.group_names)


def set_trainable_groups(model: keras.Model, groups: Iterable[str]) -> None:
    """Makes exactly ``groups`` of the base trainable, and the rest frozen.

    Args:
        model: A model built by a tltf builder.
        groups: Names of the groups to train (one name may be a bare
            string); other groups are frozen.

    Raises:
        ConfigError: A name is not a group of this backbone.
    """
    train_groups(backbone_of(model), groups)


def train_groups(backbone: Backbone, groups: Iterable[str]) -> None:
    """`set_trainable_groups` on a model's `Backbone`."""
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
    return groups_in_training(backbone_of(model))


def groups_in_training(backbone: Backbone) -> list[str]:
    """`trainable_groups` of a model's `Backbone`."""
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


def variable_groups(model: keras.Model, backbone: Backbone) -> dict[str, str]:
    """Maps the path of every trainable-able base variable to its group.

    Variables outside the base (the head, augmentation) map to ``"head"``.

    Args:
        model: A tltf model.
        backbone: Its `Backbone`.

    Returns:
        ``{variable.path: group name}`` for every variable of the model.
    """
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
