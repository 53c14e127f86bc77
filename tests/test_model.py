"""What users pass: strings in every form, labels against the head, bare strings.

Covers `tltf.model.TransferModel` (the builders' model class) and
`tltf.data.inputs` (user data to model inputs and batches). Text models here
are a 2-layer BERT saved as a local preset, built with both poolings: "cls"
(the tiny fixtures' default) and "mean" (the offline MiniLM's default, whose
head takes a list input ``[sequence, padding_mask]``).
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import tiny_bert_preset, weights_of
from tltf.data.inputs import as_batched, as_inputs, as_list
from tltf.errors import DataError
from tltf.model import TransferModel

TEXTS = ["a good film", "great acting", "awful plot", "boring and dull", "a fine cast"]
LABELS = [1, 1, 0, 0, 2]


@pytest.fixture(scope="module")
def preset(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("preset") / "tiny_bert"
    return f"kerashub:{tiny_bert_preset(folder, TEXTS)}"


@pytest.fixture(scope="module", params=["cls", "mean"])
def text_model(request, preset) -> keras.Model:
    # sequence_length: the tiny encoder has 16 positions (the default is 128).
    return tltf.build_text_classifier(
        preset, 3, sequence_length=8, pooling=request.param
    )


def _string_forms(texts: list[str]) -> dict:
    return {
        "list": list(texts),
        "tuple": tuple(texts),
        "unicode array": np.array(texts),
        "bytes array": np.array([t.encode() for t in texts]),
        "object array": np.array(texts, dtype=object),
        "pandas series": pd.Series(texts),
        "tf constant": tf.constant(texts),
    }


# --- strings in ---


def test_predict_takes_strings_in_every_form(text_model):
    expected = text_model.predict(tf.constant(TEXTS), verbose=0)
    for form, texts in _string_forms(TEXTS).items():
        got = text_model.predict(texts, verbose=0)
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=form)
        batch = text_model.predict_on_batch(texts)
        np.testing.assert_allclose(batch, expected, atol=1e-5, err_msg=form)
    one = text_model.predict("a good film", verbose=0)  # A bare string: one text.
    np.testing.assert_allclose(one, expected[:1], atol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_fit_and_evaluate_take_lists_arrays_and_series(preset, pooling):
    # learning_rate: a visible change to the head in two tiny epochs.
    model = tltf.build_text_classifier(
        preset, 3, sequence_length=8, pooling=pooling, learning_rate=0.05
    )
    before = weights_of(model.get_layer("head"))
    history = model.fit(
        np.array(TEXTS),
        LABELS,
        validation_data=(pd.Series(TEXTS), pd.Series(LABELS)),
        epochs=2,
        verbose=0,
    )
    assert "val_loss" in history.history
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(before, weights_of(model.get_layer("head")))
    )
    loss_list = model.evaluate(TEXTS, LABELS, verbose=0, return_dict=True)["loss"]
    loss_series = model.evaluate(pd.Series(TEXTS), np.array(LABELS), verbose=0)[0]
    assert loss_list == pytest.approx(loss_series, rel=1e-5)
    model.train_on_batch(TEXTS, LABELS)


def test_empty_text_input_is_one_clear_line(text_model):
    for empty in ([], np.array([], dtype=str), pd.Series([], dtype=object)):
        with pytest.raises(DataError, match="empty"):
            text_model.predict(empty)


def test_models_are_transfer_models_and_reload_as_them(text_model, tmp_path):
    assert isinstance(text_model, TransferModel)
    path = tmp_path / "model.keras"
    text_model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, TransferModel)
    np.testing.assert_allclose(
        loaded.predict(TEXTS, verbose=0),
        text_model.predict(TEXTS, verbose=0),
        atol=1e-5,
    )


# --- labels against the head ---


def test_labels_beyond_the_classes_fail_before_training(preset):
    model = tltf.build_text_classifier(preset, 2, sequence_length=8)
    before = weights_of(model.get_layer("head"))
    with pytest.raises(DataError, match="label 2, but the model has 2 classes"):
        model.fit(TEXTS, LABELS, epochs=1, verbose=0)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(before, weights_of(model.get_layer("head")))
    )


def test_a_dataset_of_other_classes_fails_with_a_data_error(preset):
    data = tltf.data.from_texts(TEXTS * 4, LABELS * 4, validation_split=0.0)
    too_many = tltf.build_text_classifier(preset, 5, sequence_length=8)
    with pytest.raises(DataError, match="5 classes but x has 3 classes"):
        too_many.fit(data.train, epochs=1, verbose=0)
    with pytest.raises(DataError, match="3 classes"):
        tltf.fine_tune(too_many, data, epochs=1, verbose=0)
    with pytest.raises(DataError, match="3 classes"):
        tltf.fit_frozen_head(too_many, data.train, epochs=1, verbose=0)
    # A plain dataset names no classes: the first out-of-range label stops fit.
    too_few = tltf.build_text_classifier(preset, 2, sequence_length=8)
    plain = data.train.map(lambda x, y: (x, y))
    with pytest.raises(DataError, match="out of range for a model with 2 classes"):
        too_few.fit(plain, epochs=1, verbose=0)
    with pytest.raises(DataError, match="label 2, but the model has 2 classes"):
        tltf.fit_frozen_head(too_few, plain, epochs=1, verbose=0)


def test_class_names_must_match_in_evaluate_and_find_learning_rate(preset):
    data = tltf.data.from_texts(TEXTS * 4, LABELS * 4, validation_split=0.0)
    model = tltf.build_text_classifier(preset, 4, sequence_length=8)
    with pytest.raises(DataError, match="4 classes but the evaluation data has 3"):
        tltf.evaluate(model, data)
    with pytest.raises(DataError, match="4 classes but data has 3"):
        tltf.find_learning_rate(model, data, plot_path=None)


# --- bare strings where a list is expected ---


def test_a_bare_string_is_one_item():
    assert as_list("top") == ["top"]
    assert as_list(None) == []
    assert as_list(("a", "b")) == ["a", "b"]
    callback = keras.callbacks.History()
    assert as_list(callback) == [callback]
    assert as_inputs("one text").tolist() == ["one text"]


def test_set_trainable_groups_takes_one_group_name(tiny_model):
    tltf.set_trainable_groups(tiny_model, "block3")
    assert tltf.trainable_groups(tiny_model) == ["block3"]


def test_from_texts_takes_a_bare_string_as_one_text():
    with pytest.raises(DataError, match="1 class"):  # One text: one class.
        tltf.data.from_texts("one string", "pos")
    data = tltf.data.from_texts(
        TEXTS, ["pos", "pos", "neg", "neg", "pos"], class_names=["pos", "neg"]
    )
    assert data.class_names == ["pos", "neg"]


# --- user data to batches ---


def test_as_batched_takes_tuples_of_text_and_checks_lengths():
    ds = as_batched((pd.Series(TEXTS), LABELS, np.ones(5)), 2)
    x, y, w = next(iter(ds))
    assert x.dtype == tf.string and list(y.numpy()) == [1, 1] and w.shape == (2,)
    with pytest.raises(DataError, match="lengths"):
        as_batched((TEXTS, LABELS[:3]))
    with pytest.raises(DataError, match="Received: a single string"):
        as_batched("texts.csv")
    with pytest.raises(DataError, match="has no validation split"):
        data = tltf.data.from_texts(TEXTS * 2, LABELS * 2, validation_split=0.0)
        as_batched(data, split="validation")


def test_text_for_an_image_model_and_the_reverse_are_one_clear_line(preset, tiny_model):
    text_model = tltf.build_text_classifier(preset, 3, sequence_length=8)
    pixels = np.zeros((2, 32, 32, 3), "uint8")
    with pytest.raises(DataError, match="takes text, but x holds numbers"):
        text_model.predict(pixels)
    with pytest.raises(DataError, match="takes numeric inputs .* holds text"):
        tiny_model.fit(TEXTS, LABELS, epochs=1, verbose=0)
    texts = tltf.data.from_texts(TEXTS * 2, LABELS * 2)
    with pytest.raises(DataError, match="holds text"):
        tltf.fine_tune(tiny_model, texts, epochs=1)
    with pytest.raises(DataError, match="holds text"):
        tltf.evaluate(tiny_model, texts)


def test_import_tltf_registers_every_layer_for_keras_loading(tiny_model, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "model.keras"
    tiny_model.save(path)
    script = f"import tltf, keras; print(type(keras.saving.load_model({str(path)!r})))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert "tltf.model.TransferModel" in done.stdout, done.stderr[-2000:]


def test_passes_over_an_image_folder_of_unknown_length_are_quiet(
    image_folder, tiny_model
):
    import warnings

    data = tltf.data.image_folder(image_folder, image_size=(32, 32), batch_size=4)
    assert int(data.train.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tiny_model.fit(data.train, validation_data=data.validation, verbose=0)
        tiny_model.evaluate(data.validation, verbose=0)
        tiny_model.predict(data.validation, verbose=0)
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    # With a step count the end of the data is a real problem: Keras says so.
    with pytest.warns(UserWarning, match="ran out of data"):
        tiny_model.fit(data.train, epochs=1, steps_per_epoch=100, verbose=0)
