"""Scale: the cache budget (memory / disk / off), broken files met mid-pass,
and identical examples and training whichever way the data is cached."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, weights_of
from tltf.data import budget, image_pipeline

BUDGET_LOGGER = "tltf.data.budget"


@pytest.fixture
def tiny_budget():
    """A cache budget of 1 KB: every image folder is over it."""
    previous = tltf.data.set_cache_budget(1024)
    yield
    tltf.data.set_cache_budget(previous)


def jpeg_folder(root: Path, per_class: int = 4, size: int = 16) -> Path:
    """``root/<a|b|c>/<i>.jpg``: small JPEGs, a different colour per class."""
    rng = np.random.default_rng(0)
    for k, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.uniform(0, 60, (size, size, 3))
            pixels[..., k] += 150
            jpeg = tf.io.encode_jpeg(pixels.astype("uint8")).numpy()
            (root / name / f"{i}.jpg").write_bytes(jpeg)
    return root


def plant_broken(root: Path) -> list[str]:
    """Breaks files at the start, middle and end of the folder's sorted order.

    Two truncated JPEGs (a valid header, the body cut: the header check
    passes them, decoding fails) and one with a valid header, a garbage body
    and a valid end marker.
    """
    good = (root / "a" / "0.jpg").read_bytes()
    (root / "a" / "0.jpg").write_bytes(good[: len(good) // 2])
    (root / "b" / "2.jpg").write_bytes(good[:30] + b"\0" * 100 + b"\xff\xd9")
    (root / "c" / "3.jpg").write_bytes(good[: len(good) // 3])
    (root / "c" / "notes.txt").write_text("not an image")
    return ["a/0.jpg", "b/2.jpg", "c/3.jpg", "c/notes.txt"]


def epochs_of(ds: tf.data.Dataset, n: int = 2) -> list[list[np.ndarray]]:
    return [[np.asarray(t) for b in ds for t in tf.nest.flatten(b)] for _ in range(n)]


def test_budget_decides_memory_disk_or_off(tmp_path, caplog, tiny_budget, monkeypatch):
    root = jpeg_folder(tmp_path / "imgs")
    with caplog.at_level(logging.INFO, logger=BUDGET_LOGGER):
        data = tltf.data.image_folder(root, image_size=(16, 16), batch_size=4)
        list(data.train), list(data.validation)
    [line] = [r.getMessage() for r in caplog.records if r.name == BUDGET_LOGGER]
    assert "on disk" in line and "over the cache budget of 1.0 KB" in line
    spill = Path(line.split(" on disk in ")[1].split(":")[0])
    assert spill.parent.parent == budget.spill_folder()
    assert sorted(p.name for p in spill.parent.glob("*.index")) == [
        "cache.train.index",
        "cache.val.index",
    ]

    caplog.clear()
    monkeypatch.setattr(budget, "DISK_FRACTION", 0.0)  # No room on disk.
    with caplog.at_level(logging.INFO, logger=BUDGET_LOGGER):
        tltf.data.image_folder(root, image_size=(16, 16))
    assert "Not caching" in caplog.records[-1].getMessage()

    caplog.clear()
    tltf.data.set_cache_budget(0.5)
    with caplog.at_level(logging.INFO, logger=BUDGET_LOGGER):
        tltf.data.unlabelled_images(root, image_size=(16, 16))
    assert "in memory" in caplog.records[-1].getMessage()
    with pytest.raises(tltf.ConfigError, match="fraction in \\(0, 1\\]"):
        tltf.data.set_cache_budget(0)


@pytest.mark.parametrize("cache", ["memory", "disk", "off", "auto-disk"])
def test_broken_files_anywhere_are_skipped_and_listed(cache, tmp_path, caplog):
    root = jpeg_folder(tmp_path / "imgs")
    expected = plant_broken(root)
    setting = {"memory": True, "disk": str(tmp_path / "c"), "off": False}
    previous = tltf.data.set_cache_budget(1024 if cache == "auto-disk" else None)
    try:
        with caplog.at_level(logging.WARNING):
            data = tltf.data.image_folder(
                root,
                image_size=(32, 32),
                batch_size=4,
                validation_split=0.25,
                cache=setting.get(cache, "auto"),
            )
            assert data.skipped == ["c/notes.txt"]  # The header check's.
            model = build_tiny_model()
            model.fit(data.train, validation_data=data.validation, epochs=2, verbose=0)
            seen = [
                sum(len(y) for _, y in split) for split in (data.train, data.validation)
            ]
    finally:
        tltf.data.set_cache_budget(previous)
    assert sorted(data.skipped) == expected
    assert sum(seen) == 12 - 3  # Every file that decodes, and only those.
    decode_warnings = [
        r for r in caplog.records if "failed to decode" in r.getMessage()
    ]
    named = " ".join(r.getMessage() for r in decode_warnings)
    assert all(name in named for name in expected[:3])
    assert len(decode_warnings) <= 2  # One per split, never one per epoch.


def test_unlabelled_images_skip_first_middle_and_last(tmp_path, caplog):
    root = jpeg_folder(tmp_path / "imgs")
    plant_broken(root)  # In sorted order: first, middle and last.
    with caplog.at_level(logging.WARNING):
        ds = tltf.data.unlabelled_images(root, image_size=(8, 8), cache=False)
        counts = [sum(len(b) for b in ds) for _ in range(2)]
    assert counts == [12 - 3, 12 - 3]
    [warning] = [r.getMessage() for r in caplog.records if "decode" in r.getMessage()]
    assert all(name in warning for name in ("a/0.jpg", "b/2.jpg", "c/3.jpg"))


def test_memory_disk_and_off_give_the_same_examples_and_training(tmp_path):
    root = jpeg_folder(tmp_path / "imgs")
    plant_broken(root)
    caches = {"memory": True, "disk": str(tmp_path / "disk" / "c"), "off": False}
    runs = {}
    for name, cache in caches.items():
        keras.utils.set_random_seed(0)
        data = tltf.data.image_folder(
            root, image_size=(32, 32), batch_size=4, validation_split=0.25, cache=cache
        )
        seen = epochs_of(data.train) + epochs_of(data.validation, 1)
        model = build_tiny_model()
        model.fit(data.train, epochs=2, verbose=0, shuffle=False)
        runs[name] = (seen, weights_of(model.layers))
    for name in ("disk", "off"):
        for a, b in zip(runs["memory"][0], runs[name][0]):
            assert all(np.array_equal(x, y) for x, y in zip(a, b)), name
        for a, b in zip(runs["memory"][1], runs[name][1]):
            np.testing.assert_array_equal(a, b)
    # The epochs differ (reshuffled), and the pixels are float32 in [0, 255].
    first, second = runs["memory"][0][:2]
    assert not all(np.array_equal(x, y) for x, y in zip(first, second))
    assert first[0].dtype == np.float32 and first[0].max() <= 255.0


def test_small_images_are_cached_as_uint8_and_resized_the_same(tmp_path):
    root = jpeg_folder(tmp_path / "imgs", per_class=2, size=16)
    files = sorted(str(p) for p in root.glob("*/*.jpg"))
    plan, raw = image_pipeline.plan_images(files, (32, 32), True, "test")
    assert raw and plan.mode == "memory"  # 16x16 uint8 < 32x32 float32.
    assert not image_pipeline.plan_images(files, (4, 4), True, "test")[1]
    data = tltf.data.image_folder(
        root, image_size=(32, 32), validation_split=0.5, batch_size=8
    )
    got = next(iter(data.validation))[0].numpy()
    expected = [
        tf.image.resize(tf.io.decode_jpeg(tf.io.read_file(f), channels=3), (32, 32))
        for f in files
    ]
    assert len(got) == 3  # One per class, each exactly a resized file.
    assert all(any(np.array_equal(g, e.numpy()) for e in expected) for g in got)


def test_scan_reads_headers_and_sizes(tmp_path):
    root = jpeg_folder(tmp_path / "imgs", per_class=1)
    (root / "a" / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 30)
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes((root / "a" / "0.jpg").read_bytes())
    files, skipped = tltf.data.scan.image_files(root)
    assert [Path(f).relative_to(root).as_posix() for f in files] == [
        "a/0.jpg",
        "b/0.jpg",
        "c/0.jpg",
    ]
    assert skipped == [str(Path("a/fake.png"))]
    assert tltf.data.scan.pixel_count(files[0]) == 16 * 16
    png = tmp_path / "p.png"
    png.write_bytes(tf.io.encode_png(np.zeros((5, 7, 3), "uint8")).numpy())
    assert tltf.data.scan.pixel_count(png) == 35


def test_auto_feature_cache_spills_to_disk_with_the_same_training(caplog):
    from tests.training.test_feature_cache import data, sgd_model

    train, val = data(), data(seed=1)
    auto = tltf.training.feature_cache.default_cache(auto=True)
    start = sgd_model().get_weights()
    runs = {}
    for name, size in (("memory", None), ("disk", 512)):
        auto.clear()
        model = sgd_model()
        model.set_weights(start)
        previous = tltf.data.set_cache_budget(size)
        try:
            with caplog.at_level(logging.INFO, logger=BUDGET_LOGGER):
                history = tltf.fit_frozen_head(model, train, val, epochs=3, verbose=0)
        finally:
            tltf.data.set_cache_budget(previous)
        runs[name] = (history.history, model.get_weights())
    auto.clear()
    messages = [r.getMessage() for r in caplog.records if r.name == BUDGET_LOGGER]
    assert len(messages) == 4  # One line per feature set and run.
    assert sum("base features" in m and "in memory" in m for m in messages) == 2
    assert sum("base features" in m and "on disk" in m for m in messages) == 2
    for key, values in runs["memory"][0].items():
        np.testing.assert_allclose(runs["disk"][0][key], values, rtol=1e-4, atol=1e-5)
    for a, b in zip(runs["memory"][1], runs["disk"][1]):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_text_csv_shuffles_every_epoch_and_keeps_every_row(tmp_path):
    rows = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(203))
    (tmp_path / "t.csv").write_text("text,label\n" + rows)
    data = tltf.data.text_csv(tmp_path / "t.csv", batch_size=16)
    assert int(data.train.cardinality()) == -(-data.num_train // 16)
    epochs = [[t.decode() for x, _ in data.train for t in x.numpy()] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) and len(epochs[0]) == data.num_train
    assert epochs[0] != epochs[1]
    again = tltf.data.text_csv(tmp_path / "t.csv", batch_size=16)
    assert [t.decode() for x, _ in again.train for t in x.numpy()] == epochs[0]
    pairs = {
        (t.decode(), int(y)) for x, ys in data.train for t, y in zip(x.numpy(), ys)
    }
    assert all(int(t.split()[1]) % 2 == y for t, y in pairs)


def test_spill_folder_is_deleted_at_exit(tmp_path):
    code = (
        "from tltf.data import budget\n"
        "folder = budget.spill_folder()\n"
        "(folder / 'cache.train.index').write_text('x')\n"
        "print(folder)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("tltf-cache-") and not folder.exists()
