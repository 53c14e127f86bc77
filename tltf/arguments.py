"""Checks of argument values that every tltf entry point shares.

A count given as ``"8"``, a rate of ``-1``, an image size of ``32`` or
``(32, -32)``: each check turns a usable value into the type tltf works with
and fails on any other with one `ConfigError` that names the argument, says
what it must be and what was received. Nothing here imports TensorFlow, so
the command line can check its arguments with the same rules before it
loads.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tltf.errors import ConfigError

__all__ = [
    "count",
    "fraction",
    "image_size",
    "is_number",
    "path",
    "positive_number",
    "rate",
    "seed",
]


def count(name: str, value: Any, *, minimum: int = 1, words: Sequence[str] = ()) -> Any:
    """An integer ``>= minimum`` (NumPy integers too), or one of ``words``.

    Args:
        name: The argument's name, for the message.
        value: What was passed.
        minimum: The smallest value allowed.
        words: Strings allowed as they are (e.g. ``("auto",)``).

    Returns:
        ``value`` as an ``int``, or the word.

    Raises:
        ConfigError: Anything else (a bool, a float, a string such as ``"8"``).

    Example:
        >>> count("epochs", 3)
        3
    """
    if isinstance(value, str) and value in words:
        return value
    if _is_integer(value) and value >= minimum:
        return int(value)
    also = "".join(f" or {word!r}" for word in words)
    hint = " (a number, not a string)" if isinstance(value, str) else ""
    raise ConfigError(
        f"{name} must be an integer >= {minimum}{also}{hint}. Received: "
        f"{name}={value!r}"
    )


def positive_number(name: str, value: Any, *, zero: bool = False) -> float:
    """A finite number ``> 0`` (or ``>= 0`` with ``zero``).

    Raises:
        ConfigError: A string, a bool, NaN, infinity, or a number out of range.
    """
    low = ">= 0" if zero else "> 0"
    if (
        _is_real(value)
        and math.isfinite(value)
        and (value > 0 or (zero and value == 0))
    ):
        return float(value)
    raise ConfigError(
        f"{name} must be a finite number {low}. Received: {name}={value!r}"
    )


def rate(name: str, value: Any) -> float:
    """A learning rate: a finite number > 0.

    Raises:
        ConfigError: Anything else; the message suggests a usual rate.
    """
    if _is_real(value) and math.isfinite(value) and value > 0:
        return float(value)
    raise ConfigError(
        f"{name} must be a finite number > 0 (e.g. 1e-3). A negative rate "
        f"climbs the loss instead of lowering it. Received: {name}={value!r}"
    )


def fraction(name: str, value: Any, *, one: bool = False) -> float:
    """A number in ``[0, 1)`` (``[0, 1]`` with ``one``).

    Raises:
        ConfigError: Anything else.
    """
    if _is_real(value) and (0 <= value < 1 or (one and value == 1)):
        return float(value)
    high = "1]" if one else "1)"
    raise ConfigError(
        f"{name} must be a number in [0, {high}. Received: {name}={value!r}"
    )


def image_size(value: Any, name: str = "image_size") -> tuple[int, int]:
    """``(height, width)`` from one side (``32``) or two (``(32, 48)``).

    Raises:
        ConfigError: Not one or two integers >= 1.

    Example:
        >>> image_size(32)
        (32, 32)
    """
    sides = [value, value] if not isinstance(value, (list, tuple)) else list(value)
    if len(sides) == 2 and all(_is_integer(s) and s >= 1 for s in sides):
        return int(sides[0]), int(sides[1])
    raise ConfigError(
        f"{name} must be (height, width) in pixels, two integers >= 1, or one "
        f"integer for a square. Received: {name}={value!r}"
    )


def path(name: str, value: Any) -> Path:
    """A file or folder path: a ``str`` (not empty) or an ``os.PathLike``.

    Raises:
        ConfigError: Anything else (None, a number, a list, an empty string).
    """
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip()):
        return Path(value)
    raise ConfigError(
        f"{name} must be a path (a str or pathlib.Path). Received: {name}={value!r}"
    )


def seed(value: Any, name: str = "seed") -> int | None:
    """A random seed: an integer >= 0, or None for a fresh one each run.

    Raises:
        ConfigError: Anything else (a string, a float, a negative number).
    """
    if value is None:
        return None
    if _is_integer(value) and 0 <= value < 2**63:
        return int(value)
    raise ConfigError(
        f"{name} must be an integer >= 0 or None. Received: {name}={value!r}"
    )


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (NumPy's too), not a bool or a string."""
    return _is_real(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
