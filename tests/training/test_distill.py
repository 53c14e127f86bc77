"""Knowledge distillation: the loss, the data plumbing, the training, the report."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, same, weights_of
from tltf.training.distill import Distiller, distill, validate_distillation
from tltf.training.distill.data import prepare_distillation_data

NUM_FEATURES, NUM_CLASSES = 8, 4


def mlp(hidden: tuple[int, ...], seed: int, name: str) -> keras.Model:
    """A dense classifier ending in a tltf Head (softmax outputs)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((NUM_FEATURES,), name="features")
    x = inputs
    for units in hidden:
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = tltf.Head(NUM_CLASSES, pooling=None, dropout=0.0)(x)
    return keras.Model(inputs, outputs, name=name)


class LinearTask:
    """Gaussian inputs; the class is the argmax of a fixed linear map."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.weights = self.rng.normal(size=(NUM_FEATURES, NUM_CLASSES))

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = self.rng.normal(size=(n, NUM_FEATURES)).astype("float32")
        return x, np.argmax(x @ self.weights, axis=1).astype("int32")


@pytest.fixture(scope="module")
def task_and_teacher():
    """A teacher trained on 4000 labelled examples of `LinearTask`."""
    task = LinearTask()
    x, y = task.sample(4000)
    teacher = mlp((64, 64), seed=1, name="teacher")
    tltf.compile_model(teacher, learning_rate=1e-2)
    teacher.fit(x, y, epochs=5, batch_size=64, verbose=0)
    return task, teacher


def hand_loss(labels, teacher_probs, student_probs, temperature, alpha, weights=None):
    """The documented mix, per batch, with numpy."""
    eps = 1e-7
    p = np.asarray(student_probs, "float64")
    labelled = labels >= 0
    picked = p[np.arange(len(labels)), np.where(labelled, labels, 0)]
    hard = np.where(labelled, -np.log(np.clip(picked, eps, 1 - eps)), 0.0)

    def soften(probs):
        logits = np.log(np.maximum(np.asarray(probs, "float64"), 1e-30)) / temperature
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    q_t, p_t = soften(teacher_probs), soften(p)
    kl = np.sum(q_t * (np.log(q_t) - np.log(p_t)), axis=1)
    per_example = alpha * hard + (1 - alpha) * temperature**2 * kl
    weights = np.ones(len(labels)) if weights is None else weights
    return np.sum(per_example * weights) / len(labels), hard, temperature**2 * kl


def macro_f1(labels: np.ndarray, pred: np.ndarray) -> float:
    """Macro F1 over the classes present in labels or predictions."""
    scores = []
    for c in np.union1d(labels, pred):
        tp = np.sum((pred == c) & (labels == c))
        fp, fn = (
            np.sum((pred == c) & (labels != c)),
            np.sum((pred != c) & (labels == c)),
        )
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


# --- the loss ---
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_loss_is_the_documented_mix_on_one_batch(task_and_teacher, alpha):
    task, teacher = task_and_teacher
    student = mlp((8,), seed=2, name="student")
    x, labels = task.sample(16)
    labels[::3] = -1  # Unlabeled examples get only the KL term.
    weights = np.linspace(0.5, 1.5, 16).astype("float32")
    q = teacher.predict(x, verbose=0)
    p = student.predict(x, verbose=0)
    expected, hard, soft = hand_loss(labels, q, p, 2.5, alpha, weights)

    distiller = Distiller(teacher, student, temperature=2.5, alpha=alpha)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0))
    targets = {"labels": labels, "teacher_probs": q}
    loss = distiller.compute_loss(x, targets, student(x), weights, training=False)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5, atol=1e-6)
    # The same number through Keras' own evaluation path, plus the two parts.
    result = distiller.test_on_batch(
        x, targets, sample_weight=weights, return_dict=True
    )
    np.testing.assert_allclose(result["loss"], expected, rtol=1e-5, atol=1e-6)
    labelled = labels >= 0
    np.testing.assert_allclose(
        result["student_loss"],
        np.sum((hard * weights)[labelled]) / labelled.sum(),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        result["distillation_loss"], np.mean(soft * weights), rtol=1e-5
    )


def test_teacher_on_every_batch_gives_the_cached_loss(task_and_teacher):
    task, teacher = task_and_teacher
    student = mlp((8,), seed=2, name="student")
    x, labels = task.sample(8)
    distiller = Distiller(teacher, student, temperature=4.0, alpha=0.5)
    cached = {"labels": labels, "teacher_probs": teacher.predict(x, verbose=0)}
    y_pred = student(x)
    np.testing.assert_allclose(
        float(distiller.compute_loss(x, labels, y_pred)),
        float(distiller.compute_loss(x, cached, y_pred)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), "3", None, True])
def test_bad_temperature_is_a_config_error(task_and_teacher, temperature):
    _, teacher = task_and_teacher
    with pytest.raises(tltf.ConfigError, match="temperature must be a number > 0"):
        Distiller(teacher, mlp((4,), 0, "s"), temperature=temperature)
    with pytest.raises(tltf.ConfigError, match=r"Received: temperature="):
        distill(
            teacher,
            mlp((4,), 0, "s"),
            (np.zeros((2, 8)), [0, 1]),
            temperature=temperature,
        )


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("inf"), None])
def test_alpha_outside_unit_interval_is_a_config_error(task_and_teacher, alpha):
    _, teacher = task_and_teacher
    with pytest.raises(tltf.ConfigError, match=r"alpha must be a number in \[0, 1\]"):
        Distiller(teacher, mlp((4,), 0, "s"), alpha=alpha)
    with pytest.raises(tltf.ConfigError, match=r"Received: alpha="):
        validate_distillation(2.0, alpha)


def test_incompatible_models_and_bad_labels_fail_clearly(task_and_teacher):
    task, teacher = task_and_teacher
    other = keras.Sequential([keras.Input((NUM_FEATURES,)), tltf.Head(3, pooling=None)])
    with pytest.raises(
        tltf.ConfigError, match="teacher with 4 outputs, student with 3"
    ):
        Distiller(teacher, other)
    with pytest.raises(tltf.ConfigError, match="takes no loss"):
        Distiller(teacher, mlp((4,), 0, "s")).compile(loss="mse")
    x, _ = task.sample(4)
    with pytest.raises(tltf.DataError, match=r"in \[0, 4\) or -1"):
        distill(teacher, mlp((4,), 0, "s"), (x, [0, 1, 7, 2]), epochs=1, verbose=0)
    frozen = mlp((4,), 0, "s")
    frozen.trainable = False
    with pytest.raises(tltf.ConfigError, match="unfreeze_backbone"):
        distill(teacher, frozen, (x, [0, 1, 2, 3]), epochs=1, verbose=0)
    endless = tf.data.Dataset.from_tensor_slices((x, [0, 1, 2, 3])).batch(2).repeat()
    with pytest.raises(tltf.ConfigError, match="cache_teacher=False"):
        distill(teacher, mlp((4,), 0, "s"), endless, epochs=1, verbose=0)


# --- data: teacher outputs computed once ---
def test_cached_teacher_outputs_stay_with_their_examples(task_and_teacher):
    task, teacher = task_and_teacher
    x, labels = task.sample(40)
    extra, _ = task.sample(24)
    # A pipeline that reshuffles every epoch: the cache must still pair each
    # example with its own label and teacher output.
    shuffled = (
        tf.data.Dataset.from_tensor_slices((x, labels))
        .shuffle(40, reshuffle_each_iteration=True)
        .batch(8)
    )
    train, _ = prepare_distillation_data(
        teacher, shuffled, unlabeled=extra, num_classes=NUM_CLASSES, seed=0
    )
    by_row = {tuple(row): label for row, label in zip(x.round(5), labels)}
    by_row.update({tuple(row): -1 for row in extra.round(5)})
    orders = []
    for _ in range(2):
        seen = []
        for xb, targets in train:
            expected_probs = teacher.predict_on_batch(xb)
            np.testing.assert_allclose(
                targets["teacher_probs"], expected_probs, atol=1e-6
            )
            for row, label in zip(xb.numpy().round(5), targets["labels"].numpy()):
                assert by_row[tuple(row)] == label
                seen.append(tuple(row))
        assert sorted(seen) == sorted(by_row)  # Every example once per epoch.
        orders.append(seen)
    assert orders[0] != orders[1]  # Reshuffled between epochs.


def test_teacher_on_every_batch_mixes_in_unlabeled_examples(task_and_teacher):
    task, teacher = task_and_teacher
    x, labels = task.sample(24)
    extra, _ = task.sample(16)
    train, _ = prepare_distillation_data(
        teacher, (x, labels), unlabeled=extra, batch_size=8, cache_teacher=False
    )
    got = {}
    for xb, targets in train:
        assert set(targets) == {"labels"}  # The Distiller runs the teacher.
        got.update(zip(map(tuple, xb.numpy()), targets["labels"].numpy()))
    expected = dict(zip(map(tuple, x), labels)) | {tuple(r): -1 for r in extra}
    assert got == expected
    student = mlp((4,), seed=2, name="student")
    before = weights_of(student.layers)
    distill(
        teacher, student, (x, labels), unlabeled=extra, cache_teacher=False,
        epochs=1, batch_size=8, verbose=0,
    )  # fmt: skip
    assert not same(weights_of(student.layers), before)


# --- training ---
def test_distilled_student_beats_the_hard_label_student(task_and_teacher):
    """40 labelled + 2000 unlabeled examples; both students: same init, same steps."""
    task, teacher = task_and_teacher
    x_labelled, y_labelled = task.sample(40)
    x_unlabeled, _ = task.sample(2000)
    x_test, y_test = task.sample(1000)
    teacher_acc = np.mean(teacher.predict(x_test, verbose=0).argmax(1) == y_test)
    assert teacher_acc > 0.9  # A strong teacher.

    student = mlp((16,), seed=2, name="student")
    baseline = mlp((16,), seed=2, name="baseline")
    assert same(weights_of(student.layers), weights_of(baseline.layers))
    epochs, batch = 6, 64
    steps = epochs * int(np.ceil((40 + 2000) / batch))
    result = distill(
        teacher, student, (x_labelled, y_labelled), unlabeled=x_unlabeled,
        temperature=3.0, alpha=0.1, epochs=epochs, batch_size=batch,
        learning_rate=1e-2, seed=0, verbose=0,
    )  # fmt: skip
    assert result is student and not isinstance(result, Distiller)

    tltf.compile_model(baseline, learning_rate=1e-2)
    hard_only = (
        tf.data.Dataset.from_tensor_slices((x_labelled, y_labelled))
        .shuffle(40, seed=0)
        .repeat()
        .batch(batch)
    )
    baseline.fit(hard_only, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)

    distilled_acc = np.mean(student.predict(x_test, verbose=0).argmax(1) == y_test)
    baseline_acc = np.mean(baseline.predict(x_test, verbose=0).argmax(1) == y_test)
    scores = f"distilled {distilled_acc:.3f}, hard labels only {baseline_acc:.3f}"
    assert baseline_acc < 0.95, scores  # 40 labels alone do not solve the task...
    assert distilled_acc >= baseline_acc, scores  # ...the teacher's targets help.


def test_teacher_stays_frozen_and_student_is_a_plain_model(tmp_path):
    teacher = build_tiny_model(train_bn=True)
    tltf.unfreeze_backbone(teacher)  # Trainable flags must survive untouched.
    student = build_tiny_model()
    tltf.unfreeze_backbone(student)
    flags = [layer.trainable for layer in teacher._flatten_layers()]
    teacher_before = weights_of(teacher.layers)  # Includes BatchNorm statistics.
    student_before = weights_of(student.layers)
    images = np.random.default_rng(0).uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, -1] * 3)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)

    result = distill(teacher, student, data, data, epochs=1, verbose=0)

    assert result is student
    assert same(weights_of(teacher.layers), teacher_before)
    assert [layer.trainable for layer in teacher._flatten_layers()] == flags
    assert not same(weights_of(student.layers), student_before)
    path = tmp_path / "student.keras"
    student.save(path)
    reloaded = keras.models.load_model(path)
    assert not any(isinstance(layer, Distiller) for layer in reloaded._flatten_layers())
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0),
        student.predict(images, verbose=0),
        atol=1e-6,
    )


def test_distill_under_a_strategy_scope(task_and_teacher):
    task, _ = task_and_teacher
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        teacher = mlp((16,), seed=1, name="teacher")
        student = mlp((4,), seed=2, name="student")
    before = weights_of(student.layers)
    x, y = task.sample(48)
    loaded = tltf.data.from_arrays(x, y, batch_size=16, validation_split=0.25)
    history = keras.callbacks.History()
    distill(
        teacher, student, loaded, epochs=1, strategy=strategy, callbacks=[history],
        verbose=0,
    )  # fmt: skip
    assert not same(weights_of(student.layers), before)
    assert {"val_loss", "val_accuracy", "val_f1"} <= set(history.history)
    outside = mlp((4,), seed=3, name="outside")  # Not built under the strategy.
    with pytest.raises(tltf.ConfigError, match="outside"):
        distill(teacher, outside, (x, y), strategy=strategy, verbose=0)


def test_distiller_config_and_keras_file_round_trip(task_and_teacher, tmp_path):
    task, teacher = task_and_teacher
    distiller = Distiller(teacher, mlp((4,), 2, "student"), temperature=5.0, alpha=0.25)
    restored = Distiller.from_config(distiller.get_config())
    assert (restored.temperature, restored.alpha) == (5.0, 0.25)
    assert restored.student.get_config() == distiller.student.get_config()
    x, _ = task.sample(4)
    distiller(x)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Distiller) and loaded.temperature == 5.0
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), distiller.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.slow
def test_text_student_distills_from_strings(tmp_path):
    """A 2-layer BERT student (local KerasHub preset); inputs are raw strings."""
    import keras_hub

    texts = ["a good film", "great acting", "a bad film", "awful acting"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        {word for text in texts for word in text.split()}
    )
    folder = tmp_path / "tiny_bert"
    keras_hub.models.BertTokenizer(vocabulary=vocab).save_to_preset(folder)
    keras_hub.models.BertBackbone(
        vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=8,
    ).save_to_preset(folder)  # fmt: skip
    build = {"backbone": f"kerashub:{folder}", "num_classes": 2, "sequence_length": 8}
    teacher = tltf.build_text_classifier(**build)
    student = tltf.build_text_classifier(**build, name="student")
    tltf.unfreeze_backbone(student)
    before = weights_of(student.get_layer("backbone"))

    distill(
        teacher, student, (np.array(texts), np.array([1, 1, 0, 0])),
        unlabeled=np.array(["good acting", "awful film"]), epochs=1, verbose=0,
    )  # fmt: skip

    assert not same(weights_of(student.get_layer("backbone")), before)
    assert student.predict(tf.constant(["a good film"]), verbose=0).shape == (1, 2)


# --- report ---
def test_report_compares_teacher_and_student(task_and_teacher, tmp_path):
    task, teacher = task_and_teacher
    student = mlp((4,), seed=2, name="student")
    x, y = task.sample(50)
    y[:5] = -1
    path = tmp_path / "reports" / "distill.json"
    report = tltf.distillation_report(
        teacher, student, (x, y), latency_runs=3, path=path
    )

    labelled = y >= 0
    for role, model in (("teacher", teacher), ("student", student)):
        pred = model.predict(x, verbose=0).argmax(1)
        entry = report[role]
        assert entry["accuracy"] == pytest.approx(
            np.mean(pred[labelled] == y[labelled])
        )
        assert entry["f1"] == pytest.approx(macro_f1(y[labelled], pred[labelled]))
        assert entry["params"] == model.count_params()
        assert entry["size_bytes"] > 0 and entry["latency_ms"] > 0
    assert report["student"]["params"] < report["teacher"]["params"]
    assert report["student"]["size_bytes"] < report["teacher"]["size_bytes"]
    assert report["ratios"]["params"] == pytest.approx(
        teacher.count_params() / student.count_params()
    )
    assert (report["num_examples"], report["num_labelled"]) == (50, 45)
    assert json.loads(path.read_text()) == report
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(path.parent.glob("*.partial"))
