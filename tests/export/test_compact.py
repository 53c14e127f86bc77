"""Compact serving: int8 SavedModels, LiteRT files, the threshold in every export.

Tolerances (the library's defaults, stated in `tltf.export`):

- LiteRT float file vs the float Keras model: 1e-3 in probabilities.
- int8 (SavedModel or LiteRT) vs the float Keras model: 0.05 in
  probabilities, same top class where the float model's top two differ by
  more than 0.1.
- The reloaded int8 SavedModel vs the float Keras model: as int8 above;
  vs the int8 Keras model it was written from: recorded (1e-3 on this tiny
  model), not bounded by the export.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, text_row, write_image_folder
from tltf.cli import main
from tltf.export.litert import interpreter
from tltf.export.plan import Endpoint
from tltf.export.saved_model import _compare

NAMES = ["cats", "dogs", "owls"]
INT8_ATOL = 0.05


def pixels(n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def check_answers(probabilities, class_index, class_name, threshold, names):
    """-1 / "unknown" exactly where the top probability is below threshold."""
    probabilities = np.asarray(probabilities)
    top = probabilities.argmax(-1)
    low = probabilities.max(-1) < threshold
    got = [n.decode() if isinstance(n, bytes) else n for n in list(class_name)]
    assert got == ["unknown" if b else names[i] for b, i in zip(low, top)]
    assert np.asarray(class_index).tolist() == [
        -1 if b else int(i) for b, i in zip(low, top)
    ]
    return low


@pytest.fixture(scope="module")
def image_exports(tmp_path_factory):
    """A calibrated tiny image model and its four exports.

    The head has 1024 hidden units so that its kernels are large enough for
    TFLite's int8 (it leaves tensors under 1024 values in float).

    An untrained head answers about 1/3 for every row, its top probabilities
    within 1e-4 of each other: int8's own error (up to 5e-4) can move every
    row across a threshold set among them. Rows from black to bright and an
    output kernel 50x larger spread them by a few hundredths, and the
    threshold sits in the middle of their widest gap (``margin`` either
    side).
    """
    tmp = tmp_path_factory.mktemp("compact")
    model = build_tiny_model(hidden_units=(1024,))
    output = model.head.output_layer
    kernel, bias = output.get_weights()
    output.set_weights([50.0 * kernel, bias])
    x = pixels() * np.linspace(0.0, 1.0, 8, dtype="float32")[:, None, None, None]
    tltf.evaluation.rejection.set_calibration(model, 1.5, None)
    tops = np.sort(model.predict(x, verbose=0).max(-1))
    widest = int(np.diff(tops).argmax())
    margin = float(tops[widest + 1] - tops[widest]) / 2
    tltf.evaluation.rejection.set_calibration(model, 1.5, float(tops[widest] + margin))
    exports = {
        "int8": tltf.export_saved_model(
            model, tmp / "int8", class_names=NAMES, quantize="int8"
        ),
        "float": tltf.export_saved_model(
            model, tmp / "float", class_names=NAMES, verify=False
        ),
        "lite": tltf.export_litert(model, tmp / "model.tflite", class_names=NAMES),
        "lite8": tltf.export_litert(
            model, tmp / "model8.tflite", class_names=NAMES, quantize="int8"
        ),
    }
    return model, x, exports, margin


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_int8_saved_model_is_smaller_agrees_and_answers_unknown(image_exports):
    model, x, exports, margin = image_exports
    meta = tltf.read_export_metadata(exports["int8"])
    quantization = meta["quantization"]
    assert quantization["mode"] == "int8"
    assert quantization["quantized_layers"] == {"Dense": 2}
    # Keras 3.15 has no int8 convolutions: they are listed, not hidden.
    assert quantization["not_quantized"]["Conv2D"] == 3
    assert quantization["versus_float"]["max_abs_difference"] <= INT8_ATOL
    check = meta["verification"]["saved_model"]
    assert check["max_abs_difference"] <= INT8_ATOL  # Versus the float model.
    assert check["versus_int8_keras"] <= 1e-3
    threshold = model.head.rejection_threshold
    assert meta["rejection"]["threshold"] == threshold
    assert meta["rejection"]["unknown_class_name"] == "unknown"
    variables = folder_size(exports["int8"] / "variables")
    assert variables < 0.5 * folder_size(exports["float"] / "variables")

    loaded = tf.saved_model.load(str(exports["int8"]))
    out = loaded.signatures["pixels"](pixels=tf.constant(x))
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(out["probabilities"], expected, atol=INT8_ATOL)
    # int8's error is within the threshold's margin, so its rows fall on the
    # float model's sides of it: some known, some unknown.
    assert np.abs(out["probabilities"] - expected).max() < margin
    low = check_answers(
        out["probabilities"],
        out["class_index"],
        out["class_name"].numpy(),
        threshold,
        NAMES,
    )
    assert low.any() and (~low).any()


def test_int8_export_is_held_to_the_float_model_not_to_its_int8_copy():
    # A CLINC150 MiniLM's int8 copy moved one text's probabilities by 0.018
    # between a batch of 64 and one text alone: the reloaded int8 graph
    # cannot match the in-process int8 copy to 1e-3. It must stay within
    # quantize_atol of the float model with its clear top classes, and say
    # how far it is from the copy.
    float_probs = np.array([[0.70, 0.20, 0.10], [0.10, 0.30, 0.60]])
    int8_copy = float_probs + [[-0.01, 0.01, 0.0], [0.0, -0.01, 0.01]]
    endpoint = Endpoint(
        name="pixels",
        fn=None,
        input_signature=[],
        sample={},
        expected=int8_copy,
        compare_key="probabilities",
        description="",
        float_expected=float_probs,
    )

    def reloaded(probs):
        probs = np.asarray(probs)
        return {
            "probabilities": {"values": probs.tolist()},
            "class_index": {"values": probs.argmax(-1).tolist()},
        }

    near = float_probs + [[0.02, -0.02, 0.0], [0.0, 0.0, 0.0]]
    found = _compare(endpoint, reloaded(near), None, 0.15)
    assert found["max_abs_difference"] == pytest.approx(0.02)
    assert found["versus_int8_keras"] == pytest.approx(0.03)
    with pytest.raises(tltf.ExportError, match="the int8 Keras copy"):
        _compare(endpoint, reloaded(near), 1e-3, 0.15)  # An atol the user passed.
    far = float_probs + [[-0.2, 0.2, 0.0], [0.0, 0.0, 0.0]]
    with pytest.raises(tltf.ExportError, match="the float Keras model: largest"):
        _compare(endpoint, reloaded(far), None, 0.15)
    flipped = reloaded(near)
    flipped["class_index"]["values"] = [1, 2]
    with pytest.raises(tltf.ExportError, match="other top classes than the float"):
        _compare(endpoint, flipped, None, 0.15)


def test_the_users_model_is_not_quantized(image_exports):
    model, _, _, _ = image_exports
    modes = {layer.quantization_mode for layer in model.head.hidden}
    assert modes == {None}
    assert model.head.output_layer.quantization_mode is None


@pytest.mark.parametrize("kind", ["lite", "lite8"])
def test_litert_file_runs_and_agrees_with_keras(image_exports, kind):
    model, x, exports, _ = image_exports
    path = exports[kind]
    runner = interpreter(path.read_bytes()).get_signature_runner("serving_default")
    out = runner(pixels=x)
    expected = model.predict(x, verbose=0)
    atol = 1e-3 if kind == "lite" else INT8_ATOL
    np.testing.assert_allclose(out["probabilities"], expected, atol=atol)
    threshold = model.head.rejection_threshold
    check_answers(
        out["probabilities"], out["class_index"], out["class_name"], threshold, NAMES
    )
    meta = tltf.read_export_metadata(path)
    assert meta == json.loads(path.with_suffix(".json").read_text())
    assert meta["class_names"] == NAMES and meta["rejection"]["threshold"] == threshold
    assert meta["inputs"] == {
        "pixels": {"dtype": "float32", "shape": [None, 32, 32, 3]}
    }
    assert meta["verification"]["max_abs_difference"] <= atol
    assert (meta["quantization"] is None) == (kind == "lite")


def test_int8_litert_file_is_smaller(image_exports):
    _, _, exports, _ = image_exports
    small, full = exports["lite8"].stat().st_size, exports["lite"].stat().st_size
    # The hidden kernel's 8 x 1024 weights went from 4 bytes to 1, less a
    # float scale per output channel (the benchmark measures whole-model
    # ratios on real encoders).
    assert full - small >= 3 * 8 * 1024 - 4 * 1024
    assert tltf.read_export_metadata(exports["lite8"])["size_bytes"] == small


# --- errors and atomic writes ---


def test_bad_arguments_fail_clearly_and_write_nothing(tmp_path):
    model = build_tiny_model()
    with pytest.raises(tltf.ConfigError, match="quantize must be one of"):
        tltf.export_saved_model(model, tmp_path / "e", quantize="int4")
    with pytest.raises(tltf.ConfigError, match="quantize must be one of"):
        tltf.export_litert(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(tltf.ConfigError, match="ends in .tflite"):
        tltf.export_litert(model, tmp_path / "model.lite")
    assert list(tmp_path.iterdir()) == []


def test_litert_keeps_an_existing_file_and_a_failed_check_writes_nothing(
    tmp_path, monkeypatch
):
    model = build_tiny_model()
    target = tmp_path / "m.tflite"
    target.write_bytes(b"old")
    with pytest.raises(tltf.ExportError, match="already exists"):
        tltf.export_litert(model, target)
    assert target.read_bytes() == b"old"

    class WrongRunner:
        def __call__(self, **inputs):
            n = len(inputs["pixels"])
            return {
                "probabilities": np.full((n, 3), 0.9, "float32"),
                "class_index": np.zeros(n, "int64"),
            }

    class WrongInterpreter:
        def get_signature_runner(self, name):
            return WrongRunner()

    monkeypatch.setattr(
        "tltf.export.litert.interpreter", lambda content: WrongInterpreter()
    )
    with pytest.raises(tltf.ExportError, match="disagrees with the Keras model"):
        tltf.export_litert(model, tmp_path / "new.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


# --- text models (house rule: "cls" and "mean" pooled heads both) ---

TEXTS = ["a good film", "great acting", "a bad film", "boring and dull"]


@pytest.fixture(scope="module")
def text_model(request, tmp_path_factory):
    """A classifier of a row of helpers.TEXT_ROWS (tests pick rows: indirect)."""
    folder = tmp_path_factory.mktemp("bert") / "bert"
    backbone, pooling = text_row(request.param, folder, TEXTS)
    return tltf.build_text_classifier(backbone, 2, sequence_length=16, pooling=pooling)


@pytest.mark.parametrize("text_model", ["tiny_bert", "tiny_bert-mean"], indirect=True)
def test_text_litert_takes_token_ids_and_agrees_with_keras(text_model, tmp_path):
    path = tltf.export_litert(text_model, tmp_path / "text.tflite")
    meta = tltf.read_export_metadata(path)
    assert set(meta["inputs"]) == {"token_ids", "padding_mask", "segment_ids"}
    assert "Tokenize in the app" in meta["requires"]
    # Fixed length, though the Keras model cuts each batch to its longest text.
    assert meta["inputs"]["token_ids"]["shape"] == [None, 16]
    runner = interpreter(path.read_bytes()).get_signature_runner("serving_default")
    for wrap in (list, np.asarray):  # Strings as a list and as a NumPy array.
        expected = text_model.predict(wrap(TEXTS), verbose=0)
        tokens = text_model.get_layer("preprocess").fixed_length(
            tf.constant(wrap(TEXTS))
        )
        out = runner(**{k: np.asarray(v) for k, v in tokens.items()})
        np.testing.assert_allclose(out["probabilities"], expected, atol=1e-3)


@pytest.mark.parametrize("text_model", ["tiny_bert", "tiny_bert-mean"], indirect=True)
def test_text_int8_saved_model_quantizes_the_encoder(text_model, tmp_path):
    # The fresh-process check of int8 exports runs on the image export above;
    # here the token-ids model is reloaded in this process, to stay quick.
    # Both head poolings on the tiny BERT: the same layers as MiniLM's
    # (Dense, EinsumDense, ReversibleEmbedding), at a fraction of the time.
    path = tltf.export_saved_model(
        text_model,
        tmp_path / "int8",
        class_names=["neg", "pos"],
        quantize="int8",
        verify=False,
    )
    meta = tltf.read_export_metadata(path)
    layers = meta["quantization"]["quantized_layers"]
    assert {"Dense", "EinsumDense", "ReversibleEmbedding"} <= set(layers)
    assert meta["quantization"]["versus_float"]["max_abs_difference"] <= INT8_ATOL
    serve = tf.saved_model.load(str(path / "token_ids_model")).signatures[
        "serving_default"
    ]
    tokens = text_model.get_layer("preprocess").fixed_length(tf.constant(TEXTS))
    out = serve(**tokens)
    expected = text_model.predict(TEXTS, verbose=0)
    np.testing.assert_allclose(out["probabilities"], expected, atol=INT8_ATOL)


# --- the command line ---


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A `tltf train` run on a tiny image folder (one epoch)."""
    root = tmp_path_factory.mktemp("cli_compact")
    write_image_folder(root / "images", {"cats": 6, "dogs": 6}, size=32)
    write_image_folder(root / "oos", {"other": 4}, size=32, seed=5)
    from tests.support.helpers import tiny_base

    tiny_base().save(root / "tiny_base.keras")
    code = main(
        ["train", "--data", str(root / "images"), "--backbone"]
        + [str(root / "tiny_base.keras"), "--image-size", "32", "--weights", "none"]
        + ["--epochs", "1", "--batch-size", "4", "--output", str(root / "run")]
    )
    assert code == 0
    return root


