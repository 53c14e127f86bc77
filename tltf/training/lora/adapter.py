"""Adapter files: ship the few MB that LoRA trained.

An adapter file (safetensors) holds the LoRA matrices of every adapted layer
and the head's weights, with metadata: rank, alpha, which groups and
targets were adapted, the base's source and a digest of the base's frozen
weights (so an adapter is not loaded onto another base by mistake).
Folding the adapters into the kernels, for serving, is `tltf.lora_merge`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from tltf import arguments
from tltf.backbones.layers import adapted_layers, adapter_variables
from tltf.errors import ConfigError
from tltf.files import atomic_path
from tltf.model import backbone_of, head_of
from tltf.training.lora.enable import add_adapters

FORMAT = "tltf-lora-adapter"
VERSION = "1"


def save_adapter(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    groups: Iterable[str] | None = None,
    targets: Iterable[str] | None = None,
) -> Path:
    """Writes the LoRA adapters and the head of ``model`` to one file.

    The file is written whole or not at all. With the base's own weights
    (from its preset or application), it is all that fine-tuning changed.

    Args:
        model: A tltf model with LoRA enabled (`tltf.enable_lora`).
        path: File to write (``.safetensors`` by convention); replaced if
            it exists.
        groups: The ``groups`` given to `enable_lora`, if any: recorded so
            that `load_adapter` adapts the same layers of a fresh model.
        targets: The ``targets`` given to `enable_lora`, if any (likewise).

    Returns:
        The path written.

    Raises:
        ConfigError: The model has no LoRA adapters.

    Example:
        >>> tltf.save_adapter(model, "intent.lora.safetensors")
    """
    backbone = backbone_of(model)
    adapted = _adapted_or_error(backbone.model)
    tensors: dict[str, np.ndarray] = {}
    for i, layer in enumerate(adapted):
        a, b = adapter_variables(layer)
        tensors[f"adapter.{i}.a"] = keras.ops.convert_to_numpy(a)
        tensors[f"adapter.{i}.b"] = keras.ops.convert_to_numpy(b)
    for j, variable in enumerate(head_of(model).weights):
        tensors[f"head.{j}"] = keras.ops.convert_to_numpy(variable)
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "rank": str(adapted[0].lora_rank),
        "alpha": str(adapted[0].lora_alpha),
        "layers": json.dumps([layer.name for layer in adapted]),
        "groups": json.dumps(None if groups is None else list(groups)),
        "targets": json.dumps(None if targets is None else list(targets)),
        "source": str(backbone.label),
        "base_digest": base_digest(backbone.model),
    }
    target = arguments.path("path", path)
    with atomic_path(target) as staging:
        save_file(tensors, str(staging), metadata=metadata)
    return target


def load_adapter(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads an adapter file written by `save_adapter` into ``model``.

    A model without LoRA gets adapters first, with the rank, groups and
    targets the file records. The base must be the one the adapter was
    trained on (same weights).

    Args:
        model: A tltf model built like the one that was saved.
        path: The adapter file.

    Raises:
        ConfigError: The file is missing or not a tltf adapter; it was
            trained on another base (other weights or layers) or with
            another rank; its head does not fit the model's head.

    Example:
        >>> model = tltf.build_text_classifier("kerashub:bert_tiny_en_uncased", 150)
        >>> tltf.load_adapter(model, "intent.lora.safetensors")
    """
    metadata, tensors = _read(arguments.path("path", path))
    backbone = backbone_of(model)
    if base_digest(backbone.model) != metadata["base_digest"]:
        raise ConfigError(
            f"The adapter {str(path)!r} was trained on another base "
            f"('{metadata['source']}', other weights). Load it into a model "
            "built on the same base and pretrained weights."
        )
    rank = int(metadata["rank"])
    if not adapted_layers(backbone.model):
        add_adapters(
            model,
            backbone,
            rank,
            alpha=float(metadata["alpha"]),
            groups=json.loads(metadata["groups"]),
            targets=json.loads(metadata["targets"]),
        )
    adapted = adapted_layers(backbone.model)
    names = json.loads(metadata["layers"])
    if [layer.name for layer in adapted] != names or adapted[0].lora_rank != rank:
        raise ConfigError(
            f"The adapter {str(path)!r} has rank {rank} on {len(names)} layers; "
            f"this model has rank {adapted[0].lora_rank} on {len(adapted)}. "
            "Load it into a model without LoRA (it is enabled as the file "
            "says) or with the same enable_lora arguments."
        )
    for i, layer in enumerate(adapted):
        for variable, key in zip(adapter_variables(layer), ("a", "b")):
            _assign(variable, tensors[f"adapter.{i}.{key}"], path)
    head = head_of(model).weights
    if len(head) != sum(key.startswith("head.") for key in tensors):
        raise ConfigError(
            f"The adapter {str(path)!r} holds a head with a different number of "
            "weights than this model's. Build the model with the same head "
            "(number of classes, hidden units)."
        )
    for j, variable in enumerate(head):
        _assign(variable, tensors[f"head.{j}"], path)


def base_digest(base: keras.Model) -> str:
    """A digest of the base's weights, LoRA matrices left out (64 hex digits)."""
    skip = {id(v) for layer in adapted_layers(base) for v in adapter_variables(layer)}
    digest = hashlib.sha256()
    for variable in base.weights:
        if id(variable) not in skip:
            value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
            digest.update(f"{value.shape}{value.dtype}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def _adapted_or_error(base: keras.Model) -> list[keras.layers.Layer]:
    adapted = adapted_layers(base)
    if not adapted:
        raise ConfigError(
            "This model has no LoRA adapters to save. Call "
            "tltf.enable_lora(model, rank) (or fine_tune(..., lora_rank=8)) "
            "before training."
        )
    return adapted


def _read(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    if not path.is_file():
        raise ConfigError(
            f"Adapter file {str(path)!r} does not exist. Pass the file that "
            "tltf.save_adapter wrote."
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(
            f"{str(path)!r} is not a readable adapter file ({err}). Pass the "
            "file that tltf.save_adapter wrote."
        ) from err
    if metadata.get("format") != FORMAT:
        raise ConfigError(
            f"{str(path)!r} is a safetensors file but not a tltf adapter "
            f"(format {metadata.get('format')!r}). Pass the file that "
            "tltf.save_adapter wrote."
        )
    return metadata, tensors


def _assign(variable: Any, value: np.ndarray, path: str | os.PathLike) -> None:
    if tuple(variable.shape) != value.shape:
        raise ConfigError(
            f"The adapter {str(path)!r} does not fit this model: "
            f"{variable.path} has shape {tuple(variable.shape)}, the file "
            f"{value.shape}. Build the model as the one that was saved."
        )
    variable.assign(value)
