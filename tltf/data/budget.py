"""How much a cache may hold in memory, and where ``cache="auto"`` puts it.

One decision serves every cache tltf keeps (decoded images, base features):
`plan_cache` turns a ``cache`` argument and the estimated size of what would
be cached into memory, a folder on disk, or no cache at all. With
``cache="auto"`` (the default) the data stays in memory while its estimated
size fits the budget (`cache_budget_bytes`: half of the memory available
when the cache is planned, or what `set_cache_budget` says), goes to a
temporary folder on disk beyond it (deleted when the process exits) if the
disk has room for it, and is not cached otherwise. One log line says which
and why.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import psutil

from tltf.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "CachePlan",
    "cache_budget_bytes",
    "check_cache_word",
    "plan_cache",
    "set_cache_budget",
    "spill_folder",
]

DEFAULT_BUDGET = 0.5  # Of the memory available when a cache is planned.
# A disk spill may fill at most this fraction of the free space of its folder.
DISK_FRACTION = 0.5

_budget: float | int = DEFAULT_BUDGET
# Words people pass for a cache mode, and what they mean.
_WORDS = {
    "memory": "True",
    "ram": "True",
    "true": "True",
    "yes": "True",
    "on": "True",
    "off": "False",
    "none": "False",
    "false": "False",
    "no": "False",
    "disk": "a folder path",
    "file": "a folder path",
}
_spill_root: Path | None = None


def set_cache_budget(budget: float | int | None) -> float | int:
    """Sets how much ``cache="auto"`` may keep in memory.

    Args:
        budget: A fraction in (0, 1] of the memory available when a cache is
            planned, a number of bytes (an int above 1), or None for the
            default (0.5: half of the available memory).

    Returns:
        The previous setting, to restore it.

    Raises:
        ConfigError: ``budget`` is not a fraction in (0, 1] or a byte count.

    Example:
        >>> tltf.data.set_cache_budget(4 * 2**30)  # at most 4 GiB in memory
        >>> data = tltf.data.image_folder("photos/")
    """
    global _budget
    previous = _budget
    if budget is None:
        budget = DEFAULT_BUDGET
    fraction = isinstance(budget, float) and 0.0 < budget <= 1.0
    count = isinstance(budget, int) and not isinstance(budget, bool) and budget > 1
    if not (fraction or count):
        raise ConfigError(
            "The cache budget must be a fraction in (0, 1] of the available "
            "memory (e.g. 0.5) or a number of bytes (e.g. 4 * 2**30). "
            f"Received: {budget!r}"
        )
    _budget = budget
    return previous


def cache_budget_bytes() -> int:
    """The memory budget of ``cache="auto"`` now, in bytes (`set_cache_budget`)."""
    if isinstance(_budget, float):
        return int(_budget * psutil.virtual_memory().available)
    return int(_budget)


@dataclasses.dataclass(frozen=True)
class CachePlan:
    """Where a cache goes.

    Attributes:
        mode: ``"memory"``, ``"disk"`` or ``"off"``.
        path: The folder or file prefix of a disk cache, else None.
    """

    mode: str
    path: str | None = None

    def split(self, name: str) -> bool | str:
        """`tltf.data.base.finish`'s ``cache`` for one split of the data:
        True (memory), False (off) or the file prefix ``<path>.<name>``."""
        if self.mode == "disk":
            return f"{self.path}.{name}"
        return self.mode == "memory"


def plan_cache(
    cache: bool | str | os.PathLike | None,
    estimated_bytes: int,
    what: str,
    *,
    budget: int | None = None,
    may_skip: bool = True,
) -> CachePlan:
    """Turns a ``cache`` argument into memory, disk or no cache.

    Args:
        cache: ``"auto"`` (decide by size), True (memory), False or None
            (off), or a path (disk, at that path).
        estimated_bytes: Estimated size of everything that would be cached.
        what: What is cached, for the log line (e.g. ``"the decoded images
            of photos/"``).
        budget: Memory budget in bytes; None for `cache_budget_bytes`.
        may_skip: Whether ``"auto"`` may choose no cache when the disk is
            short of room (False: beyond the budget is always disk).

    Returns:
        The `CachePlan`. For ``"auto"`` beyond the budget, ``path`` is a file
        prefix (or folder name) in a new folder under `spill_folder`.

    Raises:
        ConfigError: ``cache`` is none of these.
    """
    if isinstance(cache, str) and cache == "auto":
        if budget is None:
            budget = cache_budget_bytes()
        return _auto(int(estimated_bytes), what, budget, may_skip)
    if cache is True:
        return CachePlan("memory")
    if cache is False or cache is None:
        return CachePlan("off")
    check_cache_word(cache)
    if isinstance(cache, (str, os.PathLike)):
        return CachePlan("disk", str(cache))
    raise ConfigError(
        'cache must be "auto", True (memory), False (off) or a path (disk). '
        f"Received: cache={cache!r}"
    )


def check_cache_word(cache: Any) -> None:
    """Fails clearly on a ``cache`` string that is a word, not a path
    (``"ram"``, ``"yes"``, ``"none"``): it would create a folder of that name.

    Raises:
        ConfigError: ``cache`` is such a word.
    """
    if isinstance(cache, str) and cache.lower() in _WORDS:
        raise ConfigError(
            'cache must be "auto", True (memory), False (off) or a path (disk); '
            f"{cache!r} reads as a word, not a path: pass {_WORDS[cache.lower()]}. "
            f"Received: cache={cache!r}"
        )


def spill_folder() -> Path:
    """The process's temporary folder for disk caches; deleted at exit."""
    global _spill_root
    if _spill_root is None or not _spill_root.is_dir():
        _spill_root = Path(tempfile.mkdtemp(prefix="tltf-cache-"))
        atexit.register(shutil.rmtree, _spill_root, ignore_errors=True)
    return _spill_root


def _auto(estimated: int, what: str, budget: int, may_skip: bool) -> CachePlan:
    if estimated <= budget:
        logger.info(
            "Caching %s in memory: about %s, within the cache budget of %s.",
            what,
            _size(estimated),
            _size(budget),
        )
        return CachePlan("memory")
    root = spill_folder()
    room = int(shutil.disk_usage(root).free * DISK_FRACTION)
    if estimated <= room or not may_skip:
        path = os.path.join(tempfile.mkdtemp(prefix="cache-", dir=root), "cache")
        logger.info(
            "Caching %s on disk in %s: about %s, over the cache budget of %s "
            "(tltf.data.set_cache_budget). The folder is deleted at exit.",
            what,
            path,
            _size(estimated),
            _size(budget),
        )
        return CachePlan("disk", path)
    logger.info(
        "Not caching %s: about %s, over the cache budget of %s and over half "
        "the free disk space in %s. Every epoch reads the source again.",
        what,
        _size(estimated),
        _size(budget),
        root,
    )
    return CachePlan("off")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
