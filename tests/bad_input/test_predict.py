# ruff: noqa: E501 (one row per line)
"""Bad input to predict and evaluate (the model's own methods and
`tltf.evaluate`), for image and text models: a clear error or a correct
result. The text rows run the tiny BERT preset (``"cls"`` pooling) and, when
it is installed, the offline MiniLM (``"mean"`` pooling)."""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch
from tests.support.helpers import build_tiny_model, text_row
from tltf.errors import ConfigError, DataError

rng = np.random.default_rng(0)
X = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
Y = np.arange(6) % 3
TEXTS = ["a good film", "a bad film", "the cup final", "a late goal"]


def _root() -> Path:
    return scratch("predict")


#: One tiny image model that the rows share (they do not train it).
_model = functools.cache(build_tiny_model)


@functools.cache
def _text_model(row: str = "tiny_bert"):
    """A row of helpers.TEXT_ROWS ("cls" and "mean" heads), shared by the rows."""
    backbone, pooling = text_row(row, _root() / row, TEXTS)
    return tltf.build_text_classifier(backbone, 2, sequence_length=8, pooling=pooling)


def _probabilities(shape: tuple) -> callable:
    def outcome(result) -> None:
        result = np.asarray(result)
        assert result.shape == shape, result.shape
        np.testing.assert_allclose(result.sum(-1), 1.0, rtol=1e-5)

    return outcome


def _metrics(result) -> None:
    assert set(result) >= {"loss", "accuracy"}, result
    assert np.isfinite(result["loss"])


def _report(report) -> None:
    assert isinstance(report, tltf.EvaluationReport)
    assert report.class_names == ["a", "b", "c"] and report.num_examples == 6


def _loaded():
    return tltf.data.from_arrays(X, np.array(list("abcabc")), validation_split=0.5)


def _fit_both_label_ranks():
    """Labels (n, 1) after labels (n,): a step traced for one rank used to
    fail on the other with "Cannot take the length of shape with unknown rank"."""
    model = build_tiny_model()
    model.fit(X, Y, verbose=0)
    return model.fit(X, Y.reshape(-1, 1), verbose=0)


