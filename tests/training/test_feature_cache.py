"""Frozen-base feature caching: fit_frozen_head, compute_features, FeatureCache."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import (
    TINY_GROUPS,
    build_tiny_model,
    same,
    tiny_base,
    weights_of,
)
from tltf.training.feature_cache import (
    FeatureCache,
    cache_blockers,
    can_cache_features,
    compute,
    compute_features,
    feature_key,
    fit_frozen_head,
    head_loop,
    head_model,
)
from tltf.training.feature_cache.fit_head import AUTO_MAX_EPOCHS, AUTO_PATIENCE


class CountExamples(keras.layers.Layer):
    """Identity that counts the examples it sees in a non-trainable variable."""

    def build(self, input_shape):
        self.seen = self.add_weight(shape=(), initializer="zeros", trainable=False)

    def call(self, x):
        self.seen.assign_add(keras.ops.cast(keras.ops.shape(x)[0], "float32"))
        return x


def counting_model() -> tuple[keras.Model, CountExamples]:
    base = tiny_base()
    counter = CountExamples(name="counter")
    wrapped = keras.Model(base.input, counter(base.output), name="counted_base")
    model = tltf.build_image_classifier(
        wrapped, 3, preprocessing="unit", layer_groups=TINY_GROUPS, dropout=0.0
    )
    return model, counter


def data(n: int = 24, batch: int = 8, seed: int = 0) -> tf.data.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    y = np.arange(n) % 3
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def sgd_model() -> keras.Model:
    model = build_tiny_model(compile=False)
    tltf.compile_model(model, optimizer=keras.optimizers.SGD(0.1))
    return model


def count_extractions(monkeypatch) -> list[int]:
    calls = []
    original = compute._extract

    def counted(model, ds):
        calls.append(1)
        return original(model, ds)

    monkeypatch.setattr(compute, "_extract", counted)
    return calls


def test_cached_fit_trains_head_and_keeps_base():
    model = sgd_model()
    base, head = (
        weights_of(model.get_layer("backbone")),
        weights_of(model.get_layer("head")),
    )
    history = fit_frozen_head(model, data(), data(seed=1), epochs=2, verbose=0)
    assert same(base, weights_of(model.get_layer("backbone")))
    assert not same(head, weights_of(model.get_layer("head")))
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 2
    assert model.history is history


def test_base_runs_once_per_fit_not_per_epoch():
    model, counter = counting_model()
    fit_frozen_head(model, data(24), data(8, seed=1), epochs=3, verbose=0, cache=False)
    assert float(counter.seen.numpy()) == 24 + 8
    model.fit(data(24), validation_data=data(8, seed=1), epochs=3, verbose=0)
    assert float(counter.seen.numpy()) == 24 + 8 + 3 * (24 + 8)


def test_base_is_traced_once_whatever_the_batch_sizes():
    model = sgd_model()
    # 20 examples by 8: batches of 8, 8 and 4; then a set batched by 5.
    train = compute_features(model, data(20, batch=8), cache=False)
    val = compute_features(model, data(10, batch=5, seed=1), cache=False)
    assert [int(f.shape[0]) for f, _ in train] == [8, 8, 4]
    assert [int(f.shape[0]) for f, _ in val] == [5, 5]
    assert compute._pooler(model).experimental_get_tracing_count() == 1


class EveryBatch(keras.callbacks.Callback):
    """A callback with a batch hook: the head trains with Keras' own fit."""

    def on_train_batch_end(self, batch, logs=None):
        pass


def spy_routes(monkeypatch) -> list[str]:
    """Records which loop trains the head: "memory" or "fit"."""
    routes = []
    original_loop, original_fit = head_loop.fit_arrays, keras.Model.fit

    def in_memory(*args, **kwargs):
        routes.append("memory")
        return original_loop(*args, **kwargs)

    def fit(self, *args, **kwargs):
        routes.append("fit")
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(head_loop, "fit_arrays", in_memory)
    monkeypatch.setattr(keras.Model, "fit", fit)
    return routes


