"""The contrastive stage of `fine_tune` for text classifiers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import (
    build_tiny_model,
    same,
    text_row,
    tiny_bert_preset,
    weights_of,
)
from tltf.errors import ConfigError
from tltf.training import contrastive
from tltf.training.freezing import trainable_groups

TEXTS = [
    "a good film",
    "great acting",
    "i loved it",
    "a bad film",
    "awful acting",
    "i hated it",
    "what time is it",
    "set an alarm",
    "wake me up",
]
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_bert-mean"])
def source(request, tmp_path_factory) -> tuple[str, str | None]:
    """A tiny BERT preset and a pooling: both heads, "cls" and "mean".

    The tiny preset rather than the offline MiniLM, for time: the stage is the
    same code for both, and what differs between them is the pooling, which
    this covers. MiniLM runs the stage at its defaults through ``tltf train``
    in test_defaults (``test_cli_train_on_a_csv``) and on real
    data in ``benchmarks/clinc150``.
    """
    return text_row(request.param, tmp_path_factory.mktemp("bert"), TEXTS)


def text_model(source: tuple[str, str | None]):
    backbone, pooling = source
    # sequence_length=16: the tiny preset's position embeddings stop at 16.
    return tltf.build_text_classifier(backbone, 3, sequence_length=16, pooling=pooling)


# --- the loss and the batches ---


def test_supcon_loss_by_hand():
    # Two classes of two identical unit vectors, orthogonal to each other:
    # at temperature 1 each anchor sees its positive at cosine 1 and two
    # negatives at 0, so its loss is -log(e / (e + 2)).
    embeddings = tf.constant([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    loss = contrastive.supcon_loss([0, 0, 1, 1], embeddings, temperature=1.0)
    expected = math.log(math.e + 2) - 1
    np.testing.assert_allclose(loss.numpy(), [expected] * 4, rtol=1e-6)
    # A lone class has no positive: its anchor adds nothing.
    lone = contrastive.supcon_loss([0, 0, 1], embeddings[:3], temperature=1.0)
    assert lone.numpy()[2] == 0.0
    # A batch whose positives are closer than its negatives scores lower.
    apart = contrastive.supcon_loss([0, 1, 0, 1], embeddings, temperature=1.0)
    assert float(tf.reduce_mean(apart)) > expected


def test_grouped_batches_give_every_text_a_positive_and_cover_the_data():
    labels = np.repeat(np.arange(20), 8)  # 160 texts
    order = contrastive.grouped_order(labels, steps=10, seed=3)
    assert len(order) == 10 * contrastive.BATCH_SIZE
    pairs = labels[order].reshape(-1, contrastive.PER_CLASS)
    assert (pairs == pairs[:, :1]).all()  # each class comes in twos
    # 320 draws over 160 texts: every text twice.
    assert np.bincount(order, minlength=160).tolist() == [2] * 160


def test_a_class_with_one_text_is_its_own_positive():
    order = contrastive.grouped_order(np.array([0, 1, 1, 1]), steps=1, batch_size=4)
    assert sorted(order[:4].tolist()) in ([0, 0, 1, 2], [0, 0, 1, 3], [0, 0, 2, 3])


# --- when it runs ---


def test_auto_runs_four_passes_for_few_examples_per_class_and_one_for_many(source):
    model = text_model(source)
    few = np.repeat(np.arange(3), contrastive.FEW_SHOT_MAX_PER_CLASS)
    many = np.repeat(np.arange(3), contrastive.FEW_SHOT_MAX_PER_CLASS + 1)
    assert contrastive.contrastive_epochs_for(model, "auto", few) == 4
    assert contrastive.contrastive_epochs_for(model, "auto", many) == 1
    assert contrastive.contrastive_epochs_for(model, 2, many) == 2


def test_image_models_and_bad_values_are_refused_before_training():
    model = build_tiny_model()
    x, y = np.zeros((4, 32, 32, 3), "float32"), np.array([0, 1, 2, 0])
    before = weights_of(model.layers)
    with pytest.raises(ConfigError, match="multiclass text classifiers"):
        tltf.fine_tune(model, (x, y), epochs=1, contrastive_epochs=2, verbose=0)
    with pytest.raises(ConfigError, match="contrastive_epochs must be"):
        tltf.fine_tune(model, (x, y), epochs=1, contrastive_epochs=-1, verbose=0)
    assert same(weights_of(model.layers), before)
    # "auto" leaves image models as they were: no stage.
    assert contrastive.contrastive_epochs_for(model, "auto", y) == 0


# --- what it trains ---


def test_the_stage_trains_the_encoder_then_the_head_trains_on_it(source, monkeypatch):
    model = text_model(source)
    encoder = model.backbone.model
    before = weights_of(encoder.layers)
    head_before = weights_of([model.head])
    seen = []
    stage = contrastive.train_contrastive

    def recorded(model_, backbone, examples, epochs, **kwargs):
        seen.append(epochs)
        history = stage(model_, backbone, examples, epochs, **kwargs)
        # The stage trains the encoder only; the head is untouched.
        assert not same(weights_of(encoder.layers), before)
        assert same(weights_of([model.head]), head_before)
        return history

    monkeypatch.setattr(contrastive, "train_contrastive", recorded)
    history = tltf.fine_tune(model, (TEXTS, LABELS), epochs=0, verbose=0)
    assert seen == [contrastive.AUTO_EPOCHS]  # 3 per class: "auto" picks it
    assert len(history.params["contrastive_loss"]) == seen[0]
    assert not same(weights_of([model.head]), head_before)  # then the head
    assert trainable_groups(model) == []  # frozen again


def test_the_stage_pulls_classes_apart(tmp_path):
    # The mean head only: the random tiny preset's [CLS] vector is nearly the
    # same for every text (the loss starts at log(31), all pairs alike), so
    # it has no classes to pull apart; the cls head's stage is covered above.
    model = text_model(text_row("tiny_bert-mean", tmp_path / "bert", TEXTS))
    history = tltf.fine_tune(
        model, (TEXTS * 4, np.tile(LABELS, 4)), epochs=0, contrastive_epochs=8
    )
    losses = history.params["contrastive_loss"]
    assert losses[-1] < losses[0]


def test_with_lora_only_the_adapters_train(source):
    model = text_model(source)
    base = [w.numpy().copy() for w in model.backbone.model.weights]
    tltf.fine_tune(
        model, (TEXTS, LABELS), epochs=0, lora_rank=2, contrastive_epochs=2, verbose=0
    )
    adapters = [w for w in model.backbone.model.weights if "lora" in w.path]
    assert adapters and any(np.abs(w.numpy()).max() > 0 for w in adapters)
    kept = [w for w in model.backbone.model.weights if "lora" not in w.path]
    assert same([w.numpy() for w in kept], base)


def test_the_tuned_model_exports_and_serves_token_ids(source, tmp_path):
    model = text_model(source)
    tltf.fine_tune(model, (TEXTS, LABELS), epochs=1, verbose=0)
    path = tltf.export_saved_model(model, tmp_path / "export", verify=False)
    serve = tf.saved_model.load(str(path / "token_ids_model")).signatures[
        "serving_default"
    ]
    tokens = model.get_layer("preprocess").fixed_length(tf.constant(TEXTS))
    expected = model.predict(TEXTS, verbose=0)
    np.testing.assert_allclose(serve(**tokens)["probabilities"], expected, atol=1e-5)


def test_the_stage_runs_under_a_strategy(tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    preset = tiny_bert_preset(tmp_path / "bert", TEXTS)
    with strategy.scope():
        model = tltf.build_text_classifier(f"kerashub:{preset}", 3, sequence_length=16)
    before = weights_of(model.backbone.model.layers)
    history = tltf.fine_tune(
        model, (TEXTS, LABELS), epochs=0, contrastive_epochs=2, verbose=0
    )
    assert len(history.params["contrastive_loss"]) == 2
    assert not same(weights_of(model.backbone.model.layers), before)
