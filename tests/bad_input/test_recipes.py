# ruff: noqa: E501 (one row per line)
"""Bad input to the training recipes: a clear error or a correct result.

``fit``, ``fine_tune``, ``fit_frozen_head``, ``find_learning_rate``,
``tune_learning_rate``, ``distill``, ``adapt_domain``, freezing, features and
``StagedUnfreezing``. Models are the tiny conv classifier at 32x32
(`tests.support.helpers.build_tiny_model`); each row that trains builds its own, rows
that fail early share one.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch
from tests.support.helpers import build_tiny_model, write_image_folder
from tltf.errors import ConfigError, DataError, TrainingError

rng = np.random.default_rng(0)
X = rng.uniform(0, 255, (12, 32, 32, 3)).astype("float32")
Y = np.arange(12) % 3
X_NAN = X.copy()
X_NAN[3, 0, 0, 0] = np.nan


@functools.cache
def _model():
    """A model that rows which fail before training share."""
    return build_tiny_model()


def _root() -> Path:
    return scratch("recipes")


@functools.cache
def _undecodable_folder() -> Path:
    """Three classes of files whose headers pass the scan but which do not decode."""
    root = _root() / "broken"
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (root / name / f"{i}.png").write_bytes(header)
    return root


@functools.cache
def _images() -> Path:
    return write_image_folder(_root() / "images", {"a": 4, "b": 4, "c": 4}, size=32)


def _nan_dataset() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((X_NAN, Y)).batch(4)


def _linear_model():
    """A model whose base passes NaN on (the tiny base's ReLUs turn it to 0)."""
    base = keras.Sequential(
        [keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="conv")]
    )
    return tltf.build_image_classifier(
        base, 3, preprocessing="unit", layer_groups={"all": ["conv"]}
    )


def _trains(epochs: int) -> callable:
    """The call returns a History of ``epochs`` epochs with a finite loss."""

    def outcome(history) -> None:
        assert len(history.history["loss"]) == epochs, history.history
        assert np.all(np.isfinite(history.history["loss"]))

    return outcome


def _fit_loaded_data():
    model = build_tiny_model()
    data = tltf.data.image_folder(
        _images(), image_size=32, batch_size=4, validation_split=0.25
    )
    return model.fit(data, epochs=1, verbose=0)


def _has_validation(history) -> None:
    assert "val_loss" in history.history and np.isfinite(history.history["val_loss"][0])


def _with_rate(rate: float):
    model = build_tiny_model()
    model.optimizer.learning_rate.assign(rate)
    return model.fit(X, Y, epochs=1, verbose=0)


def _flat_loss_warns(caplog) -> callable:
    def call():
        model = build_tiny_model()
        model.get_layer("head").trainable = False  # Nothing trains.
        with caplog.at_level(logging.WARNING, logger="tltf.training.lr_finder"):
            tltf.find_learning_rate(
                model, (X, Y), num_steps=12, batch_size=4, plot_path=None
            )
        return caplog.text

    return call


def _fine_tune_frozen_line(capsys):
    model = build_tiny_model()
    tltf.fine_tune(model, (X, Y), (X, Y), epochs=1, verbose=2)
    return capsys.readouterr().out


def _shows_one_frozen_line_and_epoch_1_of_1(out: str) -> None:
    lines = out.splitlines()
    assert sum(line.startswith("Head only (base frozen):") for line in lines) == 1, out
    assert "Epoch 1/1" in lines, out
    assert not [
        line for line in lines if line.startswith("Epoch") and line != "Epoch 1/1"
    ], out
    assert "\x1b[" not in out and "\b" not in out, out


