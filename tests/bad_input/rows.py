"""The rows of the bad-input tables, and how one is checked.

A row is one call of a public entry point with bad or unusual input, and
what must come of it: a tltf error of a given class whose message is one
line and holds a fragment that says what was wrong (`Raises`), or a result
checked for real (a function that asserts on it). ``entry`` names the public
name the row exercises, so that `tests/bad_input/test_coverage.py` can check
that every name of ``tltf.__all__`` has rows.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@dataclasses.dataclass(frozen=True)
class Raises:
    """The call fails with ``error``, one line holding ``fragment``."""

    error: type[BaseException]
    fragment: str


@dataclasses.dataclass(frozen=True)
class Row:
    """One call and its expected outcome.

    Attributes:
        entry: The public name exercised (``"data.image_folder"`` for
            names of ``tltf.data``, ``"TransferModel.fit"`` for methods).
        name: A short id for the test report.
        call: Makes the call; its return value goes to ``outcome``.
        outcome: `Raises`, or a function that asserts on the result.
    """

    entry: str
    name: str
    call: Callable[[], Any]
    outcome: Raises | Callable[[Any], None]


def params(rows: list[Row]) -> list[Any]:
    """``pytest.param`` per row, with ``entry: name`` as its id."""
    return [pytest.param(row, id=f"{row.entry}: {row.name}") for row in rows]


def check(row: Row) -> None:
    """Runs ``row`` and checks its outcome."""
    if isinstance(row.outcome, Raises):
        with pytest.raises(row.outcome.error) as caught:
            row.call()
        message = str(caught.value)
        assert row.outcome.fragment in message, message
        assert "\n" not in message.strip(), f"not one line: {message}"
        return
    row.outcome(row.call())


def equals(expected: Any) -> Callable[[Any], None]:
    """An outcome: the result equals ``expected``."""

    def outcome(result: Any) -> None:
        assert result == expected, result

    return outcome


#: The session's folder for the tables' files, under pytest's temporary
#: folder (tests/bad_input/conftest.py sets it): pytest removes it with its
#: old runs, so no ``/tmp/tltf-bad-input-*`` is left behind.
SCRATCH_ROOT: list[Path] = []


@functools.cache
def scratch(table: str) -> Path:
    """A temporary folder for the files of one table's rows (made once)."""
    if not SCRATCH_ROOT:
        raise RuntimeError("scratch() runs inside tests only (see conftest.py)")
    folder = SCRATCH_ROOT[0] / table
    folder.mkdir()
    return folder


def trained_tiny_model(x: Any, y: Any, epochs: int) -> Any:
    """`tests.support.helpers.build_tiny_model` fitted on ``(x, y)``."""
    from tests.support.helpers import build_tiny_model

    model = build_tiny_model()
    model.fit(x, y, epochs=epochs, verbose=0)
    return model
