"""LoRA adapters folded into their kernels: `merge_lora`, below training and export.

Training puts adapters on a base (`tltf.training.lora`); serving wants an
ordinary model. `merge_lora` makes that copy: every adapted kernel becomes
``W + (alpha / rank) A B`` and the LoRA variables are gone. It needs nothing
of training, so `tltf.export` merges without importing `tltf.training`.
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import keras

from tltf.backbones.layers import adapted_layers
from tltf.builders import compile_arguments, fresh_optimizer
from tltf.distribute.scope import strategy_scope
from tltf.model import require_model

__all__ = ["merge_lora"]


def merge_lora(model: keras.Model) -> keras.Model:
    """An ordinary copy of ``model`` with every adapter folded into its kernel.

    The copy computes the same outputs (each kernel becomes
    ``W + (alpha / rank) A B``) with no LoRA variables or extra matmuls:
    what serving needs. `tltf.export_saved_model` and `tltf.export_litert`
    merge by themselves. The copy is compiled like ``model`` (with a fresh
    optimizer) when ``model`` is compiled. A model without LoRA is returned
    as it is.

    Args:
        model: A tltf model.

    Returns:
        A new model without LoRA, or ``model`` itself if it has none.

    Example:
        >>> plain = tltf.merge_lora(model)
        >>> plain.count_params() < model.count_params()
        True
    """
    require_model(model)
    if not adapted_layers(model):  # any Keras model: a tltf one or not
        return model
    with tempfile.TemporaryDirectory() as tmp:
        lora_file, plain_file = Path(tmp) / "lora.keras", Path(tmp) / "plain.keras"
        model.save(lora_file)  # LoRA layers save their merged kernels
        _rewrite_config(lora_file, plain_file)
        with strategy_scope(model=model):
            merged = keras.models.load_model(plain_file, compile=False)
            if getattr(model, "optimizer", None) is not None:
                arguments = compile_arguments(model)
                arguments["optimizer"] = fresh_optimizer(model.optimizer)
                merged.compile(**arguments)
    return merged


def _rewrite_config(source: Path, target: Path) -> None:
    """Copies a ``.keras`` file with LoRA settings and compile config removed.

    The weights and assets (a tokenizer's vocabulary) are copied as they are.
    """
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = _without_lora(json.loads(data))
                config.pop("compile_config", None)
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def _without_lora(config: Any) -> Any:
    """``config`` with every layer's LoRA settings removed (any depth)."""
    if isinstance(config, dict):
        return {
            key: _without_lora(value)
            for key, value in config.items()
            if key not in ("lora_rank", "lora_alpha")
            and not (key == "lora" and isinstance(value, dict))
        }
    if isinstance(config, list):
        return [_without_lora(value) for value in config]
    return config