# fmt: off
ROWS = [
    # --- TransferModel.fit ---
    Row("TransferModel.fit", "a LoadedData: train and validation", _fit_loaded_data, _has_validation),
    Row("TransferModel.fit", "NaN in the inputs", lambda: _model().fit(X_NAN, Y, epochs=1, verbose=0), Raises(DataError, "x holds 1 NaN or inf value(s) (the first in example 3)")),
    Row("TransferModel.fit", "NaN in a dataset", lambda: _linear_model().fit(_nan_dataset(), epochs=2, verbose=0), Raises(TrainingError, "The training loss became nan in epoch 1")),
    Row("TransferModel.fit", "a negative learning rate", lambda: _with_rate(-1.0), Raises(TrainingError, "learning rate is -1.0")),
    Row("TransferModel.fit", "every image fails to decode", lambda: _model().fit(tltf.data.image_folder(_undecodable_folder(), image_size=32), epochs=1, verbose=0), Raises(DataError, "Epoch 1 got no training batch")),
    Row("TransferModel.fit", "images of another size", lambda: _model().fit(np.zeros((4, 64, 64, 3)), Y[:4], verbose=0), Raises(DataError, "input_shape=(64, 64, 3)")),
    Row("TransferModel.fit", "labels out of range", lambda: _model().fit(X, Y + 5, verbose=0), Raises(DataError, "has label 7, but the model has 3 classes")),
    Row("TransferModel.fit", "string labels", lambda: _model().fit(X, np.array(["a", "b", "c"] * 4), verbose=0), Raises(DataError, "map class names to integers")),
    Row("TransferModel.fit", "text for an image model", lambda: _model().fit(["a", "b"], [0, 1], verbose=0), Raises(DataError, "holds text")),
    Row("TransferModel.fit", "an unbatched dataset", lambda: _model().fit(tf.data.Dataset.from_tensor_slices((X, Y)), verbose=0), Raises(DataError, "dataset.batch(32)")),
    Row("TransferModel.fit", "arrays, 2 epochs", lambda: build_tiny_model().fit(X, Y, epochs=2, verbose=0), _trains(2)),
    # --- fine_tune ---
    Row("fine_tune", "epochs as a string", lambda: tltf.fine_tune(_model(), (X, Y), epochs="2"), Raises(ConfigError, "epochs must be an integer >= 0 (a number, not a string)")),
    Row("fine_tune", "negative freeze_epochs", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, freeze_epochs=-1), Raises(ConfigError, "freeze_epochs must be an integer >= 0 or 'auto'")),
    Row("fine_tune", "negative base_lr", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, base_lr=-1e-3), Raises(ConfigError, "base_lr must be a finite number > 0")),
    Row("fine_tune", "lr_mult 0.5", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, lr_mult=0.5), Raises(ConfigError, "lr_mult must be a number >= 1")),
    Row("fine_tune", "unknown schedule", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, schedule="slowly"), Raises(ConfigError, "slowly")),
    Row("fine_tune", "labels out of range", lambda: tltf.fine_tune(_model(), (X, Y + 3), epochs=1), Raises(DataError, "has label 5")),
    Row("fine_tune", "NaN inputs", lambda: tltf.fine_tune(build_tiny_model(), (X_NAN, Y), epochs=1, verbose=0), Raises(DataError, "NaN or inf")),
    Row("fine_tune", "one line for the frozen stage, epochs as asked", None, _shows_one_frozen_line_and_epoch_1_of_1),
    # --- fit_frozen_head ---
    Row("fit_frozen_head", "epochs 'forever'", lambda: tltf.fit_frozen_head(_model(), (X, Y), epochs="forever"), Raises(ConfigError, "epochs must be an integer >= 1 or 'auto'")),
    Row("fit_frozen_head", "epochs 0", lambda: tltf.fit_frozen_head(_model(), (X, Y), epochs=0), Raises(ConfigError, "epochs must be an integer >= 1")),
    Row("fit_frozen_head", "NaN inputs", lambda: tltf.fit_frozen_head(build_tiny_model(), (X_NAN, Y), epochs=1, verbose=0), Raises(DataError, "train_data holds 1 NaN")),
    Row("fit_frozen_head", "NaN features of a dataset", lambda: tltf.fit_frozen_head(_linear_model(), _nan_dataset(), epochs=1, verbose=0), Raises(DataError, "the base's features of it")),
    Row("fit_frozen_head", "not compiled", lambda: tltf.fit_frozen_head(build_tiny_model(compile=False), (X, Y), epochs=1), Raises(ConfigError, "is not compiled")),
    Row("fit_frozen_head", "2 epochs", lambda: tltf.fit_frozen_head(build_tiny_model(), (X, Y), epochs=2, verbose=0), _trains(2)),
    # --- find_learning_rate ---
    Row("find_learning_rate", "min_lr above max_lr", lambda: tltf.find_learning_rate(_model(), (X, Y), min_lr=1.0, max_lr=1e-3), Raises(ConfigError, "Need 0 < min_lr < max_lr")),
    Row("find_learning_rate", "negative min_lr", lambda: tltf.find_learning_rate(_model(), (X, Y), min_lr=-1.0), Raises(ConfigError, "min_lr must be a finite number > 0")),
    Row("find_learning_rate", "num_steps as a string", lambda: tltf.find_learning_rate(_model(), (X, Y), num_steps="100"), Raises(ConfigError, "num_steps")),
    Row("find_learning_rate", "unknown method", lambda: tltf.find_learning_rate(_model(), (X, Y), method="best"), Raises(ConfigError, "Unknown method 'best'")),
    Row("find_learning_rate", "not compiled", lambda: tltf.find_learning_rate(build_tiny_model(compile=False), (X, Y)), Raises(ConfigError, "needs a compiled model")),
    Row("find_learning_rate", "a loss that does not move warns", None, lambda text: "did not move" in text or pytest.fail(text)),
    # --- tune_learning_rate ---
    Row("tune_learning_rate", "max_trials 0", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), max_trials=0), Raises(ConfigError, "max_trials must be an integer >= 1")),
    Row("tune_learning_rate", "max_trials as a string", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), max_trials="5"), Raises(ConfigError, "max_trials")),
    Row("tune_learning_rate", "epochs 0", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), epochs=0), Raises(ConfigError, "epochs must be an integer >= 1")),
    Row("tune_learning_rate", "unknown oracle", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), oracle="grid", directory=_root() / "t1", weights=None, input_shape=(32, 32, 3)), Raises(ConfigError, "Unknown oracle 'grid'")),
    Row("tune_learning_rate", "a set, not data", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", {1, 2}), Raises(ConfigError, "data must be")),
    # --- distill ---
    Row("distill", "an image teacher, a text student", lambda: tltf.distill(_model(), _text_student(), (X, Y)), Raises(ConfigError, "a teacher that takes inputs of shape (32, 32, 3), a student that takes text")),
    Row("distill", "a student of another image size", lambda: tltf.distill(_model(), _student_64(), (X, Y)), Raises(ConfigError, "must take the same inputs")),
    Row("distill", "negative learning_rate", lambda: tltf.distill(_model(), _unfrozen(), (X, Y), learning_rate=-1e-3), Raises(ConfigError, "learning_rate must be a finite number > 0")),
    Row("distill", "temperature 0", lambda: tltf.distill(_model(), _unfrozen(), (X, Y), temperature=0), Raises(ConfigError, "temperature must be a number > 0")),
    Row("distill", "alpha 2", lambda: tltf.distill(_model(), _unfrozen(), (X, Y), alpha=2), Raises(ConfigError, "alpha must be a number in [0, 1]")),
    Row("distill", "epochs as a string", lambda: tltf.distill(_model(), _unfrozen(), (X, Y), epochs="3"), Raises(ConfigError, "epochs must be an integer >= 1")),
    Row("distill", "a frozen student", lambda: tltf.distill(_model(), _frozen_student(), (X, Y)), Raises(ConfigError, "no trainable weights")),
    Row("Distiller", "teacher and student of other classes", lambda: tltf.Distiller(_model(), build_tiny_model_2()), Raises(ConfigError, "same classes")),
    # --- adapt_domain ---
    Row("adapt_domain", "negative weight", lambda: tltf.adapt_domain(_model(), (X, Y), X, weight=-5), Raises(ConfigError, "weight must be a finite number >= 0")),
    Row("adapt_domain", "weight as a string", lambda: tltf.adapt_domain(_model(), (X, Y), X, weight="1"), Raises(ConfigError, "weight")),
    Row("adapt_domain", "epochs 0", lambda: tltf.adapt_domain(_model(), (X, Y), X, epochs=0), Raises(ConfigError, "epochs must be an integer >= 1")),
    Row("adapt_domain", "unknown method", lambda: tltf.adapt_domain(_hidden_model(), (X, Y), X, method="dan"), Raises(ConfigError, "dan")),
    Row("adapt_domain", "text as the target of an image model", lambda: tltf.adapt_domain(_hidden_model(), (X, Y), ["a", "b"]), Raises(DataError, "holds text")),
    Row("adapt_domain", "an empty target", lambda: tltf.adapt_domain(_hidden_model(), (X, Y), np.zeros((0, 32, 32, 3))), Raises(DataError, "empty")),
    # --- freezing ---
    Row("set_trainable_groups", "an unknown group", lambda: tltf.set_trainable_groups(_model(), ["block9"]), Raises(ConfigError, "Unknown layer group 'block9'")),
    Row("set_trainable_groups", "one group as a string", lambda: _trainable_after("block3"), lambda groups: groups == ["block3"] or pytest.fail(str(groups))),
    Row("trainable_groups", "a model without a tltf base", lambda: tltf.trainable_groups(_plain_model()), Raises(ConfigError, "tltf Backbone")),
    Row("freeze_backbone", "a plain Keras model", lambda: tltf.freeze_backbone(_plain_model()), Raises(ConfigError, "tltf Backbone")),
    Row("unfreeze_backbone", "a plain Keras model", lambda: tltf.unfreeze_backbone(_plain_model()), Raises(ConfigError, "tltf Backbone")),
    # --- features ---
    Row("compute_features", "an unbatched dataset", lambda: tltf.compute_features(_model(), tf.data.Dataset.from_tensor_slices((X, Y))), Raises(DataError, "batch")),
    Row("compute_features", "an unknown cache", lambda: tltf.compute_features(_model(), (X, Y), cache=3), Raises(ConfigError, "cache")),
    Row("can_cache_features", "a plain Keras model", lambda: tltf.can_cache_features(_plain_model()), lambda answer: answer is False or pytest.fail(str(answer))),
    Row("can_cache_features", "a frozen tiny model", lambda: tltf.can_cache_features(_model()), lambda answer: answer is True or pytest.fail(str(answer))),
    Row("FeatureCache", "a file as its folder", lambda: tltf.FeatureCache(_a_file()), Raises(ConfigError, "folder")),
    # --- StagedUnfreezing ---
    Row("StagedUnfreezing", "an unknown schedule", lambda: tltf.StagedUnfreezing("sometimes"), Raises(ConfigError, "sometimes")),
    Row("StagedUnfreezing", "patience 0", lambda: tltf.StagedUnfreezing(patience=0), Raises(ConfigError, "patience must be an integer >= 1")),
    Row("StagedUnfreezing", "a group the backbone lacks", lambda: build_tiny_model().fit(X, Y, epochs=1, verbose=0, callbacks=[tltf.StagedUnfreezing({0: "conv5"})]), Raises(ConfigError, "conv5")),
    Row("fine_tune", "None as the model", lambda: tltf.fine_tune(None, (X, Y), epochs=1), Raises(ConfigError, "model must be a Keras model")),
    Row("fit_frozen_head", "None as the model", lambda: tltf.fit_frozen_head(None, (X, Y)), Raises(ConfigError, "Received: model=None")),
    Row("find_learning_rate", "None as the model", lambda: tltf.find_learning_rate(None, (X, Y)), Raises(ConfigError, "model must be a Keras model")),
    Row("compute_features", "None as the model", lambda: tltf.compute_features(None, (X, Y)), Raises(ConfigError, "model must be a Keras model")),
    Row("adapt_domain", "a path, not a model", lambda: tltf.adapt_domain("model.keras", (X, Y), X), Raises(ConfigError, "keras.saving.load_model(path)")),
    Row("distill", "None as the student", lambda: tltf.distill(_model(), None, (X, Y)), Raises(ConfigError, "student must be a Keras model")),
    Row("fine_tune", "anneal as a word", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, anneal="no"), Raises(ConfigError, "anneal must be True or False")),
    Row("fine_tune", "a callback that is not one", lambda: tltf.fine_tune(_model(), (X, Y), epochs=1, callbacks=[print]), Raises(ConfigError, "callbacks must be Keras callbacks")),
    Row("fit_frozen_head", "cache='ram'", lambda: tltf.fit_frozen_head(_model(), (X, Y), cache="ram"), Raises(ConfigError, "'ram' reads as a word, not a path: pass True")),
    Row("compute_features", "cache='no'", lambda: tltf.compute_features(_model(), (X, Y), cache="no"), Raises(ConfigError, "pass False")),
    Row("tune_learning_rate", "directory None", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), directory=None), Raises(ConfigError, "directory must be a path")),
    Row("tune_learning_rate", "project_name empty", lambda: tltf.tune_learning_rate("keras:mobilenet_v2", (X, Y), project_name=""), Raises(ConfigError, "project_name must be a non-empty string")),
    Row("find_learning_rate", "beta 2", lambda: tltf.find_learning_rate(_model(), (X, Y), beta=2, plot_path=None), Raises(ConfigError, "beta must be a number in [0, 1)")),
    Row("find_learning_rate", "batch_size 0", lambda: tltf.find_learning_rate(_model(), (X, Y), batch_size=0, plot_path=None), Raises(ConfigError, "batch_size must be an integer >= 1")),
    Row("find_learning_rate", "plot_path a folder", lambda: tltf.find_learning_rate(_model(), (X, Y), plot_path=_root()), Raises(ConfigError, "is a folder; pass a file path")),
    Row("distill", "the teacher as its own student", lambda: tltf.distill(_model(), _model(), (X, Y)), Raises(ConfigError, "the same model")),
    Row("tune_learning_rate", "a whole classifier as the backbone", lambda: tltf.tune_learning_rate(_model(), (X, Y), num_classes=3, max_trials=1, epochs=1, directory=_root() / "tune-whole"), Raises(ConfigError, "model.backbone.model")),
    Row("FeatureCache", "a number as its folder", lambda: tltf.FeatureCache(3), Raises(ConfigError, "directory must be a path")),
]
# fmt: on


