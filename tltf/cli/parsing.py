"""Flag and config values from text: image sizes, unfreezing schedules.

Used while the arguments are parsed (`tltf.cli.main`) and when a config file
is merged (`tltf.cli.options`), so it imports nothing but the standard
library and `tltf.errors`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from tltf.errors import ConfigError


def parse_size(text: str) -> tuple[int, int]:
    """An ``--image-size`` value: ``"224"`` or ``"160x224"`` (or ``"160,224"``).

    Returns:
        ``(height, width)``.

    Raises:
        argparse.ArgumentTypeError: Not one or two positive integers.
    """
    try:
        parts = [int(v) for v in text.lower().replace(",", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(
            f"image size must be SIZE or HEIGHTxWIDTH (224, 160x224); got {text!r}"
        )
    return parts[0], parts[1]


def size_pair(value: Any) -> tuple[int, int]:
    """An image size from a flag or config file: ``224``, ``"160x224"``, ``[h, w]``."""
    if isinstance(value, int):
        return value, value
    if isinstance(value, str):
        return parse_size(value)
    height, width = value
    return int(height), int(width)


def parse_schedule(schedule: Any) -> Any:
    """A ``--schedule`` value: a preset name, or JSON ``{epoch: spec}``.

    Returns:
        The preset name as given, or the mapping with integer epochs.

    Raises:
        ConfigError: Text that starts like JSON but is not valid JSON.
    """
    if isinstance(schedule, str) and schedule.strip().startswith(("{", "[")):
        try:
            schedule = json.loads(schedule)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"--schedule is not valid JSON: {err}. Example: "
                '\'{"0": "top:1", "2": "top:3", "4": "all"}\''
            ) from err
    if isinstance(schedule, Mapping):
        return {_epoch(k): v for k, v in schedule.items()}
    return schedule


def _epoch(key: Any) -> Any:
    return int(key) if isinstance(key, str) and key.strip().isdigit() else key
