# ruff: noqa: E501 (one row per line)
"""Bad input to LoRA (`enable_lora`, `save_adapter`, `load_adapter`,
`merge_lora`): a clear error or a correct result. Tiny conv models, rank 2."""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pytest

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch
from tests.support.helpers import build_tiny_model
from tltf.errors import ConfigError

X = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
Y = np.arange(6) % 3


def _root() -> Path:
    return scratch("lora")


def _file(name: str, data: bytes) -> Path:
    path = _root() / name
    path.write_bytes(data)
    return path


def _lora_model(rank: int = 2):
    model = build_tiny_model()
    tltf.enable_lora(model, rank)
    return model


@functools.cache
def _base_weights() -> list:
    return build_tiny_model().get_layer("backbone").model.get_weights()


def _with_base(model):
    """``model`` with the base weights every adapter row shares."""
    model.get_layer("backbone").model.set_weights(_base_weights())
    return model


@functools.cache
def _adapter() -> Path:
    model = _with_base(build_tiny_model())
    tltf.enable_lora(model, 2)
    return tltf.save_adapter(model, _root() / "tiny.lora.safetensors")


def _twice():
    model = _lora_model()
    return tltf.enable_lora(model, 2)


def _merged_predicts_the_same():
    model = _lora_model()
    model.fit(X, Y, epochs=1, verbose=0)
    merged = tltf.merge_lora(model)
    return model.predict(X, verbose=0), merged.predict(X, verbose=0), merged


def _same_outputs(result) -> None:
    adapted, merged, model = result
    np.testing.assert_allclose(adapted, merged, atol=1e-5)
    assert not any("lora" in v.path for v in model.weights)


def _loads_into_a_fresh_model():
    model = _with_base(build_tiny_model())
    tltf.load_adapter(model, _adapter())
    return model


def _has_adapters(model) -> None:
    assert any("lora" in v.path for v in model.trainable_weights), (
        model.trainable_weights
    )


def _merge_plain():
    model = build_tiny_model()
    return model, tltf.merge_lora(model)


def _is_itself(pair) -> None:
    assert pair[1] is pair[0]


def _other_base():
    return build_tiny_model()  # Random base weights of its own.


# fmt: off
ROWS = [
    Row("enable_lora", "rank 0", lambda: tltf.enable_lora(build_tiny_model(), 0), Raises(ConfigError, "LoRA rank must be an integer >= 1")),
    Row("enable_lora", "rank as a string", lambda: tltf.enable_lora(build_tiny_model(), "4"), Raises(ConfigError, "Received: rank='4'")),
    Row("enable_lora", "rank 2.5", lambda: tltf.enable_lora(build_tiny_model(), 2.5), Raises(ConfigError, "LoRA rank must be an integer")),
    Row("enable_lora", "negative alpha", lambda: tltf.enable_lora(build_tiny_model(), 2, alpha=-1), Raises(ConfigError, "LoRA alpha must be a number > 0")),
    Row("enable_lora", "an unknown group", lambda: tltf.enable_lora(build_tiny_model(), 2, groups=["block9"]), Raises(ConfigError, "block9")),
    Row("enable_lora", "targets that match nothing", lambda: tltf.enable_lora(build_tiny_model(), 2, targets=["query"]), Raises(ConfigError, "query")),
    Row("enable_lora", "twice", _twice, Raises(ConfigError, "LoRA is already enabled")),
    Row("enable_lora", "a plain Keras model", lambda: tltf.enable_lora(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]), 2), Raises(ConfigError, "tltf Backbone")),
    Row("save_adapter", "a model without adapters", lambda: tltf.save_adapter(build_tiny_model(), _root() / "x.safetensors"), Raises(ConfigError, "has no LoRA adapters")),
    Row("save_adapter", "into a folder that is a file", lambda: tltf.save_adapter(_lora_model(), _file("plain", b"x") / "a.safetensors"), Raises(tltf.FileError, "Cannot write")),
    Row("load_adapter", "a file that does not exist", lambda: tltf.load_adapter(build_tiny_model(), _root() / "none.safetensors"), Raises(ConfigError, "does not exist")),
    Row("load_adapter", "a file that is not an adapter", lambda: tltf.load_adapter(build_tiny_model(), _file("junk.safetensors", b"junk" * 10)), Raises(ConfigError, "is not a readable adapter file")),
    Row("load_adapter", "a folder", lambda: tltf.load_adapter(build_tiny_model(), _root()), Raises(ConfigError, "does not exist")),
    Row("load_adapter", "a model of another base", lambda: tltf.load_adapter(_other_base(), _adapter()), Raises(ConfigError, "trained on another base")),
    Row("load_adapter", "into a fresh model", _loads_into_a_fresh_model, _has_adapters),
    Row("merge_lora", "a model without adapters", _merge_plain, _is_itself),
    Row("merge_lora", "a trained LoRA model", _merged_predicts_the_same, _same_outputs),
    Row("enable_lora", "a NaN alpha", lambda: tltf.enable_lora(build_tiny_model(), 2, alpha=float("nan")), Raises(ConfigError, "Received: alpha=nan")),
    Row("enable_lora", "None as the model", lambda: tltf.enable_lora(None), Raises(ConfigError, "model must be a Keras model")),
    Row("load_adapter", "None as the path", lambda: tltf.load_adapter(build_tiny_model(), None), Raises(ConfigError, "path must be a path")),
    Row("merge_lora", "None as the model", lambda: tltf.merge_lora(None), Raises(ConfigError, "Received: model=None")),
]
# fmt: on


@pytest.mark.parametrize("row", params(ROWS))
def test_lora(row: Row) -> None:
    check(row)
