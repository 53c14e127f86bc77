"""The run folder (`tltf.runs`): layout, run.json, report folders."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import tltf
from tests.support.helpers import run_as_console_script
from tltf import runs


class _History:
    """What ``fit`` returns, as far as the run record cares."""

    def __init__(self, history: dict) -> None:
        self.history = history


def _argmax_model() -> keras.Model:
    inputs = keras.Input((2,))
    outputs = keras.layers.Softmax()(keras.layers.Rescaling(10.0)(inputs))
    return keras.Model(inputs, outputs)


# --- run.json ---


def test_run_record_round_trips_through_run_json(tmp_path):
    record = runs.run_record(
        ("neg", "pos"),
        "text",
        {"csv": tmp_path / "reviews.csv", "epochs": 2, "schedule": {"0": "top:2"}},
        _History({"loss": [0.7, 0.5], "stage": [0, 1]}),
    )
    record["data"] = {"source": "csv", "seed": 42}
    path = runs.write_run(tmp_path / "run", record)
    assert path == tmp_path / "run" / "run.json"
    assert path.read_text().endswith("}\n")
    assert runs.read_run(tmp_path / "run") == {
        "class_names": ["neg", "pos"],
        "modality": "text",
        "options": {
            "csv": str(tmp_path / "reviews.csv"),  # A path is written as text.
            "epochs": 2,
            "schedule": {"0": "top:2"},
        },
        "history": {"loss": [0.7, 0.5], "stage": [0, 1]},
        "data": {"source": "csv", "seed": 42},
    }


def test_a_folder_without_a_run_reads_as_empty(tmp_path):
    assert runs.read_run(tmp_path) == {}
    assert runs.read_run(tmp_path / "missing") == {}


def test_writing_run_json_leaves_no_temporary_file(tmp_path):
    runs.write_run(tmp_path, {"modality": "image"})
    runs.write_run(tmp_path, {"modality": "text"})
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert runs.read_run(tmp_path) == {"modality": "text"}


def test_a_failed_write_keeps_the_old_run_json(tmp_path):
    runs.write_run(tmp_path, {"modality": "image"})
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(ValueError, match="[Cc]ircular"):
        runs.write_run(tmp_path, {"options": circular})
    assert runs.read_run(tmp_path) == {"modality": "image"}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


# --- the model ---


def test_save_run_writes_a_model_that_reloads_and_its_record(tmp_path):
    model = _argmax_model()
    record = runs.run_record(["a", "b"], "image", {}, {"loss": [0.1]})
    path = runs.save_run(model, tmp_path / "run", record)
    assert path == runs.model_path(tmp_path / "run") == tmp_path / "run" / "model.keras"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "model.keras",
        "run.json",
    ]
    x = np.array([[0.0, 1.0], [2.0, 0.0]], dtype="float32")
    reloaded = keras.saving.load_model(path)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), expected)
    assert runs.read_run(tmp_path / "run")["history"] == {"loss": [0.1]}


def test_the_runs_model_holds_no_optimizer_state_and_reloads_quietly(tmp_path):
    """model.keras is serving-sized: weights, no Adam slots, no warning."""
    import warnings

    from tests.support.helpers import build_tiny_model

    model = build_tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    model.save(tmp_path / "full.keras")  # Keras' own: the optimizer too
    path = runs.save_run(model, tmp_path / "run", {})
    assert _optimizer_variables(tmp_path / "full.keras") > 0
    assert _optimizer_variables(path) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading ..."
        reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert not reloaded.compiled
    # The model saved keeps its optimizer and trains on.
    steps = int(model.optimizer.iterations)
    model.fit(x, np.arange(8) % 3, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) > steps
    tltf.compile_model(reloaded)  # Reloaded: compiled again to train further.
    reloaded.fit(x, np.arange(8) % 3, epochs=1, verbose=0)


def _optimizer_variables(keras_file: Path) -> int:
    """How many optimizer variables a ``.keras`` file holds."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        found = []
        if "optimizer" in weights:
            weights["optimizer"].visititems(
                lambda name, obj: (
                    found.append(name) if isinstance(obj, h5py.Dataset) else None
                )
            )
        return len(found)


