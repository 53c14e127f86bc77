"""Pretrained bases: the registry, specs, and the layers that wrap them."""

from tltf.backbones.layers import Backbone, Preprocess, find_backbone
from tltf.backbones.registry import (
    get_backbone,
    list_backbones,
    register_backbone,
    register_source,
)
from tltf.backbones.spec import BackboneSpec

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Preprocess",
    "find_backbone",
    "get_backbone",
    "list_backbones",
    "register_backbone",
    "register_source",
]
