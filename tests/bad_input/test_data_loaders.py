# ruff: noqa: E501 (one row per line)
"""Bad input to the data loaders (`tltf.data`): a clear error or a correct result.

Folders and files are written once per module, in a temporary folder; no
model is built here.
"""

from __future__ import annotations

import functools
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import urllib3

import tltf
from tests.bad_input.rows import Raises, Row, check, equals, params, scratch
from tests.support.helpers import write_image_folder
from tltf.errors import ConfigError, DataError

# --- inputs, written once ---


def _root() -> Path:
    return scratch("data")


@functools.cache
def _images() -> Path:
    return write_image_folder(_root() / "images", {"a": 4, "b": 4, "c": 4}, size=20)


@functools.cache
def _one_class() -> Path:
    return write_image_folder(_root() / "one", {"only": 3}, size=20)


@functools.cache
def _empty_folder() -> Path:
    (_root() / "empty").mkdir(exist_ok=True)
    return _root() / "empty"


@functools.cache
def _a_file() -> Path:
    path = _root() / "notes.txt"
    path.write_text("not a folder")
    return path


def _csv(name: str, data: bytes) -> Path:
    path = _root() / name
    path.write_bytes(data)
    return path


@functools.cache
def _integer_labels_csv() -> Path:
    rows = "".join(f"text {i},{1 + i % 3}\n" for i in range(9))
    return _csv("ints.csv", ("text,label\n" + rows).encode())


@functools.cache
def _latin1_csv() -> Path:
    rows = "".join(f"caf\u00e9 {i},{'ab'[i % 2]}\n" for i in range(6))
    return _csv("latin1.csv", ("text,label\n" + rows).encode("latin-1"))


@functools.cache
def _excel_csv() -> Path:
    rows = "".join(f"review {i},{'ab'[i % 2]}\n" for i in range(6))
    return _csv("excel.csv", ("review,label\n" + rows).encode("utf-8-sig"))


# --- outcomes ---


def _batch_shape(shape: tuple) -> callable:
    """Batches of images of ``shape`` (from a LoadedData or a dataset of images)."""

    def outcome(data) -> None:
        batch = next(iter(data.train if hasattr(data, "train") else data))
        x = batch[0] if isinstance(batch, tuple) else batch
        assert tuple(x.shape[1:]) == shape, x.shape

    return outcome


def _classes_and_labels(names: list[str], labels: list[int]) -> callable:
    """The data has ``names`` and, in order, these labels (no split, no shuffle
    of the values: they are compared sorted)."""

    def outcome(data) -> None:
        assert data.class_names == names, data.class_names
        seen = [int(v) for _, y in data.train for v in np.asarray(y)]
        assert sorted(seen) == sorted(labels), seen

    return outcome


def _texts(expected: set[str]) -> callable:
    def outcome(data) -> None:
        texts = {t.decode() for x, _ in data.train for t in np.asarray(x)}
        assert texts == expected, texts

    return outcome


# fmt: off
x3 = np.zeros((9, 4, 4, 3), "float32")
folder = tltf.data.image_folder
texts = ["one", "two", "three", "four"]


def _offline_tfds():
    """`tfds_dataset` with no network: the real download fails, at once.

    urllib3 retries a failed download ten times with growing pauses (~200 s
    here); the pauses are skipped, the attempts and the error are real.
    """
    no_pause = mock.patch.object(
        urllib3.util.retry.Retry, "sleep", lambda self, response=None: None
    )
    with no_pause:
        return tltf.data.tfds_dataset("tf_flowers", data_dir=str(_root() / "tfds"))


