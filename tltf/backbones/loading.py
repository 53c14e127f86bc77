"""Turning a backbone argument (name, model or file) into a ready base model.

Weights come from three places: ``"imagenet"`` (the Keras download and cache),
a local weights file, or None (random, for tests and from-scratch training).
Offline, a missing ImageNet file fails within seconds with its name and where
to put it, instead of hanging in a download.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import keras

from tltf.backbones.registry import get_backbone
from tltf.backbones.spec import (
    BackboneSpec,
    kind_of,
    match_layer_groups,
    split_into_groups,
)
from tltf.errors import ConfigError, MissingWeightsError, first_line

_PROBE_TIMEOUT_S = 3.0


@dataclasses.dataclass
class LoadedBase:
    """A base model with what the builder needs to wrap it."""

    model: keras.Model
    layer_groups: dict[str, list[str]]
    preprocessing: str
    source: str

    @property
    def short_name(self) -> str:
        """A name for the model: ``resnet50`` for ``keras:resnet50``."""
        if ":" in self.source and not self.source.endswith(".keras"):
            return self.source.rsplit(":", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
        return self.model.name


def keras_cache_dir() -> Path:
    """The folder where Keras caches downloaded weights."""
    base = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return Path(base) / "models"


def load_image_base(
    backbone: str | keras.Model | os.PathLike,
    *,
    weights: str | os.PathLike | None,
    input_shape: tuple[int, ...] | None,
    preprocessing: str | None = None,
    layer_groups: dict[str, list[str]] | None = None,
) -> LoadedBase:
    """Builds or loads the base of an image classifier.

    Args:
        backbone: A registry name, a ``keras.Model``, or a ``.keras`` file.
        weights: ``"imagenet"``, a weights file path, or None.
        input_shape: ``(height, width, 3)``; None for the backbone's default.
        preprocessing: Overrides the spec's preprocessing mode.
        layer_groups: Overrides the derived layer groups.

    Returns:
        The base with its layer groups and preprocessing mode.

    Raises:
        ConfigError: Unknown backbone, bad input size, or weights that do not
            fit the architecture.
        MissingWeightsError: ImageNet weights are not cached and cannot be
            downloaded.
    """
    if isinstance(backbone, keras.Model):
        _check_own_shape(backbone, input_shape)
        return _user_model(backbone, "user model", preprocessing, layer_groups)
    if isinstance(backbone, (str, os.PathLike)) and str(backbone).endswith(".keras"):
        path = Path(backbone)
        if not path.is_file():
            raise ConfigError(f"Backbone file {str(path)!r} does not exist.")
        model = keras.saving.load_model(path, compile=False)
        _check_own_shape(model, input_shape)
        return _user_model(model, str(path), preprocessing, layer_groups)
    spec = get_backbone(str(backbone))
    if spec.modality != "image":
        raise ConfigError(
            f"Backbone '{spec.name}' is {kind_of(spec)}; "
            "build_image_classifier needs an image backbone. Image backbones: "
            "see tltf.list_backbones('image')."
        )
    shape = _check_input_shape(spec, input_shape)
    model = _construct(spec, shape, weights)
    groups = layer_groups or match_layer_groups(model, spec.group_patterns)
    return LoadedBase(model, groups, preprocessing or spec.preprocessing, spec.name)


def _check_own_shape(model: keras.Model, input_shape) -> None:
    """A model passed as the backbone keeps its input shape: a different
    ``input_shape`` cannot apply, and is refused rather than ignored."""
    own = tuple(model.input_shape[1:])
    if input_shape is not None and tuple(input_shape) != own:
        raise ConfigError(
            f"input_shape={tuple(input_shape)} cannot apply to the backbone model "
            f"'{model.name}', which takes inputs of shape {own}. Leave input_shape "
            "out, or build the backbone model for that shape."
        )


def _user_model(model, source, preprocessing, layer_groups) -> LoadedBase:
    groups = layer_groups or split_into_groups(model)
    return LoadedBase(model, groups, preprocessing or "none", source)


def _check_input_shape(spec: BackboneSpec, input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape or spec.default_input_shape)
    if len(shape) != 3 or shape[-1] != 3:
        raise ConfigError(
            f"'{spec.name}' takes RGB images: input_shape must be "
            f"(height, width, 3). Received: input_shape={input_shape!r}"
        )
    if any(side is not None and side < spec.min_size for side in shape[:2]):
        raise ConfigError(
            f"'{spec.name}' needs images of at least {spec.min_size}x"
            f"{spec.min_size} pixels. Resize your images or pass a larger "
            f"input_shape. Received: input_shape={input_shape!r}"
        )
    return shape


def _construct(spec: BackboneSpec, shape, weights) -> keras.Model:
    if weights == "imagenet":
        _ensure_imagenet_available(spec)
    elif weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise MissingWeightsError(
                f"Weights file {str(path)!r} for '{spec.name}' does not exist. "
                "Pass weights='imagenet', weights=None, or the path of a saved "
                "weights file (.weights.h5 or .h5)."
            )
        weights = str(path)
    try:
        return spec.constructor(input_shape=shape, weights=weights)
    except (ValueError, OSError) as err:  # OSError: not an HDF5 file at all.
        if weights not in (None, "imagenet"):
            raise ConfigError(
                f"Weights file {weights!r} does not fit '{spec.name}' with "
                f"input_shape={shape}: {first_line(err)}. Pass a weights "
                "file saved from the same architecture without its top "
                "(include_top=False; .weights.h5 or Keras' *_notop.h5), "
                "weights='imagenet' or weights=None."
            ) from err
        if isinstance(err, OSError):
            raise
        raise ConfigError(f"Cannot build '{spec.name}': {first_line(err)}") from err


def _ensure_imagenet_available(spec: BackboneSpec) -> None:
    """Fails fast when the ImageNet file is neither cached nor downloadable."""
    if spec.weights_file is None:
        return
    cached = keras_cache_dir() / spec.weights_file
    if cached.is_file() or can_reach(spec.weights_url):
        return
    raise MissingWeightsError(
        f"ImageNet weights for '{spec.name}' are not cached and this machine "
        f"cannot download them. Missing file: {spec.weights_file}. Download it "
        f"from {spec.weights_url} and put it at {cached} (or set KERAS_HOME), "
        "pass weights=<path to the file>, or use weights=None for random "
        "weights."
    )


def can_reach(url: str | None) -> bool:
    """Whether a connection to the host of ``url`` opens within a short probe."""
    if not url:
        return False
    host = url.split("//", 1)[-1].split("/", 1)[0]
    try:
        with socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
