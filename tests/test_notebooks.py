"""The notebooks: stored clean, and each runs top to bottom in small-data mode.

Every notebook is executed with nbclient on an IPython kernel, offline, with
``TLTF_SMALL_DATA=1``: its settings cell then swaps in the stand-ins (random
weights, ``tfds.testing.mock_data``, the offline MiniLM encoder) and shrinks
sizes and epochs. A cell that raises fails the test with its traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tltf

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/tltf-dev/tltf/blob/main/notebooks/"
INSTALL_LINE = '%pip install -q "tltf @ git+https://github.com/tltf-dev/tltf"'
SWITCH = 'SMALL_DATA = os.environ.get("TLTF_SMALL_DATA") == "1"'
CELL_TIMEOUT_S = 600

#: The real setting and its offline stand-in, both in the settings cell.
STAND_INS = {
    "01_image_transfer_learning.ipynb": [
        ('WEIGHTS = "imagenet"', "WEIGHTS = None"),
        ("contextlib.nullcontext()", "tfds.testing.mock_data("),
    ],
    "02_text_classification_bert.ipynb": [
        (
            'BACKBONE = "kerashub:bert_base_en_uncased"',
            'BACKBONE = "kerashub:all-minilm-l6-v2"',
        ),
        ("contextlib.nullcontext()", "tfds.testing.mock_data("),
    ],
    "03_scaling_and_serving.ipynb": [
        ('WEIGHTS = "imagenet"', "WEIGHTS = None"),
        ("contextlib.nullcontext()", "tfds.testing.mock_data("),
    ],
    # Offline in both modes (scikit-learn's digits): smaller data, one epoch.
    "04_domain_adaptation.ipynb": [
        ("EXAMPLES = None", "EXAMPLES = 240"),
        ("EPOCHS = 30", "EPOCHS = 1"),
    ],
}

#: Files each notebook writes into its working folder when it runs.
WRITES = {
    "01_image_transfer_learning.ipynb": [
        "runs/flowers/report.json",
        "runs/flowers/confusion_matrix.png",
        "runs/flowers/training_curves.png",
    ],
    "02_text_classification_bert.ipynb": [
        "runs/news/lr_finder.png",
        "runs/news/report.json",
        "runs/news/confusion_matrix.png",
        "runs/news/news.lora.safetensors",
    ],
    "03_scaling_and_serving.ipynb": [
        "export/flowers/saved_model.pb",
        "export/flowers/assets/tltf_export.json",
        "export/flowers_int8/assets/tltf_export.json",
        "export/flowers.tflite",
        "export/flowers.json",
    ],
    "04_domain_adaptation.ipynb": [
        "runs/digits_dann/report.json",
        "runs/digits_dann/confusion_matrix.png",
        "runs/digits_dann/training_curves.png",
    ],
}


def _read(name: str):
    return nbformat.read(NOTEBOOKS_DIR / name, as_version=4)


def _code(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_every_notebook_is_listed():
    found = NOTEBOOKS
    assert found == sorted(STAND_INS) == sorted(WRITES)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_valid_and_clean(name):
    nb = _read(name)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name}: a code cell has stored outputs"
            assert cell.execution_count is None, f"{name}: stored execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_opens_in_colab_and_installs_tltf_first(name):
    nb = _read(name)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert f"({COLAB}{name})" in first.source
    assert "colab-badge.svg" in first.source
    install = _code(nb)[0]
    assert INSTALL_LINE in install
    assert 'find_spec("tltf") is None' in install  # skipped when installed


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_uses_only_the_public_api(name):
    code = "\n".join(_code(_read(name)))
    assert re.search(r"^import tltf$", code, re.M)
    assert not re.search(r"^\s*from tltf[. ]", code, re.M), "use `import tltf`"
    assert not re.search(r"^\s*import tltf\.", code, re.M), "use `import tltf`"
    private = re.findall(r"tltf\.(?:[a-z_]+\.)*_(?!_)\w+", code)
    assert not private, f"{name} uses private names: {private}"
    for module, attribute in re.findall(r"\btltf\.(?:(data|distribute)\.)?(\w+)", code):
        namespace = getattr(tltf, module) if module else tltf
        exported = [*namespace.__all__, "__version__"]
        assert attribute in exported, f"{name}: tltf.{module}.{attribute} not public"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_small_data_mode_is_one_visible_settings_cell(name):
    cells = [source for source in _code(_read(name)) if "TLTF_SMALL_DATA" in source]
    assert len(cells) == 1
    settings = cells[0]
    assert SWITCH in settings
    real_part, small_part = settings.split("if SMALL_DATA:")
    for real, stand_in in STAND_INS[name]:
        assert real in real_part
        assert stand_in in small_part


@pytest.mark.slow  # about 3 minutes on 2 cores for the notebooks
@pytest.mark.long
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom_in_small_data_mode(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TLTF_SMALL_DATA", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # The kernel's temporary files (TFDS leaves a /tmp/tmp*tfds folder per
    # dataset it loads) go to this test's folder, not /tmp.
    (tmp_path / "tempdir").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tempdir"))
    nb = _read(name)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the traceback of a failing cell
    for relative in WRITES[name]:
        assert (tmp_path / relative).is_file(), f"{name} did not write {relative}"
    for report in tmp_path.glob("runs/*/report.json"):
        assert json.loads(report.read_text())["num_examples"] > 0
