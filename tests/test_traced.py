"""A change the traced Keras functions do not see never gives a stale result.

Each row changes a model that has already traced its predict (and train)
step: new variables (LoRA), other trainable groups, another temperature,
another BatchNorm mode, a save and a reload. Afterwards ``predict`` must
equal a direct call, training must reach what is now trainable, and a
reload must bring the optimizer state back without a warning.
"""

from __future__ import annotations

import logging
import warnings

import keras
import numpy as np

import tltf
from tests.support.helpers import build_tiny_model


def _images(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32"), np.arange(n) % 3


def _traced_model() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """A tiny model that has trained one epoch and predicted once."""
    x, y = _images()
    model = build_tiny_model()
    model.fit(x, y, epochs=1, verbose=0)
    model.predict(x, verbose=0)
    return model, x, y


def _assert_predict_is_current(model: keras.Model, x: np.ndarray) -> None:
    direct = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(model.predict(x, verbose=0), direct, atol=1e-5)


def _kernel(model: keras.Model, layer: str) -> np.ndarray:
    return np.array(model.backbone.model.get_layer(layer).kernel)


def test_predict_after_enable_lora_and_fit_runs_the_adapters():
    model, x, y = _traced_model()
    tltf.enable_lora(model, 2)
    model.fit(x, y, epochs=2, verbose=0)
    _assert_predict_is_current(model, x)


def test_fit_after_set_trainable_groups_trains_the_new_groups():
    model, x, y = _traced_model()
    tltf.set_trainable_groups(model, ["block3"])
    before = _kernel(model, "block3_conv")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before, _kernel(model, "block3_conv"))
    _assert_predict_is_current(model, x)


def test_fit_after_freezing_again_leaves_the_base_alone():
    x, y = _images()
    model = build_tiny_model()
    tltf.unfreeze_backbone(model)
    model.fit(x, y, epochs=1, verbose=0)
    tltf.freeze_backbone(model)
    before = _kernel(model, "block1_conv")
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(before, _kernel(model, "block1_conv"))


def test_a_new_temperature_set_on_the_head_reaches_predict():
    model, x, _ = _traced_model()
    model.head.set_calibration(temperature=3.0)
    _assert_predict_is_current(model, x)


def test_train_bn_switched_on_after_tracing_moves_the_statistics():
    model, x, y = _traced_model()
    tltf.unfreeze_backbone(model)
    model.fit(x, y, epochs=1, verbose=0)
    model.backbone.train_bn = True
    bn = model.backbone.model.get_layer("block1_bn")
    before = np.array(bn.moving_mean)
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before, np.array(bn.moving_mean))


def test_predict_after_distill_is_the_trained_student():
    teacher, x, y = _traced_model()
    student, _, _ = _traced_model()
    tltf.unfreeze_backbone(student)
    tltf.distill(teacher, student, (x, y), epochs=1, verbose=0)
    _assert_predict_is_current(student, x)


def _reloaded(model: keras.Model, path) -> tuple[keras.Model, list[str]]:
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.models.load_model(path)
    return loaded, [str(w.message) for w in caught]


def test_a_model_saved_after_set_trainable_groups_reloads_its_optimizer(tmp_path):
    model, x, y = _traced_model()
    tltf.set_trainable_groups(model, ["block3"])
    loaded, caught = _reloaded(model, tmp_path / "m.keras")
    assert not [m for m in caught if "Skipping variable loading" in m], caught
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    loaded.fit(x, y, epochs=1, verbose=0)  # It trains on what it reloaded.


def test_a_model_saved_before_training_reloads_without_a_warning(tmp_path):
    _, caught = _reloaded(build_tiny_model(), tmp_path / "m.keras")
    assert not [m for m in caught if "Skipping variable loading" in m], caught


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_models_trained_one_after_another_are_quiet_about_retracing():
    """TensorFlow warns when one step function traces 5 times in a row (a
    search's trials, a schedule's stages): tltf traces on purpose."""
    x, y = _images()
    records = _Records()
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addHandler(records)
    try:
        for _ in range(6):
            build_tiny_model().fit(x, y, epochs=1, verbose=0)
    finally:
        tf_logger.removeHandler(records)
    assert not [m for m in records.messages if "retracing" in m]
