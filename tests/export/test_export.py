"""SavedModel export: fresh-process round trips, atomic writes, signatures."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, run_fresh_process, tiny_bert_preset

NAMES = ["cats", "dogs", "owls"]

# Loads an export with plain TensorFlow, never tltf or Keras, and runs it.
RELOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    path, request = sys.argv[1], json.load(open(sys.argv[2]))
    if request.get("tensorflow_text"):
        import tensorflow_text
    loaded = tf.saved_model.load(path)
    out = {"signatures": sorted(loaded.signatures)}
    for name, inputs in request["calls"].items():
        fn = loaded.signatures[name]
        args = {}
        for key, value in inputs.items():
            if key == "image_files":
                args["image_bytes"] = tf.constant([open(f, "rb").read() for f in value])
            else:
                args[key] = tf.constant(value)
        result = fn(**args)
        out[name] = {
            "probabilities": result["probabilities"].numpy().tolist(),
            "class_index": result["class_index"].numpy().tolist(),
            "class_name": [s.decode() for s in result["class_name"].numpy()],
        }
    out["imported_tltf"] = any(m.startswith("tltf") for m in sys.modules)
    print("RESULT" + json.dumps(out))
    """
)


def reload_in_fresh_process(path: Path, request: dict, tmp_path: Path) -> dict:
    """Runs `RELOAD` on an export in a new Python process."""
    script, request_file = tmp_path / "reload.py", tmp_path / "request.json"
    script.write_text(RELOAD)
    request_file.write_text(json.dumps(request))
    return run_fresh_process(script, path, request_file, cwd=tmp_path)


def saved_model_cli_show_all(path: Path) -> str:
    """What `saved_model_cli show --dir <path> --all` prints."""
    from tensorflow.python.tools import saved_model_cli

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        saved_model_cli._show_all(str(path))
    return buffer.getvalue()


def write_pngs(folder: Path, sizes) -> list[Path]:
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, (h, w) in enumerate(sizes):
        pixels = rng.integers(0, 256, (h, w, 3), dtype="uint8")
        file = folder / f"{i}.png"
        file.write_bytes(tf.io.encode_png(pixels).numpy())
        files.append(file)
    return files


@pytest.fixture(scope="module")
def image_export(tmp_path_factory):
    """A trained-looking tiny image model and its verified export."""
    tmp = tmp_path_factory.mktemp("image_export")
    model = build_tiny_model()
    path = tltf.export_saved_model(model, tmp / "export", class_names=NAMES)
    return model, path, tmp


def test_image_export_round_trip_in_fresh_process(image_export):
    model, path, tmp = image_export
    files = write_pngs(tmp / "images", [(32, 32), (45, 37)])
    pixels = np.stack(
        [
            tf.image.resize(tf.io.decode_png(f.read_bytes(), channels=3), (32, 32))
            for f in files
        ]
    )
    expected = np.asarray(model(pixels, training=False))
    request = {
        "calls": {
            "serving_default": {"image_files": [str(f) for f in files]},
            "pixels": {"pixels": pixels.tolist()},
        }
    }
    out = reload_in_fresh_process(path, request, tmp)
    assert out["imported_tltf"] is False
    assert set(out["signatures"]) == {"serving_default", "pixels"}
    for name in ("serving_default", "pixels"):
        np.testing.assert_allclose(out[name]["probabilities"], expected, atol=1e-5)
        assert out[name]["class_index"] == expected.argmax(-1).tolist()
        assert out[name]["class_name"] == [NAMES[i] for i in expected.argmax(-1)]


def test_image_export_metadata_and_saved_model_cli(image_export):
    _, path, _ = image_export
    meta = tltf.read_export_metadata(path)
    assert meta["modality"] == "image" and meta["class_names"] == NAMES
    assert meta["custom_ops"] == [] and meta["requires"] is None
    check = meta["verification"]["saved_model"]
    assert check["reloaded_in_fresh_process"] and check["max_abs_difference"] < 1e-4
    assert check["keras_imported"] is False  # As in a serving system: no Keras.
    shown = saved_model_cli_show_all(path)
    for expected in (
        "signature_def['serving_default']",
        "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING",
        "signature_def['pixels']",
        "inputs['pixels'] tensor_info:\n        dtype: DT_FLOAT",
        "outputs['probabilities'] tensor_info:\n        dtype: DT_FLOAT",
        "outputs['class_index'] tensor_info:\n        dtype: DT_INT64",
        "outputs['class_name'] tensor_info:\n        dtype: DT_STRING",
    ):
        assert expected in shown


