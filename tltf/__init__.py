"""tltf: transfer learning for Keras 3 on TensorFlow.

The data flows one way: data -> backbone -> head -> schedule -> distribute ->
export. Everything a user needs is re-exported here.
"""

from tltf import data
from tltf.backbones import (
    Backbone,
    BackboneSpec,
    Preprocess,
    get_backbone,
    list_backbones,
)
from tltf.builders import build_image_classifier, compile_model
from tltf.errors import (
    ConfigError,
    DataError,
    ExportError,
    MissingWeightsError,
    TltfError,
)
from tltf.heads import Head
from tltf.metrics import MacroF1, MacroPrecision, MacroRecall
from tltf.training.freezing import (
    freeze_backbone,
    set_trainable_groups,
    trainable_groups,
    unfreeze_backbone,
)

__version__ = "0.1.0"

__all__ = [
    "Backbone",
    "BackboneSpec",
    "ConfigError",
    "DataError",
    "ExportError",
    "Head",
    "MacroF1",
    "MacroPrecision",
    "MacroRecall",
    "MissingWeightsError",
    "Preprocess",
    "TltfError",
    "build_image_classifier",
    "compile_model",
    "data",
    "freeze_backbone",
    "get_backbone",
    "list_backbones",
    "set_trainable_groups",
    "trainable_groups",
    "unfreeze_backbone",
]
