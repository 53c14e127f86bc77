"""Writing files so that a reader never sees half of one.

Every file tltf writes for later (reports, run records, plots, search
metadata, cached features) goes through `atomic_path`: the content is written
under a temporary name in the same folder and renamed over the target only
once it is complete, so an interrupted or failed write leaves the old file
(or none), never a partial one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tltf.errors import FileError


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, *, directory: bool = False, exists: str = "replace"
) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; renames it to ``path`` on success.

    Missing parent folders are created. On an exception the temporary file
    (or folder) is removed, so are the parent folders this call created, and
    ``path`` is left as it was.

    Args:
        path: The file (or folder) to write.
        directory: Whether the caller writes a folder (an export, a dataset
            snapshot) rather than a file.
        exists: What to do if ``path`` exists when the write is done:
            ``"replace"`` it (a folder is swapped out and deleted only once
            the new one is in place), ``"keep"`` it and discard the new
            content (another writer got there first with the same content),
            or ``"error"`` (``FileExistsError``).

    Yields:
        The temporary path to write to (it does not exist yet).

    Raises:
        FileExistsError: ``exists="error"`` and ``path`` appeared meanwhile.
        FileError: The folder cannot be created or written to (an
            ``OSError`` too).
        OSError: Writing or renaming failed.

    Example:
        >>> with atomic_path("out/report.json") as tmp:
        ...     tmp.write_text("{}")
    """
    path = Path(path)
    created = [p for p in path.absolute().parents if not p.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    except OSError as err:
        _remove_empty(created)
        raise FileError(
            f"Cannot write {str(path)!r}: {err.strerror or err} "
            f"({err.filename or path.parent}). Choose a path in a folder you can "
            "write to."
        ) from err
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield temp / path.name
        _commit(temp / path.name, path, directory, exists)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        _remove_empty(created)
        raise
    shutil.rmtree(temp, ignore_errors=True)


def _commit(written: Path, path: Path, directory: bool, exists: str) -> None:
    """Renames ``written`` to ``path`` under the ``exists`` policy."""
    if path.exists() and exists == "keep":
        return
    if path.exists() and exists == "error":
        raise FileExistsError(errno.EEXIST, "appeared during the write", str(path))
    if not (directory and path.exists()):
        os.replace(written, path)
        return
    old = written.with_name(f"{path.name}.old")
    path.rename(old)
    try:
        written.rename(path)
    except BaseException:
        old.rename(path)
        raise


def _remove_empty(folders: list[Path]) -> None:
    """Removes ``folders`` (deepest first) while they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as temp:
        temp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, content: Any, **dumps: Any) -> Path:
    """Writes ``content`` as indented JSON (newline-terminated) atomically.

    Args:
        path: The file to write.
        content: Anything ``json.dumps`` takes with ``dumps``.
        **dumps: Extra ``json.dumps`` arguments (``default``, ``sort_keys``).

    Returns:
        The path written.
    """
    dumps.setdefault("indent", 2)
    return write_text(path, json.dumps(content, **dumps) + "\n")
