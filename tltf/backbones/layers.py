"""Keras layers that put a pretrained base inside a tltf model.

- `Preprocess` maps raw pixels (0-255) to the value range a base expects,
  inside the graph, so exported models take raw pixels.
- `Backbone` wraps the base model. It carries the base's named layer groups
  (so they survive a ``.keras`` round trip) and decides the mode the base runs
  in: inference mode unless ``train_bn`` is set, so BatchNorm statistics of a
  frozen or fine-tuned base never move by accident.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tltf import _compat
from tltf.errors import ConfigError

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)

PREPROCESSING_MODES = ("caffe", "tf", "torch", "unit", "none")


@keras.saving.register_keras_serializable(package="tltf")
class Preprocess(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to a base's expected input.

    Args:
        mode: ``"caffe"`` (RGB->BGR, ImageNet mean subtracted; VGG, ResNet),
            ``"tf"`` (scaled to [-1, 1]; MobileNetV2, Inception),
            ``"torch"`` (scaled to [0, 1], ImageNet mean/std),
            ``"unit"`` (scaled to [0, 1]) or ``"none"``.
        **kwargs: Standard layer arguments.

    Example:
        >>> Preprocess("tf")(np.full((1, 2, 2, 3), 255.0))[0, 0, 0]
        [1., 1., 1.]
    """

    def __init__(self, mode: str = "none", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ConfigError(
                f"Unknown preprocessing mode {mode!r}; use one of "
                f"{PREPROCESSING_MODES}."
            )
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(
                _CAFFE_MEAN_BGR, dtype=self.compute_dtype
            )
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, dtype=self.compute_dtype)
            std = ops.convert_to_tensor(_TORCH_STD, dtype=self.compute_dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "unit":
            return x / 255.0
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


def _check_groups(model: keras.layers.Layer, groups: dict[str, list[str]]) -> None:
    """Fails clearly when a layer group names a layer the base does not have."""
    if not isinstance(model, keras.Model):
        return
    known = {layer.name for layer in model.layers}
    for group, names in groups.items():
        missing = [name for name in names if name not in known]
        if missing:
            raise ConfigError(
                f"Layer group {group!r} names layer {missing[0]!r}, which base "
                f"'{model.name}' does not have (its layers include "
                f"{sorted(known)[:8]}). Fix layer_groups= or leave it out."
            )


@keras.saving.register_keras_serializable(package="tltf")
class Backbone(keras.layers.Layer):
    """A pretrained base inside a tltf model, with its named layer groups.

    The base runs in inference mode (``training=False``) whatever the outer
    model's mode, unless ``train_bn`` is True: then it follows the outer mode,
    and BatchNorm layers in trainable groups update their statistics (frozen
    layers never do: Keras runs a non-trainable BatchNorm in inference mode).

    Args:
        model: The base ``keras.Model`` (or a layer such as a hub layer).
        layer_groups: Ordered mapping from group name to the names of the
            base's layers in it, earliest group first.
        train_bn: Whether BatchNorm layers of unfrozen groups train.
        source: Registry name the base came from (informational).
        **kwargs: Standard layer arguments.
    """

    def __init__(
        self,
        model: keras.layers.Layer,
        layer_groups: dict[str, list[str]] | None = None,
        train_bn: bool = False,
        source: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "backbone")
        super().__init__(**kwargs)
        if not isinstance(model, keras.layers.Layer):
            raise ConfigError(
                "Backbone wraps a keras.Model (or a Keras layer) that maps inputs "
                f"to features. Received: {type(model).__name__} {model!r:.60}"
            )
        self.model = model
        self.layer_groups = {k: list(v) for k, v in (layer_groups or {}).items()}
        _check_groups(model, self.layer_groups)
        self.train_bn = bool(train_bn)
        self.source = source

    @property
    def group_names(self) -> list[str]:
        """Group names from the input side to the output side."""
        return list(self.layer_groups)

    @property
    def label(self) -> str:
        """How messages name the base: its registry name, else the model's."""
        return self.source or self.model.name

    def group_layers(self, group: str) -> list[keras.layers.Layer]:
        """The base's layers in ``group``.

        Raises:
            ConfigError: ``group`` is not a group of this backbone.
        """
        if group not in self.layer_groups:
            raise ConfigError(
                f"Unknown layer group {group!r} for backbone "
                f"'{self.label}'. Known groups: "
                f"{self.group_names}."
            )
        return [self.model.get_layer(name) for name in self.layer_groups[group]]

    def build(self, input_shape):
        if not self.model.built:
            self.model.build(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        return self.model(inputs, training=bool(training) and self.train_bn)

    def traced_settings(self) -> tuple:
        """The settings a traced graph of this layer holds (`tltf.traced`)."""
        return (self.train_bn,)

    def compute_output_shape(self, input_shape):
        return self.model.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, training=None):
        return self.model.compute_output_spec(inputs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "layer_groups": self.layer_groups,
            "train_bn": self.train_bn,
            "source": self.source,
            "frozen_layers": self.frozen_layers(),
            "lora": self.lora_config(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Backbone:
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        frozen = config.pop("frozen_layers", [])
        lora = config.pop("lora", None)
        backbone = cls(**config)
        for layer in backbone.base_layers():
            if layer.name in frozen:
                layer.trainable = False
        if lora:
            backbone.restore_lora(lora)
        return backbone

    def lora_config(self) -> dict[str, Any] | None:
        """Where LoRA is enabled in the base (None without): for reloading.

        Keras layers save their own LoRA rank, but a base that builds its
        layers from constructor arguments (KerasHub) would reload without
        adapters; this records them by position among the base's sublayers.
        """
        adapted = {id(layer) for layer in adapted_layers(self.model)}
        if not adapted:
            return None
        layers = _compat.sublayers(self.model)
        first = next(layer for layer in layers if id(layer) in adapted)
        return {
            "rank": first.lora_rank,
            "alpha": first.lora_alpha,
            "layers": [i for i, layer in enumerate(layers) if id(layer) in adapted],
        }

    def restore_lora(self, lora: dict[str, Any]) -> None:
        """Re-enables the adapters `lora_config` recorded, frozen as they were.

        The adapters start at zero: the saved kernels already hold them.
        """
        layers = _compat.sublayers(self.model)
        for i in lora["layers"]:
            layer = layers[i]
            if not layer.lora_enabled:
                layer.enable_lora(lora["rank"], lora_alpha=lora["alpha"])
        freeze_outside_adapters(self)

    def base_layers(self) -> list[keras.layers.Layer]:
        """The base's own layers (the base itself when it has none)."""
        return list(getattr(self.model, "layers", [self.model]))

    def frozen_layers(self) -> list[str]:
        """Names of the base's layers frozen inside this trainable backbone.

        Saved with the model: a base such as a KerasHub backbone rebuilds its
        layers from constructor arguments, which would otherwise reload a
        partly unfrozen base (and its optimizer's state) as wholly trainable.
        """
        if not self.trainable:
            return []
        return [layer.name for layer in self.base_layers() if not layer.trainable]


def find_backbone(model: keras.Model) -> Backbone | None:
    """The one `Backbone` among ``model``'s layers; None for none or several.

    The search for a model from outside tltf (a user's functional model, a
    ``.keras`` file of another kind): a `tltf.TransferModel` locates its
    parts once (``model.backbone``), and tltf reads them through
    `tltf.model.parts_of`.
    """
    found = [
        layer for layer in getattr(model, "layers", []) if isinstance(layer, Backbone)
    ]
    return found[0] if len(found) == 1 else None


# --- LoRA adapters (see tltf.training.lora) ---


def adapted_layers(
    layers: keras.layers.Layer | list[keras.layers.Layer],
) -> list[keras.layers.Layer]:
    """The layers with LoRA enabled in ``layers`` (at any depth), in order."""
    found, seen = [], set()
    for top in layers if isinstance(layers, list) else [layers]:
        for layer in _compat.sublayers(top):
            if getattr(layer, "lora_enabled", False) and id(layer) not in seen:
                seen.add(id(layer))
                found.append(layer)
    return found


def adapter_variables(layer: keras.layers.Layer) -> list:
    """The LoRA variables (``lora_kernel_a``, ``lora_kernel_b``) of a LoRA layer."""
    return [layer.lora_kernel_a, layer.lora_kernel_b]


def freeze_outside_adapters(backbone: Backbone) -> None:
    """In a base with LoRA adapters, only adapters of trainable layers train.

    Layers without an adapter are frozen (so BatchNorm layers stay in
    inference mode) and every base variable but the adapters is made
    non-trainable; which adapted layers train is left as it is. A base
    without adapters is left untouched.

    Args:
        backbone: The `Backbone` of a tltf model.
    """
    adapted = adapted_layers(backbone.model)
    if not adapted:
        return
    keep = {id(v) for layer in adapted for v in adapter_variables(layer)}
    for layer in _compat.sublayers(backbone.model):
        leaf = len(_compat.sublayers(layer)) == 1
        if leaf and layer.weights and not getattr(layer, "lora_enabled", False):
            layer.trainable = False
    for variable in backbone.model.weights:
        if id(variable) not in keep:
            variable.trainable = False
