"""Calibration and out-of-scope rejection: the arithmetic by hand, the models."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import tltf
from tests.support.helpers import text_row
from tltf.evaluation import calibration as calib
from tltf.evaluation.report import classification_metrics

# --- the arithmetic ---


def test_ece_matches_hand_computation():
    # Bins of width 1/15: 0.9 (right) and 0.6 (wrong) fall in different bins:
    # ECE = 0.5 * |1 - 0.9| + 0.5 * |0 - 0.6| = 0.35.
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert calib.expected_calibration_error(probabilities, [0, 1]) == pytest.approx(
        0.35
    )
    # Same bin: |mean accuracy - mean confidence| = |0.5 - 0.905|.
    same_bin = np.array([[0.9, 0.1], [0.91, 0.09]])
    assert calib.expected_calibration_error(same_bin, [0, 1]) == pytest.approx(0.405)


def test_fit_temperature_recovers_the_temperature_of_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (4000, 5))
    # Labels drawn from softmax(logits / 2): the model is over-confident by T=2.
    target = calib._softmax(logits / 2.0)
    labels = np.array([rng.choice(5, p=p) for p in target])
    fitted = calib.fit_temperature(calib._softmax(logits), labels)
    assert fitted == pytest.approx(2.0, rel=0.1)
    scaled = calib.apply_temperature(calib._softmax(logits), fitted)
    before = calib.expected_calibration_error(calib._softmax(logits), labels)
    assert calib.expected_calibration_error(scaled, labels) < before / 2


def test_fit_temperature_keeps_one_when_every_row_is_right():
    """No wrong row: sharpening lowers the NLL without end, so nothing is fitted.

    (A quick CLINC150 run at 100% validation accuracy got T = 0.019, then a
    threshold of 1.0 that rejected 96% of the in-scope test texts.)
    """
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1, (200, 4))
    labels = logits.argmax(axis=-1)  # The top class is always right.
    assert calib.fit_temperature(calib._softmax(logits), labels) == 1.0
    labels[:20] = (labels[:20] + 1) % 4  # Some wrong rows: a real fit again.
    assert calib.fit_temperature(calib._softmax(logits), labels) != 1.0


def test_threshold_for_precision_by_hand():
    # Top probabilities 0.9 (right), 0.8 (right), 0.7 (wrong), 0.6 (right).
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    # Accepting the top 2: 2/2; top 3: 2/3; all 4: 3/4.
    assert calib.threshold_for_precision(probabilities, labels, 1.0) == 0.8
    assert calib.threshold_for_precision(probabilities, labels, 0.75) == 0.6
    assert calib.threshold_for_precision(probabilities, labels, 0.7) == 0.6
    wrong_first = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert calib.threshold_for_precision(wrong_first, np.array([0, 0]), 0.9) is None


def test_threshold_for_precision_accepts_ties_together():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    # The two 0.9 rows: one right, one wrong -> 1/2 whatever their order.
    assert calib.threshold_for_precision(probabilities, [0, 1, 0], 1.0) is None


def test_threshold_for_out_of_scope_by_hand():
    # In scope: top probabilities 0.9, 0.8, 0.5 (right) and 0.4 (wrong).
    probabilities = np.array(
        [[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.5, 0.3, 0.2], [0.3, 0.4, 0.3]]
    )
    labels = np.array([0, 0, 0, 0])
    oos = np.array([[0.45, 0.3, 0.25], [0.7, 0.2, 0.1], [0.85, 0.1, 0.05]])
    # No accuracy to give up (3/4): t = 0.5 rejects the wrong 0.4 and the
    # out-of-scope 0.45; any higher t would reject the right 0.5.
    assert calib.threshold_for_out_of_scope(probabilities, labels, oos, 0.0) == 0.5
    # A quarter to give up (accuracy >= 2/4): t = 0.8 rejects 0.45 and 0.7
    # (2 of 3 out-of-scope); 0.85 would also reject the right 0.8.
    t = calib.threshold_for_out_of_scope(probabilities, labels, oos, 0.25)
    assert t == 0.8
    assert calib.answer(oos, t).tolist() == [-1, -1, 0]


def test_answer_and_metrics_count_unknown_as_wrong():
    probabilities = np.array([[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]])
    answers = calib.answer(probabilities, 0.6)
    assert answers.tolist() == [0, -1, 1]
    report = classification_metrics([0, 0, 1], answers, ["a", "b"])
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.support == [2, 1]
    assert report.recall == [0.5, 1.0]  # The unknown 'a' is a miss.
    assert report.precision == [1.0, 1.0]  # ...but no wrong answer.
    assert report.confusion_matrix == [[1, 0], [0, 1]]
    with pytest.raises(tltf.DataError, match="-1 for unknown"):
        classification_metrics([0], [-2], ["a", "b"])


# --- models ---


def vector_model(scale: float = 4.0) -> keras.Model:
    """A tltf head on 3-vectors whose probabilities are softmax(scale * x)."""
    inputs = keras.Input((3,))
    head = tltf.Head(3, pooling=None, dropout=0.0)
    model = tltf.TransferModel(inputs, head(inputs))
    head.output_layer.set_weights([np.eye(3) * scale, np.zeros(3)])
    return model


def vector_data(n: int = 300, noise: float = 0.5, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = np.eye(3)[labels] + rng.normal(0, noise, (n, 3))
    return x.astype("float32"), labels


def test_calibrate_rejection_reaches_the_target_precision():
    model = vector_model()
    x, y = vector_data()
    before = model.predict(x, verbose=0)
    result = tltf.calibrate_rejection(model, (x, y), target_precision=0.95)
    assert result.rule == "target_precision" and result.precision >= 0.95
    assert result.coverage < 1.0 and 0 < result.threshold < 1
    assert result.temperature != 1.0 and result.ece_after < result.ece_before
    # predict gives the scaled probabilities: same top class, other values.
    after = model.predict(x, verbose=0)
    assert (after.argmax(-1) == before.argmax(-1)).all()
    np.testing.assert_allclose(
        after, calib.apply_temperature(before, result.temperature), atol=1e-5
    )
    answers = tltf.predict_classes(model, x, class_names=["a", "b", "c"])
    low = after.max(-1) < result.threshold
    assert (answers.class_index[low] == -1).all()
    assert {answers.class_name[i] for i in np.flatnonzero(low)} == {"unknown"}
    assert (answers.class_index[~low] == after.argmax(-1)[~low]).all()
    accepted = answers.class_index >= 0
    assert np.mean(answers.class_index[accepted] == y[accepted]) >= 0.95


def test_evaluate_reports_ece_unknown_and_out_of_scope(tmp_path):
    model = vector_model()
    x, y = vector_data()
    plain = tltf.evaluate(model, (x, y))
    assert plain.calibration is None and plain.rejection is None
    assert 0 < plain.ece < 1
    with pytest.raises(tltf.ConfigError, match="calibrate_rejection"):
        tltf.evaluate(model, (x, y), oos_data=x)
    oos = (np.random.default_rng(1).normal(0, 0.3, (100, 3)) + 1 / 3).astype("float32")
    result = tltf.calibrate_rejection(model, (x, y), oos_data=oos)
    x_test, y_test = vector_data(seed=2)
    report = tltf.evaluate(model, (x_test, y_test), oos_data=oos, output_dir=tmp_path)
    assert report.calibration["temperature"] == result.temperature
    assert report.calibration["ece_before"] == pytest.approx(plain.ece, abs=0.05)
    assert report.rejection["threshold"] == result.threshold
    assert report.rejection["num_unknown"] > 0
    assert report.rejection["out_of_scope_recall"] == pytest.approx(
        result.out_of_scope_recall
    )
    assert report.accuracy <= report.rejection["accuracy_without_rejection"]
    assert "answered 'unknown'" in report.summary() and "ECE" in report.summary()
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rejection"]["threshold"] == result.threshold


def test_out_of_scope_rule_keeps_in_scope_accuracy_within_the_budget():
    model = vector_model()
    x, y = vector_data()
    oos = (np.random.default_rng(1).normal(0, 0.3, (100, 3)) + 1 / 3).astype("float32")
    result = tltf.calibrate_rejection(model, (x, y), oos_data=oos)
    assert result.rule == "out_of_scope"
    assert result.accuracy_with_rejection >= result.accuracy - 0.01 - 1e-9
    assert result.out_of_scope_recall > 0.2
    strict = tltf.calibrate_rejection(model, (x, y), oos_data=oos, max_accuracy_drop=0)
    assert strict.accuracy_with_rejection == pytest.approx(strict.accuracy)
    assert strict.threshold <= result.threshold


def test_calibration_survives_a_keras_round_trip(tmp_path):
    model = vector_model()
    x, y = vector_data()
    tltf.calibrate_rejection(model, (x, y), target_precision=0.9)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    head = loaded.head
    original = model.head
    assert head.temperature == original.temperature
    assert head.rejection_threshold == original.rejection_threshold
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    assert (
        tltf.predict_classes(loaded, x).class_index
        == tltf.predict_classes(model, x).class_index
    ).all()


def test_recalibrating_starts_from_the_raw_probabilities():
    model = vector_model()
    x, y = vector_data()
    first = tltf.calibrate_rejection(model, (x, y), target_precision=0.9)
    second = tltf.calibrate_rejection(model, (x, y), target_precision=0.9)
    assert second.temperature == pytest.approx(first.temperature)
    assert second.threshold == pytest.approx(first.threshold)


def test_training_sees_the_raw_probabilities():
    model = vector_model()
    x, y = vector_data()
    head = model.head
    raw = np.asarray(head(x, training=True))
    tltf.calibrate_rejection(model, (x, y), target_precision=0.9)
    np.testing.assert_allclose(np.asarray(head(x, training=True)), raw, atol=1e-6)
    assert not np.allclose(np.asarray(head(x, training=False)), raw, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, tltf.ConfigError, "exactly one of target_precision"),
        (
            {"target_precision": 0.9, "oos_data": np.zeros((2, 3))},
            tltf.ConfigError,
            "exactly one of target_precision",
        ),
        ({"target_precision": 0.0}, tltf.ConfigError, r"in \(0, 1\]"),
        ({"target_precision": 1.5}, tltf.ConfigError, r"in \(0, 1\]"),
        (
            {"target_precision": 0.9, "max_accuracy_drop": 0.01},
            tltf.ConfigError,
            "oos_data rule only",
        ),
        (
            {"oos_data": np.zeros((2, 3)), "max_accuracy_drop": 1.0},
            tltf.ConfigError,
            r"in \[0, 1\)",
        ),
        ({"oos_data": np.zeros((0, 3))}, tltf.DataError, "empty"),
        ({"oos_data": []}, tltf.DataError, "empty"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, error, match):
    model = vector_model()
    with pytest.raises(error, match=match):
        tltf.calibrate_rejection(model, vector_data(30), **kwargs)
    assert model.head.temperature == 1.0


def test_unreachable_precision_and_empty_data_fail_clearly():
    model = vector_model()
    x, y = vector_data(60)
    always_wrong = (x.argmax(-1) + 1) % 3  # The model's top class is never it.
    with pytest.raises(tltf.DataError, match="No threshold reaches precision 0.5"):
        tltf.calibrate_rejection(model, (x, always_wrong), target_precision=0.5)
    with pytest.raises(tltf.DataError, match="empty"):
        tltf.calibrate_rejection(model, (x[:0], y[:0]), target_precision=0.9)


@pytest.mark.parametrize("task", ["regression", "multilabel"])
def test_models_that_are_not_multiclass_are_refused(task):
    inputs = keras.Input((3,))
    model = tltf.TransferModel(inputs, tltf.Head(2, task=task, pooling=None)(inputs))
    with pytest.raises(tltf.ConfigError, match="multiclass"):
        tltf.calibrate_rejection(model, vector_data(10), target_precision=0.9)
    with pytest.raises(tltf.ConfigError, match="multiclass"):
        tltf.Head(2, task=task, rejection_threshold=0.5)


def test_head_rejects_bad_calibration_values():
    with pytest.raises(tltf.ConfigError, match="temperature must be a positive"):
        tltf.Head(3, temperature=0.0)
    with pytest.raises(tltf.ConfigError, match=r"in \[0, 1\]"):
        tltf.Head(3, rejection_threshold=1.5)


# --- text models (house rule: "cls" and "mean" pooled heads both) ---

TEXTS = ["a good film", "great acting", "a bad film", "boring and dull"] * 3
LABELS = np.array([1, 1, 0, 0] * 3)
OOS = ["book a flight to paris", "what is the weather", "play some jazz"]


@pytest.fixture(scope="module", params=["tiny_bert", "tiny_bert-mean"])
def text_model(request, tmp_path_factory):
    """Tiny BERT with its "cls" head and a "mean" one (helpers.TEXT_ROWS)."""
    folder = tmp_path_factory.mktemp("bert") / "bert"
    backbone, pooling = text_row(request.param, folder, TEXTS + OOS)
    return tltf.build_text_classifier(backbone, 2, sequence_length=16, pooling=pooling)


def test_text_model_calibrates_and_answers_unknown(text_model):
    result = tltf.calibrate_rejection(
        text_model, (TEXTS, LABELS), oos_data=np.asarray(OOS)
    )
    assert result.accuracy_with_rejection >= result.accuracy - 0.01 - 1e-9
    queries = OOS + TEXTS[:4]
    probabilities = text_model.predict(queries, verbose=0)
    # A threshold between the answers: some rows say unknown, others not.
    middle = float(np.median(probabilities.max(-1)))
    tltf.evaluation.rejection.set_calibration(text_model, result.temperature, middle)
    low = probabilities.max(-1) < middle
    assert low.any() and (~low).any()
    for wrap in (list, np.asarray):  # Strings as a list and as a NumPy array.
        answers = tltf.predict_classes(
            text_model, wrap(queries), class_names=["neg", "pos"]
        )
        np.testing.assert_allclose(answers.probabilities, probabilities, atol=1e-6)
        assert [n == "unknown" for n in answers.class_name] == low.tolist()
        assert (answers.class_index[low] == -1).all()
    report = tltf.evaluate(text_model, (np.asarray(TEXTS), LABELS), oos_data=OOS)
    assert report.rejection["num_out_of_scope"] == 3
