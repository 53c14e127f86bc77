"""Evaluation reports: numbers against a hand computation, files, plots."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import tltf
from tltf.evaluation.plots import stage_changes
from tltf.evaluation.report import classification_metrics

# Labels and predictions of six examples over three classes.
LABELS = [0, 0, 0, 1, 1, 2]
PREDICTIONS = [0, 1, 0, 1, 2, 2]
# By hand: confusion [[2, 1, 0], [0, 1, 1], [0, 0, 1]].
# precision: a 2/2, b 1/2, c 1/2; recall: a 2/3, b 1/2, c 1/1.
# f1: a 2*1*(2/3)/(1+2/3) = 0.8, b 0.5, c 2*0.5*1/1.5 = 2/3.
HAND = {
    "confusion": [[2, 1, 0], [0, 1, 1], [0, 0, 1]],
    "precision": [1.0, 0.5, 0.5],
    "recall": [2 / 3, 0.5, 1.0],
    "f1": [0.8, 0.5, 2 / 3],
    "accuracy": 4 / 6,
    "macro_precision": 2 / 3,
    "macro_recall": (2 / 3 + 0.5 + 1.0) / 3,
    "macro_f1": (0.8 + 0.5 + 2 / 3) / 3,
}


def argmax_model(num_classes: int = 3) -> keras.Model:
    """A softmax 'classifier' whose top class is the argmax of its input."""
    inputs = keras.Input((num_classes,))
    outputs = keras.layers.Softmax()(keras.layers.Rescaling(10.0)(inputs))
    return keras.Model(inputs, outputs)


def one_hot(indices, n=3) -> np.ndarray:
    return np.eye(n, dtype="float32")[indices]


def test_metrics_match_hand_computation():
    r = classification_metrics(LABELS, PREDICTIONS, ["a", "b", "c"])
    assert r.confusion_matrix == HAND["confusion"]
    np.testing.assert_allclose(r.precision, HAND["precision"])
    np.testing.assert_allclose(r.recall, HAND["recall"])
    np.testing.assert_allclose(r.f1, HAND["f1"])
    assert r.accuracy == pytest.approx(HAND["accuracy"])
    assert r.macro["precision"] == pytest.approx(HAND["macro_precision"])
    assert r.macro["recall"] == pytest.approx(HAND["macro_recall"])
    assert r.macro["f1"] == pytest.approx(HAND["macro_f1"])
    assert r.support == [3, 2, 1]


def test_macro_leaves_out_classes_never_seen_and_counts_unpredicted_as_zero():
    # Class 3 occurs nowhere: left out. Class 2 is labelled but never predicted.
    r = classification_metrics([0, 1, 2], [0, 1, 1], ["a", "b", "c", "d"])
    assert r.precision == [1.0, 0.5, 0.0, 0.0]
    assert r.macro["precision"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert r.macro["recall"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)


def test_macro_f1_agrees_with_the_training_metric():
    y_pred = one_hot(PREDICTIONS)
    metric = tltf.MacroF1(3)
    metric.update_state(np.asarray(LABELS), y_pred)
    report = classification_metrics(LABELS, PREDICTIONS, ["a", "b", "c"])
    assert report.macro["f1"] == pytest.approx(float(metric.result()), abs=1e-6)


def test_evaluate_writes_report_and_plots(tmp_path):
    x, y = one_hot(PREDICTIONS), np.asarray(LABELS)
    history = {
        "loss": [1.0, 0.8, 0.6, 0.5],
        "val_loss": [1.1, 0.9, 0.7, 0.65],
        "accuracy": [0.5, 0.6, 0.7, 0.8],
        "stage": [0.0, 0.0, 1.0, 2.0],
        "trainable_params": [10.0, 10.0, 50.0, 90.0],
        "lr_head": [1e-3, 1e-3, 5e-4, 2.5e-4],
    }
    report = tltf.evaluate(
        argmax_model(),
        (x, y),
        class_names=["a", "b", "c"],
        output_dir=tmp_path / "eval",
        history=history,
    )
    assert report.confusion_matrix == HAND["confusion"]
    assert report.macro["f1"] == pytest.approx(HAND["macro_f1"])
    saved = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert saved["per_class"]["a"]["f1"] == pytest.approx(0.8)
    assert saved["accuracy"] == pytest.approx(HAND["accuracy"])
    assert saved["confusion_matrix"] == HAND["confusion"]
    assert [s["epoch"] for s in saved["stages"]] == [0, 2, 3]
    assert saved["stages"][1] == {
        "epoch": 2,
        "stage": 1,
        "trainable_params": 50.0,
        "lr_head": 5e-4,
    }
    for kind in ("confusion_matrix", "training_curves"):
        png = (tmp_path / "eval" / f"{kind}.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert set(report.files) == {"report", "confusion_matrix", "training_curves"}


def test_evaluate_takes_loaded_data_and_history_object(tmp_path):
    data = tltf.data.from_arrays(
        one_hot(PREDICTIONS), np.asarray(LABELS), class_names=["a", "b", "c"]
    )
    history = keras.callbacks.History()
    history.history = {"loss": [0.5, 0.4]}
    report = tltf.evaluate(argmax_model(), data, output_dir=tmp_path, history=history)
    assert report.class_names == ["a", "b", "c"]
    assert report.num_examples == 6
    assert (tmp_path / "training_curves.png").is_file()
    assert "macro avg" in report.summary()


def test_evaluate_without_output_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = tltf.evaluate(argmax_model(), (one_hot([0, 1]), np.array([0, 1])))
    assert report.accuracy == 1.0 and report.files == {}
    assert list(tmp_path.iterdir()) == []


def test_stage_changes_read_stage_logs():
    logs = {"stage": [0.0, 1.0, 1.0, 2.0], "loss": [1, 1, 1, 1]}
    assert [(c["epoch"], c["stage"]) for c in stage_changes(logs)] == [
        (0, 0),
        (1, 1),
        (3, 2),
    ]
    assert stage_changes({"loss": [1.0]}) == []


def test_bad_inputs_give_clear_errors():
    with pytest.raises(tltf.ConfigError, match="3 outputs but 2 class names"):
        tltf.evaluate(
            argmax_model(), (one_hot([0]), np.array([0])), class_names=["a", "b"]
        )
    with pytest.raises(tltf.DataError, match="Labels must lie in"):
        tltf.evaluate(argmax_model(), (one_hot([0]), np.array([5])))
    regression = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(tltf.ConfigError, match="multiclass"):
        tltf.evaluate(regression, (one_hot([0]), np.array([0])))
    with pytest.raises(tltf.DataError, match="LoadedData"):
        tltf.evaluate(argmax_model(), "not data")


def test_an_existing_report_is_kept_unless_overwrite(tmp_path, monkeypatch):
    data = (one_hot([0, 1, 2]), np.array([0, 1, 2]))
    tltf.evaluate(argmax_model(), data, output_dir=tmp_path)
    first = (tmp_path / "report.json").read_text()

    def no_prediction(*args, **kwargs):
        raise AssertionError("refused before any prediction")

    with monkeypatch.context() as patch:
        patch.setattr("tltf.evaluation.report.labelled_predictions", no_prediction)
        with pytest.raises(tltf.ConfigError, match="already exists.*overwrite=True"):
            tltf.evaluate(
                argmax_model(), (one_hot([0]), np.array([1])), output_dir=tmp_path
            )
    assert (tmp_path / "report.json").read_text() == first
    report = tltf.evaluate(
        argmax_model(),
        (one_hot([0]), np.array([1])),
        output_dir=tmp_path,
        overwrite=True,
    )
    assert json.loads((tmp_path / "report.json").read_text())["accuracy"] == 0.0
    assert report.accuracy == 0.0
