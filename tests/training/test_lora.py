"""LoRA: only the adapters (and the head) train; adapters save, load and merge.

The tiny conv base (three 3x3 convolutions with BatchNorm) and the text
matrix (offline MiniLM with its default mean pooling, tiny BERT with
``"cls"``) use their builders' defaults; ``rank=2`` on the tiny bases
because their layers are 4 to 8 units wide.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, same, text_backbone, weights_of
from tltf.backbones.layers import adapted_layers, adapter_variables
from tltf.errors import ConfigError
from tltf.training.lora import lora_summary

TEXTS = [
    "a good film",
    "i loved it",
    "great fun",
    "a bad film",
    "i hated it",
    "dull and boring",
    "the team won",
    "a late goal",
    "the cup final",
]
TEXT_LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])


def _images(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    x = rng.uniform(0, 1, (n, 32, 32, 3)).astype("float32")
    x[np.arange(n), ..., labels] += 1.0
    return x, labels


def _base_state(model: keras.Model) -> list[np.ndarray]:
    """Every base variable but the adapters (kernels, biases, BatchNorm stats)."""
    base = model.backbone.model
    skip = {id(v) for layer in adapted_layers(base) for v in adapter_variables(layer)}
    return [np.array(v) for v in base.weights if id(v) not in skip]


def _adapters(model: keras.Model) -> list[np.ndarray]:
    base = model.backbone.model
    return [
        np.array(v) for layer in adapted_layers(base) for v in adapter_variables(layer)
    ]


def test_only_adapters_and_head_train_and_outputs_start_unchanged():
    model = build_tiny_model()
    x, y = _images()
    before_outputs = model.predict(x, verbose=0)
    adapted = tltf.enable_lora(model, rank=2)
    assert adapted == ["block1/block1_conv", "block2/block2_conv", "block3/block3_conv"]
    np.testing.assert_allclose(model.predict(x, verbose=0), before_outputs, atol=1e-6)
    base, adapters = _base_state(model), _adapters(model)
    head = weights_of(model.head)
    summary = lora_summary(model)
    head_params = sum(w.size for w in head)
    assert summary["trainable_params"] == summary["adapter_params"] + head_params
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert same(_base_state(model), base)  # kernels, biases, BN statistics
    b_matrices = _adapters(model)[1::2]
    assert all(np.abs(b).max() > 0 for b in b_matrices)  # every B left zero
    assert not same(weights_of(model.head), head)
    assert not same(_adapters(model), adapters)


def test_fine_tune_with_lora_reaches_adapters_group_by_group():
    model = build_tiny_model()
    x, y = _images()
    base = _base_state(model)
    history = tltf.fine_tune(
        model, (x, y), epochs=2, schedule="gradual", lora_rank=2, verbose=0
    )
    assert same(_base_state(model), base)
    b = {layer.name: np.array(layer.lora_kernel_b) for layer in adapted_layers(model)}
    # Two unfrozen epochs of "gradual" reach block3, then block2; never block1.
    assert np.abs(b["block3_conv"]).max() > 0
    assert np.abs(b["block2_conv"]).max() > 0
    assert np.abs(b["block1_conv"]).max() == 0
    params = history.history["trainable_params"]
    assert params[-1] > params[-2] > params[0]
    assert tltf.trainable_groups(model) == ["block2", "block3"]


def test_adapter_round_trip_and_merged_model_match(tmp_path):
    x, y = _images()
    model = build_tiny_model()
    pretrained = tmp_path / "base.weights.h5"
    model.save_weights(pretrained)
    tltf.enable_lora(model, rank=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    expected = model.predict(x, verbose=0)
    path = tltf.save_adapter(model, tmp_path / "tiny.lora.safetensors")
    assert path.stat().st_size < 0.5 * sum(w.nbytes for w in weights_of(model.layers))

    fresh = build_tiny_model()
    fresh.load_weights(pretrained)  # the same pretrained base
    tltf.load_adapter(fresh, path)
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-6)

    merged = tltf.merge_lora(model)
    assert not adapted_layers(merged)
    assert merged.count_params() < model.count_params()
    np.testing.assert_allclose(merged.predict(x, verbose=0), expected, atol=1e-5)

    other = build_tiny_model()  # other random weights: not the adapter's base
    with pytest.raises(ConfigError, match="trained on another base"):
        tltf.load_adapter(other, path)


def test_keras_file_of_a_lora_model_reloads_with_the_same_outputs(tmp_path):
    model = build_tiny_model()
    x, y = _images()
    tltf.enable_lora(model, rank=2)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )


def test_bad_lora_requests_fail_clearly(tmp_path):
    model = build_tiny_model()
    with pytest.raises(ConfigError, match="rank must be an integer >= 1"):
        tltf.enable_lora(model, rank=0)
    with pytest.raises(ConfigError, match="Unknown layer group 'stage9'"):
        tltf.enable_lora(model, groups="stage9")
    with pytest.raises(ConfigError, match="No layer of the base .* matches"):
        tltf.enable_lora(model, targets="query")
    with pytest.raises(ConfigError, match="no LoRA adapters to save"):
        tltf.save_adapter(model, tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()
    tltf.enable_lora(model, rank=2, groups="block3")
    assert [layer.name for layer in adapted_layers(model)] == ["block3_conv"]
    with pytest.raises(ConfigError, match="already enabled"):
        tltf.enable_lora(model, rank=2)
    (tmp_path / "not.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="not a readable adapter file"):
        tltf.load_adapter(model, tmp_path / "not.safetensors")


def test_mixed_precision_lora_trains_adapters_only():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_tiny_model()
        x, y = _images()
        tltf.enable_lora(model, rank=2)
        base = _base_state(model)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert same(_base_state(model), base)
        assert all(np.abs(b).max() > 0 for b in _adapters(model)[1::2])
    finally:
        keras.mixed_precision.set_global_policy(policy)


@pytest.mark.parametrize("source", ["minilm", "tiny_bert"])
def test_text_lora_adapts_query_and_value_and_keeps_the_encoder(source, tmp_path):
    backbone = text_backbone(source, tmp_path / "bert", TEXTS)
    # sequence_length=16: the tiny preset's position embeddings stop at 16.
    model = tltf.build_text_classifier(backbone, 3, sequence_length=16)
    groups = model.backbone.group_names
    adapted = tltf.enable_lora(model)  # default rank 8
    encoders = [g for g in groups if g.startswith("encoder")]
    assert adapted == [
        f"{g}/{name}" for g in encoders for name in ("value", "query")
    ] or (
        sorted(adapted)
        == sorted(f"{g}/{n}" for g in encoders for n in ("query", "value"))
    )
    base = _base_state(model)
    model.fit(np.array(TEXTS), TEXT_LABELS, epochs=2, batch_size=3, verbose=0)
    assert same(_base_state(model), base)
    assert all(np.abs(b).max() > 0 for b in _adapters(model)[1::2])
    expected = model.predict(TEXTS, verbose=0)
    merged = tltf.merge_lora(model)
    np.testing.assert_allclose(merged.predict(TEXTS, verbose=0), expected, atol=1e-5)
    path = tltf.save_adapter(model, tmp_path / "text.safetensors")
    assert (
        path.stat().st_size < 0.05 * sum(w.nbytes for w in weights_of(model.layers))
        or source == "tiny_bert"
    )  # the tiny BERT is smaller than a head


def test_lora_under_a_strategy_creates_adapters_in_its_scope():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = build_tiny_model()
    tltf.enable_lora(model, rank=2)  # enters the model's strategy by itself
    for layer in adapted_layers(model):
        for variable in adapter_variables(layer):
            assert isinstance(variable.value, tf.distribute.DistributedValues)
    x, y = _images()
    base = _base_state(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert same(_base_state(model), base)
    assert all(np.abs(b).max() > 0 for b in _adapters(model)[1::2])


def test_export_of_a_lora_model_serves_its_outputs_without_adapters(tmp_path):
    model = build_tiny_model()
    x, y = _images()
    tltf.enable_lora(model, rank=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    expected = model.predict(x, verbose=0)
    # verify=False: the fresh-process reload of a merged LoRA export is
    # checked by tests/cli/test_commands.py (train --lora-rank ... --export);
    # here it is loaded and compared in this process.
    path = tltf.export_saved_model(model, tmp_path / "export", verify=False)
    served = tf.saved_model.load(str(path))
    names = [v.name for v in served.signatures["pixels"].variables]
    assert "block1_conv/kernel:0" in names
    assert not [n for n in names if "lora" in n]  # merged before export
    out = served.signatures["pixels"](pixels=tf.constant(x))  # the model's input
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    assert adapted_layers(model)  # the model itself keeps its adapters
