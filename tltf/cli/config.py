"""The settings of one ``tltf`` run: flags merged over a config file.

Options are a dict of the settings the user gave (flags or config file);
settings left out are absent, so every library call gets only what the user
said and the library's defaults do the rest. A config file (YAML or JSON)
holds the same settings as the flags, with the flag names as keys
(``epochs: 3``, ``backbone: keras:resnet50``); its values are parsed and
checked by the same parsers as the flags, and flags win over the file.
Runs before TensorFlow loads.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tltf.cli.flags import FlagParser
from tltf.cli.parsing import ArgumentsError, flag

_NOT_SETTINGS = {"command", "debug", "config", "help"}


def merge_config(
    args: argparse.Namespace, parser: FlagParser | None = None
) -> dict[str, Any]:
    """Merges the config file (if any) under the flags and drops unset values.

    Args:
        args: Parsed flags; unset flags are None.
        parser: The subcommand's parser, whose flags check the file's values
            (None: the parser `tltf.cli.subcommands` builds for the command).

    Returns:
        ``{setting: value}`` for every setting the user gave.

    Raises:
        ArgumentsError: The config file is missing, unreadable, not a
            mapping, has keys that are not flags of the command, or values
            the flags refuse.
    """
    if parser is None:
        from tltf.cli.subcommands import build_parsers

        parser = build_parsers()[1][args.command]
    flags = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    options: dict[str, Any] = {}
    if args.config:
        path = Path(args.config)
        settings = _read_config(path, set(flags), args.command)
        options.update(_parsed(settings, parser, path))
    options.update({k: v for k, v in flags.items() if v is not None})
    options = {k: v for k, v in options.items() if v is not None}
    _check_not_empty(options, parser)
    return options


def _check_not_empty(options: Mapping[str, Any], parser: FlagParser) -> None:
    """A flag given an empty value (``--data ""``) names nothing: say so.

    Without this, an empty path would mean the current folder.
    """
    for key, value in options.items():
        if isinstance(value, str) and not value.strip():
            what = parser.actions[key].metavar or "value"
            raise ArgumentsError(
                f"{flag(key)} is empty ({value!r}); pass a {what} or leave "
                f"{flag(key)} out."
            )


def _read_config(path: Path, known: set[str], command: str) -> dict[str, Any]:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ArgumentsError(
            f"--config {str(path)!r} {what}. Pass a YAML or JSON file whose keys "
            "are flag names, e.g. `epochs: 3`."
        )
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - YAML, JSON and decoding raise their own.
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ArgumentsError(
            f"--config {str(path)!r} is not valid UTF-8 YAML or JSON: "
            f"{first or type(err).__name__}"
        ) from err
    if content is None:
        raise ArgumentsError(
            f"--config {str(path)!r} holds no settings. Write flag names and "
            "values in it, e.g. `epochs: 3`, or leave --config out."
        )
    if not isinstance(content, Mapping):
        raise ArgumentsError(
            f"--config {str(path)!r} must hold a mapping of flag names to values, "
            f"e.g. `epochs: 3`. Received: {type(content).__name__}"
        )
    settings = {str(k).replace("-", "_"): v for k, v in content.items()}
    unknown = sorted(set(settings) - known)
    if unknown:
        keys = ", ".join(k.replace("_", "-") for k in sorted(known))
        raise ArgumentsError(
            f"--config {str(path)!r} has keys that are not flags of `tltf "
            f"{command}`: {', '.join(unknown)}. Known keys: {keys}."
        )
    return settings


def _parsed(
    settings: Mapping[str, Any], parser: FlagParser, path: Path
) -> dict[str, Any]:
    """The file's values through the parsers and choices of the flags."""
    actions = parser.actions
    parsed = {}
    for key, value in settings.items():
        if value is None:
            continue
        action = actions[key]
        where = f"--config {str(path)!r}: {key.replace('_', '-')}"
        try:
            parsed[key] = _value(action, value)
        except argparse.ArgumentTypeError as err:
            raise ArgumentsError(f"{where} {err}") from None
        except ValueError as err:
            raise ArgumentsError(f"{where} {err}") from None
    return parsed


def _value(action: argparse.Action, value: Any) -> Any:
    if action.nargs == 0:  # --export, --overwrite, --no-verify
        if not isinstance(value, bool):
            raise ValueError(f"takes true or false; got {value!r}")
        return action.const if value else None
    if action.nargs == "*":
        values = value if isinstance(value, list) else [value]
        return [str(v) for v in values]
    if action.type is not None:
        value = action.type(value)
    elif isinstance(value, (Mapping, list)):
        raise ValueError(f"takes one value; got {value!r}")
    else:
        value = str(value)
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ValueError(f"takes one of {choices}; got {value!r}")
    return value
