"""Macro precision, recall and F1 against a hand computation."""

from __future__ import annotations

import numpy as np

from tltf.metrics import MacroF1, MacroPrecision, MacroRecall


def hand_macro(y_true, y_pred, num_classes):
    """Per-class precision/recall/F1, averaged over classes seen in either."""
    ps, rs, fs = [], [], []
    for c in range(num_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        if tp + fp + fn == 0:
            continue
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        ps.append(p)
        rs.append(r)
        fs.append(2 * p * r / (p + r) if p + r else 0.0)
    return np.mean(ps), np.mean(rs), np.mean(fs)


def test_macro_metrics_accumulate_over_batches_like_a_hand_computation():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 50)
    probs = rng.dirichlet(np.ones(5), 50)  # class 4 is never a label
    y_pred = probs.argmax(axis=1)
    metrics = [MacroPrecision(5), MacroRecall(5), MacroF1(5)]
    for m in metrics:
        for lo in range(0, 50, 16):  # several batches
            m.update_state(y_true[lo : lo + 16], probs[lo : lo + 16])
    got = [float(m.result()) for m in metrics]
    np.testing.assert_allclose(got, hand_macro(y_true, y_pred, 5), rtol=1e-6)


def test_one_hot_labels_give_the_same_result_as_integers():
    y_true = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 2, 2, 1]] * 0.9 + 0.03
    ints, onehot = MacroF1(3), MacroF1(3)
    ints.update_state(y_true, probs)
    onehot.update_state(np.eye(3)[y_true], probs)
    assert float(ints.result()) == float(onehot.result())
    # class 0 F1 = 1, class 1 F1 = 0, class 2: p=1/2, r=1/2 -> 1/2
    np.testing.assert_allclose(float(ints.result()), (1 + 0 + 0.5) / 3, rtol=1e-6)


def test_multilabel_thresholded_counts():
    y_true = np.array([[1, 0], [1, 1], [0, 1]])
    probs = np.array([[0.9, 0.2], [0.4, 0.8], [0.7, 0.6]])
    m = MacroRecall(2, multi_label=True)
    m.update_state(y_true, probs)
    np.testing.assert_allclose(float(m.result()), (1 / 2 + 2 / 2) / 2)


def test_reset_state_and_config_round_trip():
    m = MacroPrecision(3)
    m.update_state([0, 1], np.eye(3)[[0, 1]])
    m.reset_state()
    assert float(m.result()) == 0.0
    clone = MacroPrecision.from_config(m.get_config())
    assert clone.num_classes == 3 and clone.name == "precision"


def test_sample_weights_count_each_example_once_like_scikit_learn():
    from sklearn.metrics import precision_recall_fscore_support

    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    weights = rng.choice([0.5, 1.0, 2.0], 40)
    metrics = [MacroPrecision(3), MacroRecall(3), MacroF1(3)]
    for m in metrics:
        m.update_state(y_true, probs, sample_weight=weights)
    expected = precision_recall_fscore_support(
        y_true, probs.argmax(axis=1), average="macro", sample_weight=weights
    )[:3]
    np.testing.assert_allclose([float(m.result()) for m in metrics], expected)


def test_compiled_together_the_metrics_count_each_batch_once(monkeypatch):
    import tensorflow as tf

    from tltf import metrics as metrics_module

    calls = []
    original = metrics_module._class_counts
    monkeypatch.setattr(
        metrics_module,
        "_class_counts",
        lambda *args: calls.append(1) or original(*args),
    )
    rng = np.random.default_rng(2)
    y_true = tf.constant(rng.integers(0, 3, 30))
    probs = tf.constant(rng.dirichlet(np.ones(3), 30), tf.float32)
    other = tf.constant(rng.dirichlet(np.ones(3), 30), tf.float32)
    metrics = [MacroPrecision(3), MacroRecall(3), MacroF1(3)]

    @tf.function
    def step(y, p):
        for m in metrics:
            m.update_state(y, p)
        return [m.result() for m in metrics]

    got = [float(v) for v in step(y_true, probs)]
    assert len(calls) == 1  # one count for the three metrics
    expected = hand_macro(y_true.numpy(), probs.numpy().argmax(axis=1), 3)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # Other predictions (or an array changed in place) are counted anew.
    recall = MacroRecall(3)
    recall.update_state(y_true, other)
    np.testing.assert_allclose(
        float(recall.result()),
        hand_macro(y_true.numpy(), other.numpy().argmax(axis=1), 3)[1],
        rtol=1e-6,
    )
    labels = y_true.numpy()
    first, second = MacroRecall(3), MacroRecall(3)
    first.update_state(labels, probs)
    labels[:] = (labels + 1) % 3
    second.update_state(labels, probs)
    expected = hand_macro(labels, probs.numpy().argmax(axis=1), 3)[1]
    np.testing.assert_allclose(float(second.result()), expected, rtol=1e-6)