# fmt: off
ROWS = [
    # --- TransferModel.predict: images ---
    Row("TransferModel.predict", "an empty array", lambda: _model().predict(np.zeros((0, 32, 32, 3)), verbose=0), Raises(DataError, "x is empty")),
    Row("TransferModel.predict", "greyscale images", lambda: _model().predict(X[..., :1], verbose=0), Raises(DataError, "The model takes RGB images (3 channels)")),
    Row("TransferModel.predict", "images without a channel axis", lambda: _model().predict(X[..., 0], verbose=0), Raises(DataError, "np.repeat")),
    Row("TransferModel.predict", "images of another size", lambda: _model().predict(np.zeros((2, 224, 224, 3)), verbose=0), Raises(DataError, "image_size=(32, 32)")),
    Row("TransferModel.predict", "images of another size, what to build", lambda: _model().predict(np.zeros((2, 224, 224, 3)), verbose=0), Raises(DataError, "input_shape=(224, 224, 3)")),
    Row("TransferModel.predict", "NaN pixels", lambda: _model().predict(np.full((2, 32, 32, 3), np.nan), verbose=0), Raises(DataError, "NaN or inf")),
    Row("TransferModel.predict", "text for an image model", lambda: _model().predict(["a cat"], verbose=0), Raises(DataError, "holds text")),
    Row("TransferModel.predict", "a LoadedData", lambda: _model().predict(_loaded(), verbose=0), Raises(DataError, "pass one of its splits")),
    Row("TransferModel.predict", "batch_size as a string", lambda: _model().predict(X, batch_size="2", verbose=0), Raises(ConfigError, "batch_size")),
    Row("TransferModel.predict", "uint8 pixels", lambda: _model().predict(X.astype("uint8"), verbose=0), _probabilities((6, 3))),
    Row("TransferModel.predict", "one image as a list of lists", lambda: _model().predict(X[:1].tolist(), verbose=0), _probabilities((1, 3))),
    # --- TransferModel.evaluate ---
    Row("TransferModel.evaluate", "a LoadedData: its validation split", lambda: _model().evaluate(_loaded(), verbose=0, return_dict=True), _metrics),
    Row("TransferModel.evaluate", "labels out of range", lambda: _model().evaluate(X, Y + 3, verbose=0), Raises(DataError, "has label 5")),
    Row("TransferModel.evaluate", "steps as a string", lambda: _model().evaluate(X, Y, steps="1", verbose=0), Raises(ConfigError, "steps")),
    Row("TransferModel.fit", "epochs as a string", lambda: _model().fit(X, Y, epochs="2", verbose=0), Raises(ConfigError, "epochs must be an integer >= 1")),
    Row("TransferModel.save", "an .h5 file", lambda: _model().save(_root() / "m.h5"), Raises(ConfigError, "m.keras")),
    # --- text ---
    Row("TransferModel.predict", "text: a list with None", lambda: _text_model().predict(["a good film", None], verbose=0), Raises(DataError, "example 1, is None")),
    Row("TransferModel.predict", "text: a Series with NaN", lambda: _text_model().predict(pd.Series(["a good film", np.nan]), verbose=0), Raises(DataError, "series.dropna()")),
    Row("TransferModel.predict", "text: an empty list", lambda: _text_model().predict([], verbose=0), Raises(DataError, "x is empty")),
    Row("TransferModel.predict", "text: images", lambda: _text_model().predict(X, verbose=0), Raises(DataError, "takes text")),
    Row("TransferModel.predict", "text: one bare string", lambda: _text_model().predict("a good film", verbose=0), _probabilities((1, 2))),
    Row("TransferModel.predict", "text: bytes", lambda: _text_model().predict([b"a good film", b"a late goal"], verbose=0), _probabilities((2, 2))),
    Row("TransferModel.predict", "text: a pandas Series", lambda: _text_model().predict(pd.Series(TEXTS), verbose=0), _probabilities((4, 2))),
    Row("TransferModel.predict", "text: a 2-D array", lambda: _text_model().predict(np.array([TEXTS]), verbose=0), Raises(DataError, "one string per example")),
    # --- tltf.evaluate ---
    Row("evaluate", "a LoadedData", lambda: tltf.evaluate(_model(), tltf.data.from_arrays(X, np.array(list("abcabc")))), _report),
    Row("evaluate", "too few class names", lambda: tltf.evaluate(_model(), (X, Y), class_names=["a"]), Raises(ConfigError, "3 outputs but 1 class names")),
    Row("evaluate", "oos_data without a threshold", lambda: tltf.evaluate(_model(), (X, Y), oos_data=X), Raises(ConfigError, "needs a model with a rejection threshold")),
    Row("evaluate", "output_dir is a file", lambda: tltf.evaluate(_model(), (X, Y), output_dir=_a_file()), Raises(tltf.TltfError, "a_file")),
    Row("evaluate", "empty data", lambda: tltf.evaluate(_model(), (X[:0], Y[:0])), Raises(DataError, "empty")),
    Row("EvaluationReport", "accuracy of a model that always answers one class", lambda: tltf.evaluate(_constant_model(), (X, Y)), lambda report: np.testing.assert_allclose(report.accuracy, 1 / 3)),
    Row("TransferModel.predict", "None", lambda: _model().predict(None, verbose=0), Raises(DataError, "x is None")),
    Row("TransferModel.evaluate", "one-hot labels", lambda: _model().evaluate(X, np.eye(3)[Y], verbose=0), Raises(DataError, "np.argmax(y, axis=-1)")),
    Row("TransferModel.evaluate", "fewer labels than images", lambda: _model().evaluate(X, Y[:3], verbose=0), Raises(DataError, "Received lengths [6, 3]")),
    Row("TransferModel.fit", "fewer labels than images", lambda: _model().fit(X, Y[:3], verbose=0), Raises(DataError, "need one entry per example")),
    Row("TransferModel.fit", "validation_split 1.5", lambda: _model().fit(X, Y, validation_split=1.5, verbose=0), Raises(ConfigError, "validation_split must be a number in [0, 1)")),
    Row("TransferModel.fit", "one-hot validation labels", lambda: _model().fit(X, Y, validation_data=(X, np.eye(3)[Y]), verbose=0), Raises(DataError, "one-hot?")),
    Row("TransferModel.fit", "labels (n,) then (n, 1)", _fit_both_label_ranks, lambda history: np.testing.assert_equal(np.isfinite(history.history["loss"]), True)),
    Row("evaluate", "None as the model", lambda: tltf.evaluate(None, (X, Y)), Raises(ConfigError, "model must be a Keras model")),
    Row("evaluate", "the same class name twice", lambda: tltf.evaluate(_model(), (X, Y), class_names=["a", "a", "b"]), Raises(ConfigError, "class_names must be distinct")),
    Row("evaluate", "output_dir as a number", lambda: tltf.evaluate(_model(), (X, Y), output_dir=3), Raises(ConfigError, "output_dir must be a path")),
]
# fmt: on


@functools.cache
def _a_file() -> Path:
    path = _root() / "a_file"
    path.write_text("x")
    return path


def _constant_model():
    model = build_tiny_model()
    head = model.get_layer("head")
    kernel, bias = head.weights[-2:]
    kernel.assign(np.zeros(kernel.shape))
    bias.assign(np.array([5.0, 0.0, 0.0]))
    return model


@pytest.mark.parametrize("row", params(ROWS))
def test_predict(row: Row) -> None:
    check(row)


@pytest.mark.parametrize("row", ["tiny_bert", "tiny_bert-mean"])
def test_text_predict_matrix(row: str) -> None:
    """Lists, arrays, Series and one string give the same probabilities."""
    model = _text_model(row)
    as_list = model.predict(TEXTS, verbose=0)
    for form in (np.array(TEXTS), pd.Series(TEXTS), np.array(TEXTS, dtype=object)):
        np.testing.assert_allclose(model.predict(form, verbose=0), as_list, atol=1e-6)
    np.testing.assert_allclose(
        model.predict(TEXTS[0], verbose=0), as_list[:1], atol=1e-6
    )
    with pytest.raises(DataError, match="without a text"):
        model.predict([TEXTS[0], None], verbose=0)
    assert isinstance(model, keras.Model)
