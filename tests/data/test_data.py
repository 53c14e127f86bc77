"""Image folders, arrays and TFDS through tltf.data."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import tltf
from tests.support.helpers import build_tiny_model, write_image_folder


def test_image_folder_keeps_class_names_and_splits_every_class(image_folder):
    data = tltf.data.image_folder(
        image_folder, image_size=(32, 32), batch_size=4, validation_split=0.25
    )
    assert data.class_names == ["cats", "dogs", "owls"]
    assert (data.num_train, data.num_validation) == (18, 6)
    val_labels = np.concatenate([y.numpy() for _, y in data.validation])
    assert sorted(val_labels.tolist()) == [0, 0, 1, 1, 2, 2]
    x, _ = next(iter(data.train))
    assert x.shape == (4, 32, 32, 3) and x.dtype == "float32"
    assert float(np.min(x)) >= 0.0 and float(np.max(x)) <= 255.0


def test_split_is_reproducible_for_a_seed(image_folder):
    def val_files(seed):
        data = tltf.data.image_folder(
            image_folder, image_size=(32, 32), validation_split=0.5, seed=seed
        )
        return np.concatenate(
            [x.numpy().sum(axis=(1, 2, 3)) for x, _ in data.validation]
        )

    np.testing.assert_array_equal(val_files(3), val_files(3))
    assert not np.array_equal(np.sort(val_files(3)), np.sort(val_files(4)))


def test_broken_and_non_image_files_are_skipped_in_one_warning(image_folder, caplog):
    (image_folder / "cats" / "notes.txt").write_text("not an image")
    (image_folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    (image_folder / "owls" / "fake.jpg").write_bytes(b"hello")
    with caplog.at_level(logging.WARNING):
        data = tltf.data.image_folder(image_folder, image_size=(32, 32), batch_size=8)
    assert sorted(data.skipped) == [
        "cats/notes.txt",
        "dogs/broken.png",
        "owls/fake.jpg",
    ]
    warnings = [r for r in caplog.records if "Skipped 3" in r.getMessage()]
    assert len(warnings) == 1
    model = build_tiny_model()
    history = model.fit(
        data.train, validation_data=data.validation, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert data.num_train + data.num_validation == 24


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(tltf.DataError, match="does not exist"):
        tltf.data.image_folder(tmp_path / "nowhere")


def test_single_class_is_a_clear_error(tmp_path):
    write_image_folder(tmp_path / "one", {"only": 3})
    with pytest.raises(tltf.DataError, match="at least two"):
        tltf.data.image_folder(tmp_path / "one")


def test_empty_class_folder_is_a_clear_error(tmp_path):
    root = write_image_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("x")
    with pytest.raises(tltf.DataError, match="'.*c' has no readable images"):
        tltf.data.image_folder(root)


def test_unlabelled_images_flat_or_in_any_subfolders(image_folder, caplog):
    (image_folder / "cats" / "deeper").mkdir()
    (image_folder / "owls" / "0.png").rename(image_folder / "cats" / "deeper" / "x.png")
    (image_folder / "dogs" / "1.png").rename(image_folder / "flat.png")
    (image_folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0")
    (image_folder / ".DS_Store").write_bytes(b"hidden")
    with caplog.at_level(logging.WARNING):
        images = tltf.data.unlabelled_images(
            image_folder, image_size=(16, 16), batch_size=5
        )
    shapes = [tuple(batch.shape) for batch in images]
    assert sum(s[0] for s in shapes) == 24  # every image, at any depth
    assert all(s[1:] == (16, 16, 3) for s in shapes)
    assert [r.getMessage() for r in caplog.records if "Skipped 1" in r.getMessage()]
    files, skipped = tltf.data.images.image_files(image_folder)
    assert len(files) == 24 and skipped == ["dogs/broken.png"]
    # Reshuffled on every pass, as target batches are drawn again and again.
    firsts = [next(iter(images)).numpy() for _ in range(3)]
    assert not all(np.array_equal(firsts[0], f) for f in firsts[1:])


def test_unlabelled_images_missing_or_empty_folder(tmp_path):
    with pytest.raises(tltf.DataError, match="'.*nowhere' does not exist"):
        tltf.data.unlabelled_images(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(tltf.DataError, match="'.*empty' has no readable images"):
        tltf.data.unlabelled_images(tmp_path / "empty")


def test_from_arrays_stratified_split_and_length_check():
    x = np.zeros((10, 4), "float32")
    y = np.array([0] * 5 + [1] * 5)
    data = tltf.data.from_arrays(x, y, validation_split=0.2, batch_size=3)
    assert (data.num_train, data.num_validation) == (8, 2)
    assert data.class_names == ["0", "1"]
    with pytest.raises(tltf.DataError, match="equal length"):
        tltf.data.from_arrays(x, y[:3])


def test_tfds_by_name_with_mock_data(tfds_tempdir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = tltf.data.tfds_dataset("tf_flowers", image_size=(32, 32), batch_size=4)
    assert data.class_names == ["dandelion", "daisy", "tulips", "sunflowers", "roses"]
    x, y = next(iter(data.train))
    assert x.shape == (4, 32, 32, 3) and int(np.max(y)) < 5


def test_unknown_tfds_name_is_a_clear_error(tfds_tempdir):
    with pytest.raises(tltf.DataError, match="Could not load TFDS dataset"):
        tltf.data.tfds_dataset("no_such_dataset_xyz", download=False)
