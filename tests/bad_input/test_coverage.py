"""Every public entry point of tltf has rows in the bad-input tables.

(The command line's table, `test_cli.py`, has rows of its own kind and checks
that every flag taking a number has a row itself.)"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import tltf
from tests.bad_input.rows import Row

#: Exception classes: raised, not called with input.
_ERRORS = {name for name in tltf.__all__ if name.endswith("Error")}
#: Sub-packages, whose own names have rows (``data.image_folder``).
_PACKAGES = {"data", "distribute"}


def _entries() -> set[str]:
    """The ``entry`` of every row of every table in this folder."""
    entries: set[str] = set()
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        module = importlib.import_module(f"tests.bad_input.{path.stem}")
        entries |= {
            row.entry for row in getattr(module, "ROWS", []) if isinstance(row, Row)
        }
    return entries


def test_every_public_name_has_rows():
    covered = {entry.split(".")[0] for entry in _entries()}
    missing = set(tltf.__all__) - _ERRORS - _PACKAGES - covered
    assert not missing, f"public names without bad-input rows: {sorted(missing)}"


def test_every_public_loader_has_rows():
    covered = {
        entry.split(".", 1)[1] for entry in _entries() if entry.startswith("data.")
    }
    loaders = {
        name
        for name in tltf.data.__all__
        if inspect.isfunction(getattr(tltf.data, name))
    }
    assert not loaders - covered, sorted(loaders - covered)