ROWS = [
    # --- image_folder ---
    Row("data.image_folder", "image_size as one int", lambda: folder(_images(), image_size=32), _batch_shape((32, 32, 3))),
    Row("data.image_folder", "image_size as a string", lambda: folder(_images(), image_size="32"), Raises(ConfigError, "image_size must be (height, width)")),
    Row("data.image_folder", "negative image_size", lambda: folder(_images(), image_size=(32, -32)), Raises(ConfigError, "Received: image_size=(32, -32)")),
    Row("data.image_folder", "zero image_size", lambda: folder(_images(), image_size=0), Raises(ConfigError, "integers >= 1")),
    Row("data.image_folder", "batch_size as a string", lambda: folder(_images(), batch_size="8"), Raises(ConfigError, "batch_size must be an integer >= 1 (a number, not a string)")),
    Row("data.image_folder", "batch_size 0", lambda: folder(_images(), batch_size=0), Raises(ConfigError, "batch_size must be an integer >= 1")),
    Row("data.image_folder", "batch_size 2.5", lambda: folder(_images(), batch_size=2.5), Raises(ConfigError, "Received: batch_size=2.5")),
    Row("data.image_folder", "validation_split 1", lambda: folder(_images(), validation_split=1.0), Raises(ConfigError, "validation_split must be a number in [0, 1)")),
    Row("data.image_folder", "validation_split as a string", lambda: folder(_images(), validation_split="0.2"), Raises(ConfigError, "validation_split")),
    Row("data.image_folder", "negative validation_split", lambda: folder(_images(), validation_split=-0.1), Raises(ConfigError, "validation_split")),
    Row("data.image_folder", "a file, not a folder", lambda: folder(_a_file()), Raises(DataError, "is a file, not a folder")),
    Row("data.image_folder", "missing folder", lambda: folder(_root() / "nowhere"), Raises(DataError, "does not exist")),
    Row("data.image_folder", "one class", lambda: folder(_one_class()), Raises(DataError, "needs at least two")),
    Row("data.image_folder", "no class folders", lambda: folder(_empty_folder()), Raises(DataError, "needs at least two")),
    Row("data.image_folder", "unknown cache", lambda: folder(_images(), cache="ram"), Raises(ConfigError, "cache must be")),
    Row("data.image_folder", "a str path, no split", lambda: folder(str(_images()), image_size=(8, 12), validation_split=0), _batch_shape((8, 12, 3))),
    Row("data.image_folder", "None as the folder", lambda: folder(None), Raises(ConfigError, "directory must be a path")),
    Row("data.image_folder", "seed as a string", lambda: folder(_images(), seed="1"), Raises(ConfigError, "seed must be an integer >= 0 or None")),
    # --- unlabelled_images ---
    Row("data.unlabelled_images", "image_size as one int", lambda: tltf.data.unlabelled_images(_images(), image_size=16), _batch_shape((16, 16, 3))),
    Row("data.unlabelled_images", "negative image_size", lambda: tltf.data.unlabelled_images(_images(), image_size=-1), Raises(ConfigError, "image_size")),
    Row("data.unlabelled_images", "a file", lambda: tltf.data.unlabelled_images(_a_file()), Raises(DataError, "is a file, not a folder")),
    Row("data.unlabelled_images", "empty folder", lambda: tltf.data.unlabelled_images(_empty_folder()), Raises(DataError, "has no readable images")),
    Row("data.unlabelled_images", "batch_size as a string", lambda: tltf.data.unlabelled_images(_images(), batch_size="4"), Raises(ConfigError, "batch_size")),
    Row("data.unlabelled_images", "a number as the folder", lambda: tltf.data.unlabelled_images(3), Raises(ConfigError, "Received: directory=3")),
    # --- from_arrays ---
    Row("data.from_arrays", "fewer class names than labels", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, class_names=["a"]), Raises(DataError, "has label 2, but class_names has 1 names")),
    Row("data.from_arrays", "whole float labels", lambda: tltf.data.from_arrays(x3, np.arange(9.0) % 3), _classes_and_labels(["0", "1", "2"], [0, 1, 2] * 3)),
    Row("data.from_arrays", "fractional float labels", lambda: tltf.data.from_arrays(x3, np.linspace(0, 1, 9)), Raises(DataError, "is not a whole number")),
    Row("data.from_arrays", "string labels", lambda: tltf.data.from_arrays(x3, np.array(["b", "a", "c"] * 3)), _classes_and_labels(["a", "b", "c"], [1, 0, 2] * 3)),
    Row("data.from_arrays", "string labels as a pandas Series", lambda: tltf.data.from_arrays(x3, pd.Series(["b", "a", "c"] * 3)), _classes_and_labels(["a", "b", "c"], [1, 0, 2] * 3)),
    Row("data.from_arrays", "labels 1, 2, 3", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3 + 1), _classes_and_labels(["1", "2", "3"], [0, 1, 2] * 3)),
    Row("data.from_arrays", "labels with class names", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, class_names=["x", "y", "z"]), _classes_and_labels(["x", "y", "z"], [0, 1, 2] * 3)),
    Row("data.from_arrays", "names as labels with class names", lambda: tltf.data.from_arrays(x3, ["y", "x", "y"] * 3, class_names=["x", "y"]), _classes_and_labels(["x", "y"], [1, 0, 1] * 3)),
    Row("data.from_arrays", "NaN in x", lambda: tltf.data.from_arrays(np.full((4, 2), np.nan), [0, 1, 0, 1]), Raises(DataError, "NaN or inf value(s)")),
    Row("data.from_arrays", "inf in x", lambda: tltf.data.from_arrays(np.array([[1.0], [np.inf], [0], [1]]), [0, 1, 0, 1]), Raises(DataError, "the first in example 1")),
    Row("data.from_arrays", "lengths differ", lambda: tltf.data.from_arrays(x3, [0, 1]), Raises(DataError, "equal length")),
    Row("data.from_arrays", "empty", lambda: tltf.data.from_arrays(np.zeros((0, 3)), []), Raises(DataError, "non-empty")),
    Row("data.from_arrays", "one-hot labels", lambda: tltf.data.from_arrays(x3[:3], np.eye(3)), Raises(DataError, "np.argmax(y, axis=-1)")),
    Row("data.from_arrays", "a missing label", lambda: tltf.data.from_arrays(x3[:3], ["a", None, "b"]), Raises(DataError, "example 1 has no label")),
    Row("data.from_arrays", "names and numbers mixed", lambda: tltf.data.from_arrays(x3[:3], ["a", 1, "b"]), Raises(DataError, "mix names and numbers")),
    Row("data.from_arrays", "one class", lambda: tltf.data.from_arrays(x3[:3], [0, 0, 0]), Raises(DataError, "needs at least two")),
    Row("data.from_arrays", "batch_size as a string", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, batch_size="8"), Raises(ConfigError, "batch_size")),
    Row("data.from_arrays", "validation_split 1.5", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, validation_split=1.5), Raises(ConfigError, "validation_split")),
    Row("data.from_arrays", "the same class name twice", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, class_names=["a", "a", "b"]), Raises(ConfigError, "class_names must be distinct; 'a' appears 2 times")),
    Row("data.from_arrays", "images of different sizes", lambda: tltf.data.from_arrays([x3[0], x3[1, :2]], [0, 1]), Raises(DataError, "examples of the same shape")),
    Row("data.from_arrays", "a negative seed", lambda: tltf.data.from_arrays(x3, np.arange(9) % 3, validation_split=0.3, seed=-1), Raises(ConfigError, "Received: seed=-1")),
    Row("data.from_arrays", "labels of shape (n, 1)", lambda: tltf.data.from_arrays(x3, (np.arange(9) % 3).reshape(-1, 1)), _classes_and_labels(["0", "1", "2"], [0, 1, 2] * 3)),
    # --- text_csv ---
    Row("data.text_csv", "integer labels 1, 2, 3", lambda: tltf.data.text_csv(_integer_labels_csv(), validation_split=0), _classes_and_labels(["1", "2", "3"], [0, 1, 2] * 3)),
    Row("data.text_csv", "not UTF-8", lambda: tltf.data.text_csv(_latin1_csv()), Raises(DataError, "is not utf-8 text")),
    Row("data.text_csv", "not UTF-8, says the encoding to pass", lambda: tltf.data.text_csv(_latin1_csv()), Raises(DataError, "encoding='latin-1'")),
    Row("data.text_csv", "latin-1 with its encoding", lambda: tltf.data.text_csv(_latin1_csv(), encoding="latin-1", validation_split=0), _texts({f"caf\u00e9 {i}" for i in range(6)})),
    Row("data.text_csv", "Excel's byte-order mark", lambda: tltf.data.text_csv(_excel_csv(), text_column="review", validation_split=0), _texts({f"review {i}" for i in range(6)})),
    Row("data.text_csv", "an unknown encoding", lambda: tltf.data.text_csv(_latin1_csv(), encoding="latin-9000"), Raises(ConfigError, "Unknown text encoding 'latin-9000'")),
    Row("data.text_csv", "a folder", lambda: tltf.data.text_csv(_root()), Raises(DataError, "is a folder, not a file")),
    Row("data.text_csv", "missing file", lambda: tltf.data.text_csv(_root() / "none.csv"), Raises(DataError, "does not exist")),
    Row("data.text_csv", "missing column", lambda: tltf.data.text_csv(_integer_labels_csv(), text_column="review"), Raises(DataError, "has no column 'review'")),
    Row("data.text_csv", "an image as a CSV", lambda: tltf.data.text_csv(next(_images().glob("a/*.png"))), Raises(DataError, "is not utf-8 text")),
    Row("data.text_csv", "batch_size as a string", lambda: tltf.data.text_csv(_integer_labels_csv(), batch_size="2"), Raises(ConfigError, "batch_size")),
    Row("data.text_csv", "None as the path", lambda: tltf.data.text_csv(None), Raises(ConfigError, "path must be a path")),
    Row("data.text_csv", "text and label the same column", lambda: tltf.data.text_csv(_integer_labels_csv(), label_column="text"), Raises(ConfigError, "name the same column")),
    Row("data.text_csv", "a delimiter of two characters", lambda: tltf.data.text_csv(_integer_labels_csv(), delimiter=";;"), Raises(ConfigError, "delimiter must be one character")),
    Row("data.text_csv", "encoding None", lambda: tltf.data.text_csv(_integer_labels_csv(), encoding=None), Raises(ConfigError, "Received: encoding=None")),
    Row("data.text_csv", "the same class name twice", lambda: tltf.data.text_csv(_integer_labels_csv(), class_names=["1", "1", "2"]), Raises(ConfigError, "class_names must be distinct")),
    # --- from_texts ---
    Row("data.from_texts", "a None text", lambda: tltf.data.from_texts(["a", None, "c", "d"], [0, 1, 0, 1]), Raises(DataError, "text 1 is missing (None)")),
    Row("data.from_texts", "a NaN text in a Series", lambda: tltf.data.from_texts(pd.Series(["a", np.nan, "c", "d"]), [0, 1, 0, 1]), Raises(DataError, "text 1 is missing")),
    Row("data.from_texts", "a None label", lambda: tltf.data.from_texts(texts, ["x", None, "y", "x"]), Raises(DataError, "example 1 has no label")),
    Row("data.from_texts", "labels 1, 2", lambda: tltf.data.from_texts(texts, [1, 2, 1, 2], validation_split=0), _classes_and_labels(["1", "2"], [0, 1, 0, 1])),
    Row("data.from_texts", "texts and labels as arrays", lambda: tltf.data.from_texts(np.array(texts), np.array(["n", "p", "n", "p"]), validation_split=0), _texts(set(texts))),
    Row("data.from_texts", "validation_split as a string", lambda: tltf.data.from_texts(texts, [0, 1, 0, 1], validation_split="0.5"), Raises(ConfigError, "validation_split")),
    Row("data.from_texts", "lengths differ", lambda: tltf.data.from_texts(texts, [0, 1]), Raises(DataError, "equal length")),
    Row("data.from_texts", "texts as lists of words", lambda: tltf.data.from_texts([["one"], ["two"]], [0, 1]), Raises(DataError, "text 0 is a list")),
    Row("data.from_texts", "seed as a float", lambda: tltf.data.from_texts(texts, [0, 1, 0, 1], seed=1.5), Raises(ConfigError, "Received: seed=1.5")),
    # --- tfds_dataset ---
    Row("data.tfds_dataset", "unknown name", lambda: tltf.data.tfds_dataset("no_such_dataset_xyz", download=False), Raises(DataError, "Could not load TFDS dataset")),
    Row("data.tfds_dataset", "image_size as a string", lambda: tltf.data.tfds_dataset("tf_flowers", image_size="224"), Raises(ConfigError, "image_size")),
    Row("data.tfds_dataset", "batch_size 0", lambda: tltf.data.tfds_dataset("tf_flowers", batch_size=0), Raises(ConfigError, "batch_size")),
    Row("data.tfds_dataset", "seed as a string", lambda: tltf.data.tfds_dataset("tf_flowers", seed="7"), Raises(ConfigError, "seed must be")),
    Row("data.tfds_dataset", "offline download", _offline_tfds, Raises(DataError, "Could not download TFDS dataset 'tf_flowers'")),
    # --- set_cache_budget ---
    Row("data.set_cache_budget", "a word", lambda: tltf.data.set_cache_budget("half"), Raises(ConfigError, "cache budget must be")),
    Row("data.set_cache_budget", "zero", lambda: tltf.data.set_cache_budget(0), Raises(ConfigError, "cache budget must be")),
    Row("data.set_cache_budget", "a fraction, then back", lambda: tltf.data.set_cache_budget(tltf.data.set_cache_budget(0.25)), equals(0.25)),
]
# fmt: on


@pytest.mark.parametrize("row", params(ROWS))
def test_data_loader(row: Row, tfds_tempdir) -> None:
    check(row)