def test_cli_calibrate_evaluate_and_export_show_the_threshold(run_folder, capsys):
    model_file = run_folder / "run" / "model.keras"
    data = ["--data", str(run_folder / "images")]
    capsys.readouterr()
    code = main(
        ["calibrate", "--model", str(model_file), *data]
        + ["--oos", str(run_folder / "oos"), "--split", "all"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "threshold" in out and "out-of-scope" in out
    record = json.loads((model_file.parent / "calibration.json").read_text())
    loaded = keras.saving.load_model(model_file)
    assert loaded.head.rejection_threshold == record["threshold"]
    reliability = model_file.parent / "reliability.png"
    assert reliability.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = main(
        ["evaluate", "--model", str(model_file), *data, "--split", "all"]
        + ["--oos", str(run_folder / "oos"), "--output", str(run_folder / "eval")]
    )
    out = capsys.readouterr().out
    assert code == 0 and "rejection: threshold" in out and "out-of-scope:" in out

    lite = run_folder / "mobile" / "model.tflite"
    code = main(
        ["export", "--model", str(model_file), "--format", "litert"]
        + ["--quantize", "int8", "--output", str(lite)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Answers 'unknown'" in out and "Quantized: int8" in out
    meta = tltf.read_export_metadata(lite)
    assert meta["rejection"]["threshold"] == record["threshold"]
    assert meta["class_names"] == ["cats", "dogs"]

    # --no-verify: the fresh-process check of an int8 export with a threshold
    # is test_int8_saved_model_is_smaller_agrees_and_answers_unknown's.
    code = main(
        ["export", "--model", str(model_file), "--quantize", "int8", "--no-verify"]
        + ["--output", str(run_folder / "serving")]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Answers 'unknown'" in out
    meta = tltf.read_export_metadata(run_folder / "serving")
    assert meta["rejection"]["threshold"] == record["threshold"]


def test_cli_predict_says_unknown_below_the_threshold(run_folder, capsys):
    model = keras.saving.load_model(run_folder / "run" / "model.keras")
    # T = 100 flattens two classes to ~0.5 each: nothing reaches 0.99.
    tltf.evaluation.rejection.set_calibration(model, 100.0, 0.99)
    model.save(run_folder / "strict.keras")
    image = next((run_folder / "images" / "cats").glob("*.png"))
    capsys.readouterr()
    code = main(["predict", "--model", str(run_folder / "strict.keras"), str(image)])
    out = capsys.readouterr().out
    assert code == 0 and "unknown (below 0.990)" in out


def test_cli_calibrate_needs_a_rule(run_folder, capsys):
    model_file = run_folder / "run" / "model.keras"
    code = main(
        ["calibrate", "--model", str(model_file), "--data", str(run_folder / "images")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "--target-precision" in err and "--oos" in err
