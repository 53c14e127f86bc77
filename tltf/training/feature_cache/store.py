"""Where pooled base features are kept, and the keys that name them.

`FeatureCache` holds feature sets in memory or as ``tf.data`` snapshots in a
folder. A feature set's key (`key_of`) covers everything that determines it:
the base's weights and configuration (`digest_base`) and the data, so a
changed base or changed data never finds stale features.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.data.budget import cache_budget_bytes, check_cache_word, plan_cache
from tltf.errors import ConfigError
from tltf.files import atomic_path

FORMAT_VERSION = "tltf-features-1"

# Unbatched examples ``(features, label[, weight])``: numpy arrays when they
# are in memory, a dataset when they stream from disk.
Examples = tuple[np.ndarray, ...] | tf.data.Dataset


def unbatched(examples: Examples) -> tf.data.Dataset:
    """The examples as an unbatched dataset."""
    if isinstance(examples, tf.data.Dataset):
        return examples
    return tf.data.Dataset.from_tensor_slices(examples)


def concatenate(batches: Iterable[tuple]) -> tuple[np.ndarray, ...]:
    """Numpy batches ``(features, label[, weight])`` joined column by column."""
    return tuple(np.concatenate(column) for column in zip(*batches))


class FeatureCache:
    """Pooled base features by key, in memory or in a folder.

    In memory, the ``max_entries`` most recently used feature sets are kept
    as numpy arrays (which `head_loop.fit_arrays` trains on directly).
    With a ``directory``, each feature set is a ``tf.data`` snapshot in
    ``directory/<key>`` (written to a temporary folder and renamed, so an
    interrupted run leaves no half-written cache), which streams from disk
    and suits data larger than memory. With ``spill=True`` (what
    ``cache="auto"`` uses), a feature set stays in memory while this cache's
    memory stays within the cache budget (`tltf.data.set_cache_budget`), and
    goes to a snapshot in a temporary folder (deleted at exit) beyond it;
    one log line says which and why.

    Args:
        directory: Folder for disk caches; None keeps features in memory.
        max_entries: In-memory feature sets to keep (least recently used go).
        spill: Without a ``directory``: spill feature sets beyond the cache
            budget to disk instead of keeping them in memory.

    Example:
        >>> cache = FeatureCache("/tmp/features")
        >>> train = compute_features(model, data.train, cache=cache)
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        max_entries: int = 4,
        *,
        spill: bool = False,
    ) -> None:
        self.directory = (
            None if directory is None else arguments.path("directory", directory)
        )
        if self.directory is not None and self.directory.is_file():
            raise ConfigError(
                f"A FeatureCache keeps its features in a folder; {str(directory)!r} "
                "is a file. Pass a folder path (it is created if needed)."
            )
        self.max_entries = arguments.count("max_entries", max_entries, minimum=0)
        self.spill = bool(spill)
        self._memory: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._spilled: dict[str, Path] = {}

    def get(self, key: str) -> tf.data.Dataset | None:
        """The cached unbatched ``(features, label[, weight])`` dataset, or None."""
        examples = self.lookup(key)
        return None if examples is None else unbatched(examples)

    def put(self, key: str, batches: Iterator[tuple]) -> tf.data.Dataset:
        """Stores feature batches under ``key`` and returns them unbatched.

        Args:
            key: The key naming the feature set (`key_of`).
            batches: Iterator of ``(features, label[, weight])`` numpy batches.

        Returns:
            The stored examples as an unbatched dataset.
        """
        return unbatched(self.store(key, batches))

    def lookup(self, key: str) -> Examples | None:
        """The cached examples (arrays in memory, a dataset on disk), or None."""
        path = self._spilled.get(key)
        if self.directory is not None:
            path = self.directory / key
        if path is not None:
            return tf.data.Dataset.load(str(path)) if path.is_dir() else None
        if key not in self._memory:
            return None
        self._memory.move_to_end(key)
        return self._memory[key]

    def store(
        self, key: str, batches: Iterator[tuple], num_batches: int | None = None
    ) -> Examples:
        """Stores feature batches under ``key``; returns them as `lookup` would.

        Args:
            key: The key naming the feature set (`key_of`).
            batches: Iterator of ``(features, label[, weight])`` numpy batches.
            num_batches: How many batches there will be, if known (for the
                size estimate of a spilling cache's log line).

        Returns:
            Arrays (in memory) or a dataset (on disk).
        """
        if self.directory is not None:
            return self._write(self.directory / key, batches)
        if self.spill:
            return self._store_within_budget(key, iter(batches), num_batches)
        return self._keep(key, concatenate(batches))

    def clear(self) -> None:
        """Forgets in-memory features and deletes this cache's disk folders."""
        self._memory.clear()
        for path in self._spilled.values():
            shutil.rmtree(path, ignore_errors=True)
        self._spilled.clear()
        if self.directory is not None and self.directory.is_dir():
            for path in self.directory.glob(f"{FORMAT_VERSION}-*"):
                shutil.rmtree(path, ignore_errors=True)

    def _keep(self, key: str, arrays: tuple[np.ndarray, ...]) -> tuple:
        self._memory[key] = arrays
        while len(self._memory) > max(self.max_entries, 0):
            self._memory.popitem(last=False)
        return arrays

    def _store_within_budget(
        self, key: str, batches: Iterator[tuple], num_batches: int | None
    ) -> Examples:
        """Memory while this cache's memory fits the budget, else disk."""
        held = sum(a.nbytes for arrays in self._memory.values() for a in arrays)
        budget = cache_budget_bytes()
        kept: list[tuple] = []
        size = 0
        for batch in batches:
            kept.append(batch)
            size += sum(a.nbytes for a in batch)
            if held + size > budget:
                break
        estimate = size
        if num_batches and num_batches > len(kept) and kept:
            estimate = max(size, size // len(kept) * num_batches)
        what = f"base features {key}"
        if held:
            what += f" (beside {held} bytes of other feature sets)"
        plan = plan_cache("auto", held + estimate, what, budget=budget, may_skip=False)
        if plan.mode == "memory":
            return self._keep(key, concatenate(kept))
        path = Path(plan.path)
        self._spilled[key] = path
        return self._write(path, itertools.chain(kept, batches))

    def _write(self, final: Path, batches: Iterator[tuple]) -> tf.data.Dataset:
        batches = iter(batches)
        first = next(batches)
        signature = tuple(
            tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype)) for a in first
        )

        def generate():
            yield first
            yield from batches

        ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
        # A folder written meanwhile by another process is kept.
        with atomic_path(final, directory=True) as temp:
            ds.unbatch().save(str(temp))
        return tf.data.Dataset.load(str(final))


