# ruff: noqa: E501 (one row per line)
"""Bad input to calibration and rejection (`calibrate_rejection`,
`predict_classes`, `CalibrationResult`, `ClassPredictions`) and their plot:
a clear error or a correct result. One tiny model, trained once."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch, trained_tiny_model
from tltf.errors import ConfigError, DataError
from tltf.evaluation import plots

rng = np.random.default_rng(0)
Y = np.arange(30) % 3
X = rng.uniform(0, 60, (30, 32, 32, 3)).astype("float32")
X[np.arange(30), ..., Y] += 150.0  # The class is the brightest channel.


@functools.cache
def _model():
    return trained_tiny_model(X, Y, epochs=8)


def _root() -> Path:
    return scratch("calibration")


def _calibrated():
    return tltf.calibrate_rejection(_model(), (X, Y), target_precision=0.5)


def _result_with_bins(result) -> None:
    assert isinstance(result, tltf.CalibrationResult)
    for table in (result.reliability_before, result.reliability_after):
        assert sum(table["count"]) == len(Y)
        assert len(table["confidence"]) == len(table["accuracy"]) == 15
    assert 0.0 <= result.ece_after <= 1.0
    assert result.to_dict()["reliability_after"] == result.reliability_after


def _diagram():
    return plots.reliability_diagram(_calibrated(), _root() / "reliability.png")


def _is_png(path) -> None:
    assert Path(path).read_bytes()[:4] == b"\x89PNG"


def _predictions(**kwargs):
    return tltf.predict_classes(_model(), X[:4], **kwargs)


def _named(predictions) -> None:
    assert isinstance(predictions, tltf.ClassPredictions)
    assert predictions.probabilities.shape == (4, 3)
    assert set(predictions.class_name) <= {"a", "b", "c", "unknown"}


# fmt: off
ROWS = [
    Row("calibrate_rejection", "neither rule", lambda: tltf.calibrate_rejection(_model(), (X, Y)), Raises(ConfigError, "Pass exactly one of target_precision=")),
    Row("calibrate_rejection", "target_precision 2", lambda: tltf.calibrate_rejection(_model(), (X, Y), target_precision=2), Raises(ConfigError, "target_precision must be in (0, 1]")),
    Row("calibrate_rejection", "target_precision as a string", lambda: tltf.calibrate_rejection(_model(), (X, Y), target_precision="0.9"), Raises(ConfigError, "target_precision")),
    Row("calibrate_rejection", "max_accuracy_drop without oos_data", lambda: tltf.calibrate_rejection(_model(), (X, Y), target_precision=0.9, max_accuracy_drop=0.1), Raises(ConfigError, "max_accuracy_drop applies to the oos_data rule only")),
    Row("calibrate_rejection", "labels out of range", lambda: tltf.calibrate_rejection(_model(), (X, Y + 3), target_precision=0.9), Raises(DataError, "label")),
    Row("calibrate_rejection", "empty data", lambda: tltf.calibrate_rejection(_model(), (X[:0], Y[:0]), target_precision=0.9), Raises(DataError, "empty")),
    Row("calibrate_rejection", "NaN inputs", lambda: tltf.calibrate_rejection(_model(), (np.full_like(X, np.nan), Y), target_precision=0.9), Raises(DataError, "NaN or inf")),
    Row("calibrate_rejection", "text out-of-scope data for an image model", lambda: tltf.calibrate_rejection(_model(), (X, Y), oos_data=["a", "b"]), Raises(DataError, "holds text")),
    Row("calibrate_rejection", "a regression model", lambda: tltf.calibrate_rejection(_regression(), (X, Y), target_precision=0.9), Raises(ConfigError, "needs a multiclass")),
    Row("CalibrationResult", "reliability bins before and after", _calibrated, _result_with_bins),
    Row("CalibrationResult", "its reliability diagram", _diagram, _is_png),
    Row("predict_classes", "too few class names", lambda: _predictions(class_names=["a"]), Raises(ConfigError, "The model has 3 outputs but 1 class names")),
    Row("predict_classes", "empty inputs", lambda: tltf.predict_classes(_model(), X[:0]), Raises(DataError, "empty")),
    Row("predict_classes", "greyscale images", lambda: tltf.predict_classes(_model(), X[:2, ..., :1]), Raises(DataError, "RGB images (3 channels)")),
    Row("predict_classes", "batch_size as a string", lambda: _predictions(batch_size="2"), Raises(ConfigError, "batch_size")),
    Row("ClassPredictions", "names for every row", lambda: _predictions(class_names=["a", "b", "c"]), _named),
    Row("calibrate_rejection", "temperature as a string", lambda: tltf.calibrate_rejection(_model(), (X, Y), target_precision=0.5, temperature="yes"), Raises(ConfigError, "temperature must be True")),
    Row("calibrate_rejection", "one-hot labels", lambda: tltf.calibrate_rejection(_model(), (X, np.eye(3)[Y]), target_precision=0.5), Raises(DataError, "np.argmax(y, axis=-1)")),
    Row("calibrate_rejection", "None as the model", lambda: tltf.calibrate_rejection(None, (X, Y), target_precision=0.5), Raises(ConfigError, "model must be a Keras model")),
    Row("predict_classes", "the same class name twice", lambda: tltf.predict_classes(_model(), X[:2], class_names=["a", "a", "b"]), Raises(ConfigError, "class_names must be distinct")),
    Row("predict_classes", "class names as one string", lambda: tltf.predict_classes(_model(), X[:2], class_names="abc"), Raises(ConfigError, "3 outputs but 1 class names")),
    Row("predict_classes", "None as the inputs", lambda: tltf.predict_classes(_model(), None), Raises(DataError, "x is None")),
]
# fmt: on


def _regression():
    from tests.support.helpers import TINY_GROUPS, tiny_base

    return tltf.build_image_classifier(
        tiny_base(),
        1,
        task="regression",
        preprocessing="unit",
        layer_groups=TINY_GROUPS,
    )


@pytest.mark.parametrize("row", params(ROWS))
def test_calibration(row: Row) -> None:
    check(row)
