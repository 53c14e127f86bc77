"""Text loaders: CSV/TSV files, Python lists and TFDS text datasets."""

from __future__ import annotations

import numpy as np
import pytest

import tltf
from tltf.errors import DataError


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def _examples(dataset) -> list[tuple[str, int]]:
    return [
        (text.decode(), int(label))
        for texts, labels in dataset.as_numpy_iterator()
        for text, label in zip(texts, labels)
    ]


def test_csv_with_label_names(tmp_path):
    rows = "".join(
        f'"review {i}, quoted",{"pos" if i % 2 else "neg"}\n' for i in range(10)
    )
    path = _write(tmp_path / "reviews.csv", "text,label\n" + rows)
    data = tltf.data.text_csv(path, batch_size=4, validation_split=0.2)
    assert data.class_names == ["neg", "pos"]
    assert (data.num_train, data.num_validation) == (8, 2)
    examples = _examples(data.train) + _examples(data.validation)
    expected = {(f"review {i}, quoted", i % 2) for i in range(10)}
    assert set(examples) == expected
    texts, labels = next(iter(data.train))
    assert texts.dtype.name == "string" and labels.dtype.name == "int64"
    assert sorted(label for _, label in _examples(data.validation)) == [0, 1]


def test_tsv_with_other_columns_and_integer_labels(tmp_path):
    path = _write(
        tmp_path / "data.tsv",
        "id\tsentence\ty\n1\tfirst one\t2\n2\tsecond, two\t0\n3\tthird\t1\n",
    )
    data = tltf.data.text_csv(
        path, text_column="sentence", label_column="y", validation_split=0
    )
    assert data.class_names == ["0", "1", "2"]
    assert sorted(_examples(data.train)) == [
        ("first one", 2),
        ("second, two", 0),
        ("third", 1),
    ]
    assert data.validation is None


def test_rows_without_text_or_label_are_skipped(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\ngood,a\n,b\nbad,\nok,b\n")
    data = tltf.data.text_csv(path, validation_split=0)
    assert data.skipped == ["line 3", "line 4"]
    assert data.num_train == 2


def test_missing_column_lists_the_columns(tmp_path):
    path = _write(tmp_path / "d.csv", "sentence,label\nhi,a\n")
    with pytest.raises(DataError, match=r"no column 'text'.*\['sentence', 'label'\]"):
        tltf.data.text_csv(path)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="is empty"):
        tltf.data.text_csv(_write(tmp_path / "empty.csv", ""))
    with pytest.raises(DataError, match="no usable rows"):
        tltf.data.text_csv(_write(tmp_path / "header.csv", "text,label\n"))
    with pytest.raises(DataError, match="does not exist"):
        tltf.data.text_csv(tmp_path / "nowhere.csv")


def test_single_class_fails(tmp_path):
    path = _write(tmp_path / "d.csv", "text,label\na,x\nb,x\n")
    with pytest.raises(DataError, match="at least two"):
        tltf.data.text_csv(path)


def test_from_texts_keeps_given_class_names():
    data = tltf.data.from_texts(
        ["yes", "no", "maybe", "yes!"],
        ["pos", "neg", "neutral", "pos"],
        class_names=["neg", "neutral", "pos"],
        validation_split=0,
    )
    assert data.class_names == ["neg", "neutral", "pos"]
    assert sorted(_examples(data.train)) == [
        ("maybe", 1),
        ("no", 0),
        ("yes", 2),
        ("yes!", 2),
    ]


def test_from_texts_errors():
    with pytest.raises(DataError, match="equal length"):
        tltf.data.from_texts(["a", "b"], [0])
    with pytest.raises(DataError, match="not one of the 2 class names"):
        tltf.data.from_texts(["a", "b"], ["x", "y"], class_names=["x", "z"])


def test_tfds_text_dataset_yields_strings(tfds_tempdir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        data = tltf.data.tfds_dataset(
            "imdb_reviews",
            train_split="train",
            validation_split=None,
            batch_size=3,
        )
    assert data.class_names == ["neg", "pos"]
    texts, labels = next(iter(data.train))
    assert texts.dtype.name == "string" and texts.shape == (3,)
    assert np.isin(labels.numpy(), [0, 1]).all()


def test_rows_grouped_by_class_are_shuffled_across_the_whole_set():
    # 2,000 rows sorted by label, as CLINC150's file and many CSV exports are:
    # a 1,000-row shuffle window would give batches of 5 classes at most.
    labels = [f"intent{k}" for k in range(10) for _ in range(200)]
    texts = [f"query {i}" for i in range(len(labels))]
    data = tltf.data.from_texts(texts, labels, validation_split=0.0)
    for _, y in data.train.take(3):
        assert len(np.unique(y.numpy())) >= 8
