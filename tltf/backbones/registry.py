"""One registry of backbones: ``"source:name"`` in, a `BackboneSpec` out.

Static entries (``keras:resnet50``) are registered by the source modules when
they are imported. Open-ended sources (``hub:<url or folder>``,
``kerashub:<preset or folder>``) register a resolver that turns the part after
the colon into a spec on demand.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable

from tltf.backbones.spec import MODALITIES, BackboneSpec
from tltf.errors import ConfigError

_SPECS: dict[str, BackboneSpec] = {}
_ALIASES: dict[str, str] = {}
_RESOLVERS: dict[str, tuple[Callable[[str], BackboneSpec], str]] = {}


def register_backbone(
    spec: BackboneSpec, aliases: tuple[str, ...] = ()
) -> BackboneSpec:
    """Adds ``spec`` to the registry under ``spec.name`` and any aliases.

    Args:
        spec: The backbone to register.
        aliases: Other names that resolve to it.

    Returns:
        The spec, so this can be used inline.
    """
    _SPECS[spec.name] = spec
    for alias in aliases:
        _ALIASES[alias] = spec.name
    return spec


def register_source(
    source: str, resolver: Callable[[str], BackboneSpec], example: str
) -> None:
    """Registers a resolver for names of the form ``"<source>:<anything>"``.

    Args:
        source: The prefix before the colon, e.g. ``"hub"``.
        resolver: Turns the part after the colon into a spec.
        example: An example name, shown in error messages.
    """
    _RESOLVERS[source] = (resolver, example)


def list_backbones(modality: str | None = None) -> list[str]:
    """Names of the registered backbones.

    Args:
        modality: ``"image"`` or ``"text"`` to filter; None for all.

    Returns:
        Sorted registry names. Open-ended sources (``hub:``, ``kerashub:``)
        accept more names than listed here.

    Raises:
        ConfigError: ``modality`` is not a kind of backbone tltf has.

    Example:
        >>> "keras:resnet50" in tltf.list_backbones("image")
        True
    """
    _load_sources()
    if modality is not None and modality not in MODALITIES:
        raise ConfigError(
            f"Unknown kind of backbone {modality!r}; use one of {list(MODALITIES)} "
            f"(or None for all). Received: modality={modality!r}"
        )
    return sorted(
        name
        for name, spec in _SPECS.items()
        if modality is None or spec.modality == modality
    )


def get_backbone(name: str) -> BackboneSpec:
    """Looks up a backbone by registry name.

    Args:
        name: ``"keras:resnet50"``, ``"hub:<url or folder>"``,
            ``"kerashub:<preset or folder>"``, or a registered alias.

    Returns:
        The matching `BackboneSpec`.

    Raises:
        ConfigError: The name is unknown; the message lists the known names.
    """
    _load_sources()
    if not isinstance(name, str):
        raise ConfigError(
            f"A backbone name must be a string such as 'keras:resnet50'. "
            f"Received: {name!r}"
        )
    key = _ALIASES.get(name, name)
    if key in _SPECS:
        return _SPECS[key]
    source, sep, rest = name.partition(":")
    if sep and source in _RESOLVERS and rest:
        return _RESOLVERS[source][0](rest)
    raise ConfigError(_unknown_message(name))


def _unknown_message(name: str) -> str:
    known = sorted(_SPECS)
    close = difflib.get_close_matches(name, known + list(_ALIASES), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    open_ended = ", ".join(example for _, example in _RESOLVERS.values())
    return (
        f"Unknown backbone '{name}'.{hint} Known backbones: {', '.join(known)}"
        + (f"; open-ended sources: {open_ended}" if open_ended else "")
        + f". Received: {name!r}"
    )


#: Modules that register backbones when imported, loaded on first lookup.
_SOURCE_MODULES = (
    "tltf.backbones.keras_apps",
    "tltf.backbones.tfhub",
    "tltf.backbones.kerashub",
)


def _load_sources() -> None:
    """Imports the source modules so that they register their entries."""
    for module in _SOURCE_MODULES:
        importlib.import_module(module)
