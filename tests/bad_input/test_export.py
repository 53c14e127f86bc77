# ruff: noqa: E501 (one row per line)
"""Bad input to the exports (`export_saved_model`, `export_litert`,
`read_export_metadata`) and to an export's own signatures: a clear error or a
correct result. The tiny conv model is exported once, without the
fresh-process check (other tests run it)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch
from tests.support.helpers import build_tiny_model, text_row
from tltf.errors import ConfigError, ExportError
from tltf.export.signatures import NOT_AN_IMAGE


def _root() -> Path:
    return scratch("export")


#: One tiny image model that the rows share (they do not train it).
_model = functools.cache(build_tiny_model)


@functools.cache
def _export() -> Path:
    return tltf.export_saved_model(
        _model(), _root() / "export", class_names=["a", "b", "c"], verify=False
    )


@functools.cache
def _a_file() -> Path:
    path = _root() / "a_file"
    path.write_text("x")
    return path


def _serve(data: list[bytes]):
    serving = tf.saved_model.load(str(_export())).signatures["serving_default"]
    return serving(image_bytes=tf.constant(data))


def _png() -> bytes:
    return tf.io.encode_png(np.zeros((32, 32, 3), "uint8")).numpy()


def _says_not_an_image(call) -> callable:
    """The graph error of a plain-TensorFlow call says what to send."""

    def run():
        with pytest.raises(tf.errors.InvalidArgumentError) as caught:
            call()
        return str(caught.value)

    return run


def _names_the_problem(message: str) -> None:
    assert NOT_AN_IMAGE in message, message


def _one_answer(outputs) -> None:
    assert outputs["class_name"].numpy().tolist()[0] in (b"a", b"b", b"c"), outputs


def _metadata(meta) -> None:
    assert meta["class_names"] == ["a", "b", "c"], meta


@functools.cache
def _text_model():
    """The tiny BERT preset's classifier (the rows fail before exporting it)."""
    backbone, pooling = text_row(
        "tiny_bert", _root() / "tiny_bert", ["a film", "a goal"]
    )
    return tltf.build_text_classifier(backbone, 2, sequence_length=8, pooling=pooling)


# fmt: off
ROWS = [
    Row("export_saved_model", "to an existing folder", lambda: tltf.export_saved_model(_model(), _root(), verify=False), Raises(ExportError, "already exists")),
    Row("export_saved_model", "to a file", lambda: tltf.export_saved_model(_model(), _a_file(), overwrite=True, verify=False), Raises(ExportError, "is a file; a SavedModel is a folder")),
    Row("export_saved_model", "too few class names", lambda: tltf.export_saved_model(_model(), _root() / "e1", class_names=["a"], verify=False), Raises(ConfigError, "The model has 3 outputs but 1 class names")),
    Row("export_saved_model", "class names as one string", lambda: tltf.export_saved_model(_model(), _root() / "e2", class_names="abc", verify=False), Raises(ConfigError, "1 class names")),
    Row("export_saved_model", "the same class name twice", lambda: tltf.export_saved_model(_model(), _root() / "e3", class_names=["a", "a", "b"], verify=False), Raises(ConfigError, "class_names must be distinct")),
    Row("export_saved_model", "unknown quantize", lambda: tltf.export_saved_model(_model(), _root() / "e4", quantize="int4"), Raises(ConfigError, "quantize must be one of")),
    Row("export_saved_model", "image_size as a string", lambda: tltf.export_saved_model(_model(), _root() / "e5", image_size="32", verify=False), Raises(ConfigError, "image_size")),
    Row("export_saved_model", "into a read-only place", lambda: tltf.export_saved_model(_model(), "/proc/tltf_export", verify=False), Raises(ExportError, "/proc/tltf_export")),
    Row("export_saved_model", "signature: bytes that are not an image", _says_not_an_image(lambda: _serve([b"hello, I am not an image"])), _names_the_problem),
    Row("export_saved_model", "signature: a path instead of the bytes", _says_not_an_image(lambda: _serve([b"/data/cat.jpg"])), _names_the_problem),
    Row("export_saved_model", "signature: a PNG", lambda: _serve([_png()]), _one_answer),
    Row("export_litert", "a path without .tflite", lambda: tltf.export_litert(_model(), _root() / "model.bin"), Raises(ConfigError, ".tflite")),
    Row("export_litert", "to a folder", lambda: tltf.export_litert(_model(), _root(), overwrite=True), Raises(tltf.TltfError, "ends in .tflite")),
    Row("export_litert", "unknown quantize", lambda: tltf.export_litert(_model(), _root() / "m.tflite", quantize="fp8"), Raises(ConfigError, "quantize must be one of")),
    Row("read_export_metadata", "a folder that is no export", lambda: tltf.read_export_metadata(_root()), Raises(ExportError, "is not a tltf export")),
    Row("read_export_metadata", "a path that does not exist", lambda: tltf.read_export_metadata(_root() / "none"), Raises(ExportError, "none")),
    Row("read_export_metadata", "a .tflite without its sidecar", lambda: tltf.read_export_metadata(_root() / "none.tflite"), Raises(ExportError, "has no tltf sidecar")),
    Row("read_export_metadata", "an export", lambda: tltf.read_export_metadata(_export()), _metadata),
    Row("export_saved_model", "None as the path", lambda: tltf.export_saved_model(_model(), None), Raises(ConfigError, "path must be a path")),
    Row("export_saved_model", "a negative atol", lambda: tltf.export_saved_model(_model(), _root() / "e-atol", atol=-1), Raises(ConfigError, "atol must be a finite number >= 0")),
    Row("export_saved_model", "pixels as sample_inputs", lambda: tltf.export_saved_model(_model(), _root() / "e-px", sample_inputs=np.zeros((2, 32, 32, 1))), Raises(ConfigError, "must be encoded image files")),
    Row("export_saved_model", "a path, not a model", lambda: tltf.export_saved_model("model.keras", _root() / "e-str"), Raises(ConfigError, "keras.saving.load_model(path)")),
    Row("export_litert", "None as the path", lambda: tltf.export_litert(_model(), None), Raises(ConfigError, "path must be a path")),
    Row("export_litert", "a NaN atol", lambda: tltf.export_litert(_model(), _root() / "nan.tflite", atol=float("nan")), Raises(ConfigError, "Received: atol=nan")),
    Row("export_litert", "None as the model", lambda: tltf.export_litert(None, _root() / "none.tflite"), Raises(ConfigError, "model must be a Keras model")),
    Row("read_export_metadata", "None", lambda: tltf.read_export_metadata(None), Raises(ConfigError, "path must be a path")),
    Row("export_saved_model", "pixels as a text model's sample_inputs", lambda: tltf.export_saved_model(_text_model(), _root() / "t-px", sample_inputs=np.zeros((2, 32, 32, 3))), Raises(ConfigError, "must be texts (a list of strings)")),
]
# fmt: on


@pytest.mark.parametrize("row", params(ROWS))
def test_export(row: Row) -> None:
    check(row)