@pytest.mark.parametrize("route", ["memory", "disk", "batch_hooks", "weighted"])
def test_matches_plain_fit_without_dropout(route, tmp_path, monkeypatch):
    plain, cached = sgd_model(), sgd_model()
    cached.set_weights(plain.get_weights())
    train, val = data(), data(seed=1)
    if route == "weighted":
        x, y = next(iter(data(batch=24)))
        weights = np.linspace(0.2, 2.0, 24).astype("float32")
        train = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(8)
    expected = plain.fit(train, validation_data=val, epochs=3, verbose=0).history
    routes = spy_routes(monkeypatch)
    got = fit_frozen_head(
        cached,
        train,
        val,
        epochs=3,
        verbose=0,
        cache=tmp_path if route == "disk" else False,
        callbacks=[EveryBatch()] if route == "batch_hooks" else None,
    ).history
    assert routes == (["memory"] if route in ("memory", "weighted") else ["fit"])
    assert set(got) == set(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-4, atol=1e-5)
    x = next(iter(train))[0]
    np.testing.assert_allclose(
        cached.predict(x, verbose=0), plain.predict(x, verbose=0), atol=1e-5
    )
    # The model's own optimizer was reused: its step count continues.
    assert int(cached.optimizer.iterations.numpy()) == 3 * 3


class FirstLabel(keras.metrics.Metric):
    """The label of the first training example of the epoch, and how many
    times the epoch saw each example (labels are example numbers)."""

    def __init__(self, num_examples: int, name: str = "first_label"):
        super().__init__(name=name)
        self.first = self.add_variable((), initializer="zeros", name="first")
        self.seen = self.add_variable((num_examples,), initializer="zeros", name="seen")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(tf.reshape(y_true, [-1]), "int32")
        empty = tf.reduce_sum(self.seen) == 0
        self.first.assign(tf.where(empty, tf.cast(labels[0], "float32"), self.first))
        counts = tf.math.bincount(labels, minlength=self.seen.shape[0])
        self.seen.assign_add(tf.cast(counts, "float32")[: self.seen.shape[0]])

    def result(self):
        once = tf.reduce_all(tf.equal(self.seen, 1.0))
        return tf.where(once, self.first, -1.0)

    def reset_state(self):
        self.first.assign(0.0)
        self.seen.assign(tf.zeros_like(self.seen))


@pytest.mark.parametrize("shuffled", [True, False])
def test_in_memory_epochs_see_every_example_once_in_a_new_order(shuffled):
    # 20 examples in batches of 8 (8, 8 and a short 4), labelled 0..19.
    n = 20
    x = np.random.default_rng(0).uniform(0, 255, (n, 32, 32, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(n)))
    ds = (ds.shuffle(n) if shuffled else ds).batch(8)
    model = tltf.build_image_classifier(
        tiny_base(), n, preprocessing="unit", layer_groups=TINY_GROUPS, dropout=0.0
    )
    tltf.compile_model(model, metrics=[FirstLabel(n)])
    history = fit_frozen_head(model, ds, epochs=6, verbose=0, cache=False)
    firsts = history.history["first_label"]
    assert -1.0 not in firsts  # every epoch saw each example exactly once
    if shuffled:
        assert len(set(firsts)) > 1
    else:
        assert firsts == [0.0] * 6
    assert int(model.optimizer.iterations.numpy()) == 6 * 3