def test_writing_run_swaps_a_whole_run_in(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_text("old model")
    (out / "evaluation-2").mkdir()
    (out / "evaluation-2" / "report.json").write_text("old report")
    with runs.writing_run(out) as temp:
        assert temp.parent.parent == tmp_path and list(temp.iterdir()) == []
        (temp / "model.keras").write_text("new model")
        assert (out / "model.keras").read_text() == "old model"
    assert sorted(p.name for p in out.iterdir()) == ["model.keras"]
    assert (out / "model.keras").read_text() == "new model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftovers


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_run_leaves_the_previous_one_whole(tmp_path, interrupt):
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.keras").write_text("old model")
    (out / "run.json").write_text("{}")
    with pytest.raises(interrupt), runs.writing_run(out) as temp:
        (temp / "model.keras").write_text("new model")
        raise interrupt()
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "run.json"]
    assert (out / "model.keras").read_text() == "old model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_final_path_is_where_a_file_ends_up(tmp_path):
    with runs.writing_run(tmp_path / "run") as temp:
        written = temp / "evaluation" / "report.json"
        assert runs.final_path(written, temp, tmp_path / "run") == (
            tmp_path / "run" / "evaluation" / "report.json"
        )


def test_model_file_finds_the_model_of_a_run_folder(tmp_path):
    assert runs.model_file(tmp_path) == tmp_path  # No model in it: as given.
    runs.model_path(tmp_path).write_bytes(b"")
    assert runs.model_file(tmp_path) == tmp_path / "model.keras"
    assert runs.model_file(tmp_path / "model.keras") == tmp_path / "model.keras"
    assert runs.model_file(str(tmp_path / "other.keras")) == tmp_path / "other.keras"


# --- report folders ---


def test_evaluation_folders_are_numbered_and_never_reused(tmp_path):
    def report_in(folder: Path) -> None:
        tltf.evaluate(
            _argmax_model(),
            (np.eye(2, dtype="float32"), np.array([0, 1])),
            output_dir=folder,
        )

    assert runs.next_evaluation_dir(tmp_path) == tmp_path / "evaluation"
    (tmp_path / "evaluation").mkdir()  # A folder without a report is free.
    assert runs.next_evaluation_dir(tmp_path) == tmp_path / "evaluation"
    seen = []
    for _ in range(3):
        folder = runs.next_evaluation_dir(tmp_path)
        report_in(folder)
        seen.append(folder.name)
    assert seen == ["evaluation", "evaluation-2", "evaluation-3"]
    first = (tmp_path / "evaluation" / runs.REPORT_FILE).read_text()
    report_in(runs.next_evaluation_dir(tmp_path))
    assert (tmp_path / "evaluation" / runs.REPORT_FILE).read_text() == first
    assert runs.next_evaluation_dir(tmp_path) == tmp_path / "evaluation-5"


def test_the_layout_names(tmp_path):
    assert not runs.is_run(tmp_path)
    runs.write_run(tmp_path, {})
    assert runs.is_run(tmp_path)
    assert runs.record_path(tmp_path) == tmp_path / "run.json"
    assert runs.evaluation_dir(tmp_path) == tmp_path / "evaluation"
    assert runs.export_dir(tmp_path) == tmp_path / "export"
    assert runs.DEFAULT_OUTPUT == "runs/tltf"
    assert runs.DEMO_OUTPUT == "runs/tltf-demo"
    assert runs.TUNE_OUTPUT == "runs/tltf-tune"


def test_runs_imports_no_tensorflow_and_no_command_line():
    # The command line reads the layout while it parses, before TensorFlow.
    done = run_as_console_script(
        "import tltf.runs\n"
        "print(sorted(m for m in sys.modules if m in {'tensorflow', 'keras'}"
        " or m.startswith('tltf.cli')))\n"
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
