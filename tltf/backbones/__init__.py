"""Pretrained bases: the registry, specs, and the layers that wrap them."""

from tltf.backbones.kerashub import (
    FirstToken,
    LoadedTextBase,
    TextPreprocess,
    load_text_base,
)
from tltf.backbones.layers import Backbone, Preprocess, find_backbone
from tltf.backbones.registry import (
    get_backbone,
    list_backbones,
    register_backbone,
    register_source,
)
from tltf.backbones.spec import BackboneSpec
from tltf.backbones.tfhub import HubLayer, HubTextPreprocess

__all__ = [
    "Backbone",
    "BackboneSpec",
    "FirstToken",
    "HubLayer",
    "HubTextPreprocess",
    "LoadedTextBase",
    "Preprocess",
    "TextPreprocess",
    "find_backbone",
    "get_backbone",
    "list_backbones",
    "load_text_base",
    "register_backbone",
    "register_source",
]
