"""Flag and config values from text: numbers, image sizes, schedules.

Also what the command line raises when its arguments are wrong
(`ArgumentsError`: one line, exit status 2) and how it names a setting's
flag (`flag`).

Each parser takes what a flag gives (text) or what a config file gives
(text, a number, a list or a mapping) and returns the value the library
takes, or raises ``argparse.ArgumentTypeError`` with what is wrong and an
example of what is right. argparse puts the flag's name in front
(``argument --epochs: ...``); `tltf.cli.config` does the same for config
files. Used while the arguments are parsed, before TensorFlow loads, so this
module imports nothing but the standard library, `tltf.errors` and the
unfreezing schedule's syntax check (pure, `tltf.training.unfreezing.schedule`).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from tltf.errors import ConfigError

Parser = Callable[[Any], Any]


class ArgumentsError(ConfigError):
    """Arguments that cannot work together or point at the wrong files."""


def flag(name: str) -> str:
    """``"text_column"`` -> ``"--text-column"``."""
    return "--" + name.replace("_", "-")


def whole(minimum: int, example: int) -> Parser:
    """A parser of whole numbers of at least ``minimum`` (``"3"`` or ``3``)."""

    def parse(value: Any) -> int:
        number = _whole_or_none(value)
        if number is None or number < minimum:
            raise argparse.ArgumentTypeError(
                f"takes a whole number of at least {minimum}, e.g. {example}; "
                f"got {_shown(value)}"
            )
        return number

    parse.__name__ = f"whole number >= {minimum}"  # argparse's usage errors
    parse.metavar = "N"  # in the help: --epochs N
    return parse


def number(
    low: float,
    example: float,
    *,
    low_open: bool = False,
    high: float | None = None,
    high_open: bool = False,
) -> Parser:
    """A parser of finite numbers in a range (``"0.2"`` or ``0.2``).

    Args:
        low: The smallest value; excluded when ``low_open``.
        example: A good value, for the message.
        low_open: Whether ``low`` itself is refused.
        high: The largest value (None: no limit); excluded when ``high_open``.
        high_open: Whether ``high`` itself is refused.
    """
    below = f"more than {low:g}" if low_open else f"at least {low:g}"
    if high is None:
        wanted = f"a number {below}"
    else:
        above = f"less than {high:g}" if high_open else f"at most {high:g}"
        wanted = f"a number {below} and {above}"

    def parse(value: Any) -> float:
        x = _float_or_none(value)
        ok = x is not None and (x > low if low_open else x >= low)
        if ok and high is not None:
            ok = x < high if high_open else x <= high
        if not ok:
            raise argparse.ArgumentTypeError(
                f"takes {wanted}, e.g. {example:g}; got {_shown(value)}"
            )
        return x

    parse.__name__ = wanted
    parse.metavar = "NUMBER"
    return parse


def _whole_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    return None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


# --- image sizes ---


def parse_size(value: Any) -> tuple[int, int]:
    """An ``--image-size``: ``"224"``, ``"160x224"``, ``"160,224"``, ``224``
    or ``[160, 224]`` (config files).

    Returns:
        ``(height, width)``.

    Raises:
        argparse.ArgumentTypeError: Not one or two positive whole numbers.
    """
    if isinstance(value, str):
        parts = [_whole_or_none(v) for v in value.lower().replace(",", "x").split("x")]
    elif isinstance(value, (list, tuple)):
        parts = [_whole_or_none(v) for v in value]
    else:
        parts = [_whole_or_none(value)]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or None in parts or min(parts) < 1:
        raise argparse.ArgumentTypeError(
            f"takes SIZE or HEIGHTxWIDTH in pixels, e.g. 224 or 160x224; "
            f"got {_shown(value)}"
        )
    return parts[0], parts[1]


parse_size.__name__ = "image size"


# --- unfreezing schedules ---


def parse_schedule(value: Any) -> str | dict[int, Any]:
    """A ``--schedule``: ``all``, a preset (``gradual``, ``gradual:2``,
    ``plateau``) or ``{epoch: spec}`` as JSON text or a config mapping.

    The syntax is checked by the library's own schedule parser (which needs
    no model); whether the named groups exist is known once the base is
    built.

    Returns:
        The preset name, or the mapping with integer epochs.

    Raises:
        argparse.ArgumentTypeError: Text that is not a preset or valid JSON,
            or a schedule the library refuses.
    """
    from tltf.training.unfreezing.schedule import parse_schedule as check_syntax

    schedule = value
    if isinstance(value, str) and value.strip().startswith(("{", "[")):
        try:
            schedule = json.loads(value)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(
                f"is not valid JSON ({err}); pass e.g. {_SCHEDULE_EXAMPLE}"
            ) from None
    if isinstance(schedule, Mapping):
        schedule = {_epoch(k): v for k, v in schedule.items()}
    if schedule in ("all", "gradual", "plateau"):
        return schedule
    if isinstance(schedule, Mapping) or str(schedule).startswith("gradual:"):
        try:
            check_syntax(schedule)
            return schedule
        except ConfigError as err:
            if isinstance(schedule, Mapping):
                raise argparse.ArgumentTypeError(str(err)) from None
    raise argparse.ArgumentTypeError(
        "takes all, gradual, gradual:N (one more group every N epochs), plateau "
        f"or JSON {{epoch: groups}}, e.g. {_SCHEDULE_EXAMPLE}; got {_shown(value)}"
    )


_SCHEDULE_EXAMPLE = '\'{"0": "top:1", "2": "all"}\''


parse_schedule.__name__ = "schedule"


def _epoch(key: Any) -> Any:
    return int(key) if isinstance(key, str) and key.strip().isdigit() else key