def test_matches_plain_fit_with_dropout_when_masks_are_paired():
    # Same start, same example order, same dropout masks: the cached run must
    # train exactly as model.fit does (what the benchmark's paired run checks).
    plain, cached = (build_tiny_model(dropout=0.5, compile=False) for _ in range(2))
    cached.set_weights(plain.get_weights())
    for model in (plain, cached):
        tltf.compile_model(model, optimizer=keras.optimizers.SGD(0.1))
        dropout = model.head.dropouts[-1]
        dropout.seed_generator.state.assign(np.array([3, 0], "int64"))
    start = weights_of(cached.get_layer("head"))
    train, val = data(), data(seed=1)
    expected = plain.fit(train, validation_data=val, epochs=3, verbose=0).history
    got = fit_frozen_head(cached, train, val, epochs=3, verbose=0, cache=False).history
    for name, values in expected.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-4, atol=1e-5)
    trained = weights_of(cached.get_layer("head"))
    assert not same(start, trained)
    for a, b in zip(trained, weights_of(plain.get_layer("head"))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_disabled_with_augmentation_and_falls_back(caplog):
    model = build_tiny_model(augment="default")
    assert not can_cache_features(model)
    with pytest.raises(tltf.ConfigError, match="augment_flip"):
        compute_features(model, data())
    head = weights_of(model.get_layer("head"))
    with caplog.at_level(logging.INFO, logger="tltf.training.feature_cache.fit_head"):
        history = fit_frozen_head(model, data(), epochs=1, verbose=0)
    assert "Feature caching off" in caplog.text
    assert len(history.history["loss"]) == 1
    assert not same(head, weights_of(model.get_layer("head")))


def test_disabled_with_trainable_base():
    model = build_tiny_model()
    assert can_cache_features(model)
    tltf.set_trainable_groups(model, ["block3"])
    assert not can_cache_features(model)
    assert "trainable" in " ".join(cache_blockers(model))


def test_disabled_when_dropout_in_base_runs_in_training_mode():
    base = tiny_base()
    noisy = keras.Model(base.input, keras.layers.Dropout(0.5)(base.output))
    model = tltf.build_image_classifier(noisy, 3, preprocessing="unit")
    assert can_cache_features(model)  # The base runs in inference mode.
    model = tltf.build_image_classifier(noisy, 3, preprocessing="unit", train_bn=True)
    assert not can_cache_features(model)


def test_reused_and_invalidated_when_base_or_data_change(monkeypatch):
    calls = count_extractions(monkeypatch)
    model, cache = build_tiny_model(), FeatureCache()
    first = np.concatenate([f for f, _ in compute_features(model, data(), cache)])
    again = np.concatenate([f for f, _ in compute_features(model, data(), cache)])
    assert len(calls) == 1 and np.array_equal(first, again)
    compute_features(model, data(seed=5), cache)
    assert len(calls) == 2
    conv = model.get_layer("backbone").model.get_layer("block1_conv")
    conv.kernel.assign(conv.kernel * 2.0)
    changed = np.concatenate([f for f, _ in compute_features(model, data(), cache)])
    assert len(calls) == 3 and not np.allclose(first, changed)


def test_disk_cache_is_reused_across_cache_objects(tmp_path, monkeypatch):
    calls = count_extractions(monkeypatch)
    model = build_tiny_model()
    first = list(compute_features(model, data(), cache=tmp_path / "features"))
    second = list(compute_features(model, data(), cache=str(tmp_path / "features")))
    assert len(calls) == 1
    for (f1, y1), (f2, y2) in zip(first, second):
        np.testing.assert_array_equal(f1, f2)
        np.testing.assert_array_equal(y1, y2)
    folders = [p.name for p in (tmp_path / "features").iterdir()]
    assert folders == [feature_key(model, data())]


def test_shuffled_data_gives_reshuffled_features():
    model = build_tiny_model()
    ds = data(48).unbatch().shuffle(48, seed=1).batch(8)
    pooled = compute_features(model, ds, cache=False)
    epoch1 = np.concatenate([y for _, y in pooled])
    epoch2 = np.concatenate([y for _, y in pooled])
    assert sorted(epoch1) == sorted(epoch2) and not np.array_equal(epoch1, epoch2)
    ordered = np.concatenate(
        [y for _, y in compute_features(model, data(48), cache=False)]
    )
    assert np.array_equal(ordered, np.arange(48) % 3)


def test_head_model_shares_the_heads_layers():
    model = build_tiny_model()
    small = head_model(model)
    head_ids = {id(v) for v in model.get_layer("head").weights}
    assert {id(v) for v in small.weights} == head_ids
    pooled = np.ones((2, 8), "float32")
    expected = model.get_layer("head").classify(pooled)
    np.testing.assert_allclose(small.predict(pooled, verbose=0), expected, atol=1e-6)


def test_callbacks_see_the_full_model_and_can_stop():
    model = sgd_model()
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda *a, **k: seen.append(record.model)
    )
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=100.0, patience=0)
    history = fit_frozen_head(
        model, data(), epochs=5, callbacks=[record, stop], verbose=0
    )
    assert seen and all(m is model for m in seen)
    assert len(history.history["loss"]) < 5