def _text_student():
    from tests.bad_input.test_builders import _text

    return _text(num_classes=3)


def _student_64():
    from tests.support.helpers import TINY_GROUPS, tiny_base

    student = tltf.build_image_classifier(
        tiny_base((64, 64, 3)), 3, preprocessing="unit", layer_groups=TINY_GROUPS
    )
    tltf.unfreeze_backbone(student)
    return student


def _unfrozen():
    student = build_tiny_model()
    tltf.unfreeze_backbone(student)
    return student


def _frozen_student():
    student = build_tiny_model()
    tltf.freeze_backbone(student)
    student.get_layer("head").trainable = False
    return student


def build_tiny_model_2():
    from tests.support.helpers import TINY_GROUPS, tiny_base

    return tltf.build_image_classifier(
        tiny_base(), 2, preprocessing="unit", layer_groups=TINY_GROUPS
    )


@functools.cache
def _hidden_model():
    return build_tiny_model(hidden_units=(8,))


def _trainable_after(groups):
    model = build_tiny_model()
    tltf.set_trainable_groups(model, groups)
    return tltf.trainable_groups(model)


def _plain_model():
    import keras

    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])


@functools.cache
def _a_file() -> Path:
    path = _root() / "a_file"
    path.write_text("x")
    return path


@pytest.mark.parametrize("row", params([r for r in ROWS if r.call is not None]))
def test_recipe(row: Row) -> None:
    check(row)


def test_find_learning_rate_warns_when_the_loss_does_not_move(caplog):
    row = next(r for r in ROWS if r.name == "a loss that does not move warns")
    check(Row(row.entry, row.name, _flat_loss_warns(caplog), row.outcome))


def test_fine_tune_shows_the_frozen_stage_as_one_line(capsys):
    row = next(r for r in ROWS if r.name.startswith("one line for the frozen"))
    check(Row(row.entry, row.name, lambda: _fine_tune_frozen_line(capsys), row.outcome))
