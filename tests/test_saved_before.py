"""`.keras` files saved by earlier tltf code still load and predict the same.

The fixtures in ``tests/fixtures/`` were written by
``python -m tests.fixtures.make_saved_models`` at commit 3cd6a48, before
`tltf/training/` was regrouped: they record the old module paths of tltf's
classes (``tltf.training.optimizers.GroupedAdam`` among them). Never
regenerate them to make this test pass.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import tltf

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["image_v0_1", "text_v0_1"])
def test_old_file_loads_and_predicts_the_same(name):
    saved = np.load(FIXTURES / f"{name}.npz")

    model = keras.saving.load_model(FIXTURES / f"{name}.keras")

    assert isinstance(model, tltf.TransferModel)
    assert type(model.optimizer).__name__ == "GroupedAdam"
    np.testing.assert_allclose(
        model.predict(saved["inputs"], verbose=0),
        saved["outputs"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_old_text_file_keeps_fixed_length_batches():
    """Its config has no ``trim`` key: it pads to its length, as when saved."""
    model = keras.saving.load_model(FIXTURES / "text_v0_1.keras")
    preprocess = model.get_layer("preprocess")
    assert preprocess.trim is False
    tokens = preprocess(np.array(["a"]))["token_ids"]
    assert tokens.shape == (1, preprocess.sequence_length)


def test_old_file_keeps_training():
    """The restored optimizer state (step count included) accepts the variables.

    Only the image file: the text one was saved before Backbone kept its
    frozen layers, so its optimizer state no longer fits and starts fresh.
    """
    saved = np.load(FIXTURES / "image_v0_1.npz")
    model = keras.saving.load_model(FIXTURES / "image_v0_1.keras")
    before = int(model.optimizer.iterations.numpy())

    model.fit(saved["inputs"], np.arange(len(saved["inputs"])) % 3, epochs=1, verbose=0)

    assert int(model.optimizer.iterations.numpy()) == before + 1


def test_text_model_keeps_frozen_layers_and_optimizer_state(tmp_path):
    """A KerasHub base rebuilds its layers from arguments: tltf keeps their flags.

    With mean pooling BERT's pooler is outside every group and stays frozen;
    before the fix it came back trainable, so the reloaded optimizer no
    longer fitted the model and its state (step count, moments) was dropped.
    """
    from tests.fixtures.make_saved_models import text_model

    model, texts = text_model(tmp_path / "preset")
    trainable = sorted(v.path for v in model.trainable_variables)
    path = tmp_path / "model.keras"
    model.save(path)

    restored = keras.saving.load_model(path)

    assert sorted(v.path for v in restored.trainable_variables) == trainable
    assert int(restored.optimizer.iterations.numpy()) == int(
        model.optimizer.iterations.numpy()
    )
    np.testing.assert_allclose(
        restored.optimizer.lr_multipliers.numpy(),
        model.optimizer.lr_multipliers.numpy(),
    )