_DEFAULT_CACHE = FeatureCache()
_AUTO_CACHE = FeatureCache(spill=True)


def default_cache(auto: bool = False) -> FeatureCache:
    """The process-wide `FeatureCache` of ``cache=True`` (in memory), or of
    ``cache="auto"`` (memory within the cache budget, disk beyond) if ``auto``.
    """
    return _AUTO_CACHE if auto else _DEFAULT_CACHE


def resolve_cache(
    cache: bool | str | os.PathLike | FeatureCache,
) -> FeatureCache | None:
    if isinstance(cache, FeatureCache):
        return cache
    if isinstance(cache, str) and cache == "auto":
        return _AUTO_CACHE
    if cache is True:
        return _DEFAULT_CACHE
    if cache is False or cache is None:
        return None
    check_cache_word(cache)
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise ConfigError(
        'cache must be "auto", True (memory), False, a folder path (disk) or a '
        f"FeatureCache. Received: cache={cache!r}"
    )


def digest_base(config: Any, weights: Iterable[Any]) -> str:
    """A digest of how features are computed, for `key_of`.

    Args:
        config: Anything whose ``repr`` captures how features are computed.
        weights: Every variable the features depend on (values are hashed).

    Returns:
        64 hex digits.
    """
    digest = hashlib.sha256()
    digest.update(repr(config).encode())
    for variable in weights:
        value = keras.ops.convert_to_numpy(variable)
        digest.update(f"{variable.path}{value.shape}{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def key_of(base: str, data: tf.data.Dataset, first: Any) -> str:
    """A file-name-safe key for features of ``data`` under a base.

    Args:
        base: The base's digest (`digest_base`) (hashing the weights is the
            costly part: one per base serves every dataset).
        data: The batched dataset (its element spec and cardinality count).
        first: Its first batch (contents are hashed).

    Returns:
        ``"tltf-features-1-<32 hex digits>"``.
    """
    digest = hashlib.sha256(base.encode())
    digest.update(repr(data.element_spec).encode())
    digest.update(str(int(data.cardinality())).encode())
    for tensor in tf.nest.flatten(first):
        digest.update(np.asarray(tensor).tobytes())
    return f"{FORMAT_VERSION}-{digest.hexdigest()[:32]}"