def test_existing_target_is_refused_without_overwrite(image_export):
    model, path, _ = image_export
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(tltf.ExportError, match="already exists.*overwrite=True"):
        tltf.export_saved_model(model, path, class_names=NAMES)
    assert sorted(p.name for p in path.iterdir()) == before


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_export_interrupted_before_the_rename_leaves_no_target(tmp_path, monkeypatch):
    model = build_tiny_model()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C during the reload check

    monkeypatch.setattr("tltf.export.saved_model._verify", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tltf.export_saved_model(model, tmp_path / "export", class_names=NAMES)
    assert not (tmp_path / "export").exists()
    assert _leftovers(tmp_path) == []


def test_failed_rename_keeps_the_old_export(tmp_path, monkeypatch):
    model = build_tiny_model()
    target = tmp_path / "export"
    tltf.export_saved_model(model, target, class_names=NAMES, verify=False)
    old = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    rename = Path.rename

    def failing_rename(self, destination):
        # The finished export, moving from its temporary folder into place.
        if self.parent.name.startswith(".export.tmp-") and self.name == "export":
            raise OSError("disk full")
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(tltf.ExportError, match="disk full"):
        tltf.export_saved_model(
            model, target, class_names=["x", "y", "z"], overwrite=True, verify=False
        )
    assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == old
    assert tltf.read_export_metadata(target)["class_names"] == NAMES
    assert _leftovers(tmp_path) == []


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` made read-only; as root, the process acts as 'nobody' too.

    Root ignores file modes, so a root test run drops its effective user id
    for the block (the folder sits in /tmp, which 'nobody' may enter).
    """
    folder.chmod(0o555)
    as_root = os.geteuid() == 0
    try:
        if as_root:
            os.seteuid(65534)
        yield folder
    finally:
        if as_root:
            os.seteuid(0)
        folder.chmod(0o755)


@pytest.fixture
def public_tmp():
    """A folder in /tmp that other users may enter (pytest's tmp_path is 0o700)."""
    folder = Path(tempfile.mkdtemp(prefix="tltf-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("target", ["export", "new/deeper/export"])
def test_read_only_folder_is_one_clear_error_and_leaves_nothing(public_tmp, target):
    model = build_tiny_model()
    with read_only(public_tmp), pytest.raises(tltf.ExportError) as info:
        tltf.export_saved_model(model, public_tmp / target, verify=False)
    message = str(info.value)
    assert "Cannot write the export" in message and "Permission denied" in message
    assert "\n" not in message and "Choose a folder you can write to" in message
    assert list(public_tmp.iterdir()) == []


def test_failed_staging_removes_the_parents_it_created(tmp_path, monkeypatch):
    model = build_tiny_model()

    def read_only_fs(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", read_only_fs)
    with pytest.raises(tltf.ExportError, match="Read-only file system"):
        tltf.export_saved_model(model, tmp_path / "a" / "b" / "export", verify=False)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_export(tmp_path):
    model = build_tiny_model()
    target = tmp_path / "export"
    tltf.export_saved_model(model, target, class_names=NAMES, verify=False)
    tltf.export_saved_model(
        model, target, class_names=["x", "y", "z"], overwrite=True, verify=False
    )
    assert tltf.read_export_metadata(target)["class_names"] == ["x", "y", "z"]
    assert _leftovers(tmp_path) == []


def test_a_check_that_disagrees_fails_and_writes_nothing(tmp_path, monkeypatch):
    model = build_tiny_model()
    probs = np.asarray(model(np.zeros((3, 32, 32, 3)), training=False)).tolist()

    def reloaded_with_other_outputs(requests):
        outputs = {"probabilities": {"values": (np.asarray(probs) + 0.5).tolist()}}
        response = {
            "custom_ops": [],
            "loaded_libraries": [],
            "unresolved_ops": [],
            "signatures": {},
            "keras_imported": False,
        }
        return [
            {**response, "results": [outputs for _ in request["calls"]]}
            for _, request in requests
        ]

    monkeypatch.setattr(
        "tltf.export.saved_model._run_checks", reloaded_with_other_outputs
    )
    with pytest.raises(tltf.ExportError, match="disagrees with the Keras model"):
        tltf.export_saved_model(model, tmp_path / "e", class_names=NAMES)
    assert list(tmp_path.iterdir()) == []


def test_class_names_must_fit_the_model(tmp_path):
    with pytest.raises(tltf.ConfigError, match="3 outputs but 1 class names"):
        tltf.export_saved_model(build_tiny_model(), tmp_path / "e", class_names="ab")
    assert list(tmp_path.iterdir()) == []


# --- text ---

TEXTS = ["a good film", "great acting", "a bad film", "boring and dull"]

# Token ids first, with TF Text never imported; then the strings signature.
RELOAD_TEXT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    folder, request = sys.argv[1], json.load(open(sys.argv[2]))
    token_model = tf.saved_model.load(folder + "/token_ids_model")
    tokens = {k: tf.constant(v) for k, v in request["tokens"].items()}
    by_ids = token_model.signatures["serving_default"](**tokens)
    assert "tensorflow_text" not in sys.modules
    import tensorflow_text
    loaded = tf.saved_model.load(folder)
    by_text = loaded.signatures["serving_default"](text=tf.constant(request["texts"]))
    out = {
        "ids": by_ids["probabilities"].numpy().tolist(),
        "text": by_text["probabilities"].numpy().tolist(),
        "names": [s.decode() for s in by_text["class_name"].numpy()],
        "signatures": sorted(loaded.signatures),
        "imported_tltf": any(m.startswith(("tltf", "keras_hub")) for m in sys.modules),
    }
    print("RESULT" + json.dumps(out))
    """
)


def tiny_text_model(tmp_path: Path):
    """A text classifier on `tiny_bert_preset`."""
    folder = tiny_bert_preset(tmp_path / "tiny_bert", TEXTS)
    return tltf.build_text_classifier(f"kerashub:{folder}", 2, sequence_length=8)


def test_text_export_round_trip_in_fresh_process(tmp_path):
    model = tiny_text_model(tmp_path)
    # The test reloads the export itself; the built-in check of text exports
    # runs in the (slow) demo test, to keep this one quick.
    path = tltf.export_saved_model(
        model, tmp_path / "export", class_names=["neg", "pos"], verify=False
    )
    meta = tltf.read_export_metadata(path)
    assert meta["modality"] == "text" and meta["token_ids_model"] == "token_ids_model"
    assert any("Wordpiece" in op for op in meta["custom_ops"])
    assert "import tensorflow_text" in meta["requires"]
    assert set(meta["signatures"]["token_ids"]["inputs"]) == {
        "token_ids",
        "padding_mask",
        "segment_ids",
    }
    assert meta["verification"] is None

    expected = np.asarray(model(tf.constant(TEXTS), training=False))
    tokens = model.get_layer("preprocess").fixed_length(tf.constant(TEXTS))
    script, request = tmp_path / "reload.py", tmp_path / "request.json"
    script.write_text(RELOAD_TEXT)
    request.write_text(
        json.dumps(
            {
                "texts": TEXTS,
                "tokens": {k: np.asarray(v).tolist() for k, v in tokens.items()},
            }
        )
    )
    out = run_fresh_process(script, path, request, cwd=tmp_path)
    assert out["imported_tltf"] is False
    assert {"serving_default", "token_ids"} <= set(out["signatures"])
    np.testing.assert_allclose(out["text"], expected, atol=1e-5)
    np.testing.assert_allclose(out["ids"], expected, atol=1e-5)
    assert out["names"] == [["neg", "pos"][i] for i in expected.argmax(-1)]
