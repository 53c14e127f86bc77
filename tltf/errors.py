"""Exceptions that tltf raises for bad input.

Every error says what was wrong and what to do. The command line prints the
message of a :class:`TltfError` on one line, without a traceback.
"""

from __future__ import annotations


class TltfError(Exception):
    """Base class of every error tltf raises on purpose."""


class ConfigError(TltfError, ValueError):
    """An argument, name or schedule that tltf cannot use."""


class DataError(TltfError, ValueError):
    """Input data that is missing, empty or malformed."""


class MissingWeightsError(TltfError, FileNotFoundError):
    """Pretrained weights that are not on disk and cannot be downloaded."""


class TrainingError(TltfError, RuntimeError):
    """Training that cannot go on (e.g. a loss that is no longer a number)."""


class FileError(TltfError, OSError):
    """A file or folder tltf cannot write or read: a file where a folder must
    be, a folder without write permission, a full disk."""


class ExportError(TltfError, RuntimeError):
    """An export that could not be written or did not verify."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name if empty).

    Library errors (TensorFlow's above all) can run to dozens of lines; tltf
    quotes only the first in its own one-line messages.
    """
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