def test_bad_inputs_fail_clearly():
    with pytest.raises(tltf.ConfigError, match="not compiled"):
        fit_frozen_head(build_tiny_model(compile=False), data(), epochs=1)
    model = build_tiny_model()
    with pytest.raises(tltf.DataError, match="batched"):
        compute_features(model, data().unbatch())
    with pytest.raises(tltf.DataError, match="finite"):
        compute_features(model, data().repeat())
    with pytest.raises(tltf.ConfigError, match="cache must be"):
        compute_features(model, data(), cache=3)


def test_model_saves_and_reloads_after_cached_fit(tmp_path):
    model = sgd_model()
    fit_frozen_head(model, data(), epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    x = next(iter(data()))[0]
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )


# --- heads whose input is a list: mean pooling over tokens ---

TEXTS = ["a good film", "great acting", "awful plot", "boring and dull"] * 3
TEXT_LABELS = np.array([1, 1, 0, 0] * 3)


@pytest.fixture(scope="module")
def mean_pooled_preset(tmp_path_factory) -> str:
    from tests.support.helpers import tiny_bert_preset

    folder = tmp_path_factory.mktemp("preset") / "tiny_bert"
    return f"kerashub:{tiny_bert_preset(folder, TEXTS)}"


def _mean_pooled(preset: str) -> keras.Model:
    # pooling="mean" as the offline MiniLM registers it (the tiny preset's
    # default is "cls"); sequence_length fits the tiny encoder's 16 positions.
    model = tltf.build_text_classifier(preset, 2, sequence_length=8, pooling="mean")
    assert isinstance(model.get_layer("head").input, list)  # [sequence, mask]
    return model


def test_features_of_a_mean_pooled_head_match_the_model(mean_pooled_preset):
    model = _mean_pooled(mean_pooled_preset)
    data = tf.data.Dataset.from_tensor_slices((TEXTS, TEXT_LABELS)).batch(5)
    pooled = compute_features(model, data, cache=False)
    from_features = head_model(model).predict(pooled.map(lambda f, y: f), verbose=0)
    np.testing.assert_allclose(
        from_features, model.predict(TEXTS, verbose=0), atol=1e-5
    )


def test_fit_frozen_head_trains_a_mean_pooled_head_with_and_without_the_cache(
    mean_pooled_preset,
):
    """The head takes ``[sequence, mask]``: cached features keep both.

    The other frozen entry points on a mean-pooled head (`find_learning_rate`,
    `fine_tune`'s frozen epochs, the search's reuse of base features) run in
    test_defaults' ``kerashub_mean`` row (the tiny encoder as a
    sentence-transformers folder: ``"mean"`` by default, as MiniLM's).
    """
    data = tltf.data.from_texts(list(TEXTS), TEXT_LABELS.tolist(), batch_size=4)
    model = _mean_pooled(mean_pooled_preset)
    head, base = model.get_layer("head"), model.get_layer("backbone")
    before_head, before_base = weights_of(head), weights_of(base)
    history = fit_frozen_head(model, data.train, data.validation, epochs=2)
    assert not same(before_head, weights_of(head))
    assert same(before_base, weights_of(base))
    assert "val_accuracy" in history.history
    cached = weights_of(head)
    fit_frozen_head(model, (TEXTS, TEXT_LABELS), epochs=1, cache=False)
    assert not same(cached, weights_of(head))
    assert same(before_base, weights_of(base))


def test_by_default_the_head_trains_until_it_stops_improving():
    model = build_tiny_model()
    tltf.compile_model(model, learning_rate=1e-2)
    x = np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3)).astype("float32")
    y = np.arange(12) % 3
    history = fit_frozen_head(model, (x, y), (x, y), verbose=0)
    val = history.history["val_loss"]
    assert 1 < len(val) <= AUTO_MAX_EPOCHS
    if len(val) < AUTO_MAX_EPOCHS:  # stopped: no gain for 3 epochs
        assert len(val) == int(np.argmin(val)) + 1 + AUTO_PATIENCE
    # The head kept is the best epoch's (EarlyStopping restores it).
    small = head_model(model)
    small.compile(loss="sparse_categorical_crossentropy")
    best = small.evaluate(compute_features(model, (x, y), cache=False), verbose=0)
    assert best == pytest.approx(min(val), rel=1e-4)
