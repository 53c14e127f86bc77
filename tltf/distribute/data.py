"""Batch sizes per replica and datasets ready for a distribution strategy.

Users give the batch size per replica (what fits on one device); the input
pipeline batches by the global batch, ``per_replica * replicas``, and the
strategy splits each global batch between replicas. Across workers, data is
sharded by FILE when the pipeline reads files with a tf.data reader and by
DATA otherwise (in-memory arrays, ``from_tensor_slices``, images decoded from
a list of paths), so TensorFlow does not try FILE sharding, fail and warn.
"""

from __future__ import annotations

import logging
from typing import Any

import tensorflow as tf

from tltf import _compat
from tltf.data.base import LoadedData
from tltf.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SHARD_POLICIES = {
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}
# Source datasets that read files themselves, so FILE sharding can split them.
READER_OPS = (
    "TFRecordDataset",
    "TFRecordDatasetV2",
    "TextLineDataset",
    "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2",
)


def global_batch_size(
    per_replica_batch_size: int, strategy: tf.distribute.Strategy | None = None
) -> int:
    """The global batch for ``per_replica_batch_size`` examples on each replica.

    Args:
        per_replica_batch_size: Examples per replica per step.
        strategy: The strategy; None for the current one.

    Returns:
        ``per_replica_batch_size * strategy.num_replicas_in_sync``.

    Raises:
        DataError: A batch size below 1.

    Example:
        >>> global_batch_size(16, tf.distribute.MirroredStrategy(["/cpu:0"]))
        16
    """
    if not isinstance(per_replica_batch_size, int) or per_replica_batch_size < 1:
        raise DataError(
            "per_replica_batch_size must be a positive integer. "
            f"Received: per_replica_batch_size={per_replica_batch_size!r}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    return per_replica_batch_size * strategy.num_replicas_in_sync


def rebatch(
    ds: tf.data.Dataset,
    batch_size: int,
    *,
    input_batch_size: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Regroups a batched dataset into batches of ``batch_size`` examples.

    Args:
        ds: A batched dataset (as tltf loaders return).
        batch_size: The new batch size, e.g. from `global_batch_size`.
        input_batch_size: The batch size ``ds`` was batched with. When
            ``batch_size`` is a multiple of it, the new number of batches is
            known, so Keras sees the epoch length (and does not warn that the
            input "ran out of data").
        drop_remainder: Drop a last, smaller batch.

    Returns:
        The rebatched dataset; the examples and their order are unchanged.

    Raises:
        DataError: A bad batch size or an unbatched dataset.

    Example:
        >>> ds = tf.data.Dataset.range(10).batch(2)
        >>> [len(b) for b in rebatch(ds, 4, input_batch_size=2)]
        [4, 4, 2]
    """
    check_dataset(ds, "rebatch")
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1. Received: {batch_size}")
    shapes = [spec.shape for spec in tf.nest.flatten(ds.element_spec)]
    if any(shape.rank in (None, 0) for shape in shapes):
        raise DataError(
            "rebatch needs a batched dataset (every element a batch); batch it "
            f"first with ds.batch(n). Received: element_spec={ds.element_spec}"
        )
    leading = {shape[0] for shape in shapes} - {None}
    if input_batch_size and leading and leading != {input_batch_size}:
        raise DataError(
            f"The dataset's batches hold {leading.pop()} examples, not the "
            f"{input_batch_size} given. Batch the dataset by the per-replica "
            f"batch size. Received: element_spec={ds.element_spec}"
        )
    batches = int(ds.cardinality())
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    whole = bool(input_batch_size) and batch_size % input_batch_size == 0
    if whole and batches >= 0 and not drop_remainder:
        # ceil(ceil(n / b) / k) == ceil(n / (k * b)): exact however full the
        # last input batch is.
        cardinality = -(-batches // (batch_size // input_batch_size))
        ds = ds.apply(tf.data.experimental.assert_cardinality(cardinality))
    return ds


def check_dataset(ds: Any, caller: str) -> None:
    """Raises a clear `DataError` when ``ds`` is not a ``tf.data.Dataset``.

    Args:
        ds: What the user passed.
        caller: The function's name, for the message.

    Raises:
        DataError: ``ds`` is a list, an array, a `LoadedData` or anything else.
    """
    if isinstance(ds, tf.data.Dataset):
        return
    hint = (
        "pass its .train (or .validation) dataset"
        if isinstance(ds, LoadedData)
        else "wrap arrays first, e.g. tf.data.Dataset.from_tensor_slices((x, y))"
        ".batch(32)"
    )
    raise DataError(
        f"{caller} needs a batched tf.data.Dataset of (inputs, labels); {hint}. "
        f"Received: {_preview(ds)}"
    )


def _preview(value: Any) -> str:
    """``list [1, 2, 3]``, ``ndarray of shape (2, 3) float64``: one short line."""
    kind = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{kind} of shape {tuple(value.shape)} {value.dtype}"
    text = " ".join(repr(value).split())
    return f"{kind} {text if len(text) <= 60 else text[:57] + '...'}"


def shard_policy(ds: tf.data.Dataset) -> tf.data.experimental.AutoShardPolicy:
    """FILE when ``ds`` reads files with a tf.data reader, DATA otherwise."""
    graph = _compat.dataset_graph(ds)
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    if ops.intersection(READER_OPS):
        return tf.data.experimental.AutoShardPolicy.FILE
    return tf.data.experimental.AutoShardPolicy.DATA


def distribute_dataset(
    ds: tf.data.Dataset,
    strategy: tf.distribute.Strategy | None = None,
    *,
    per_replica_batch_size: int | None = None,
    shard: str = "auto",
) -> tf.data.Dataset:
    """Prepares a batched dataset for ``model.fit`` under a strategy.

    Sets the auto-shard policy (see the module docstring) and, with
    ``per_replica_batch_size``, rebatches to the global batch. Keras then
    distributes the dataset itself; pass the result to ``fit`` directly.

    Args:
        ds: A batched dataset of ``(inputs, labels)``.
        strategy: The strategy; None for the current one.
        per_replica_batch_size: The batch size ``ds`` is batched with, taken
            as the batch of one replica: batches are regrouped into global
            batches of ``per_replica_batch_size * replicas``. None keeps the
            dataset's batches as global batches.
        shard: ``"auto"`` (FILE for file readers, DATA otherwise), ``"file"``,
            ``"data"`` or ``"off"`` (each worker sees all data).

    Returns:
        The dataset with distribution options set.

    Raises:
        ConfigError: An unknown ``shard`` value.
        DataError: ``ds`` is not a ``tf.data.Dataset``, a bad batch size or
            an unbatched dataset.

    Example:
        >>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
        >>> ds = distribute_dataset(ds, strategy, per_replica_batch_size=8)
        >>> # on 2 replicas: batches of 16, sharded by DATA across workers
    """
    check_dataset(ds, "distribute_dataset")
    if shard not in SHARD_POLICIES:
        raise ConfigError(
            f"Unknown shard policy {shard!r}; use one of {list(SHARD_POLICIES)}. "
            f"Received: shard={shard!r}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    if per_replica_batch_size is not None:
        total = global_batch_size(per_replica_batch_size, strategy)
        ds = rebatch(ds, total, input_batch_size=per_replica_batch_size)
    policy = shard_policy(ds) if shard == "auto" else SHARD_POLICIES[shard]
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    logger.debug("Sharding input by %s across workers.", policy.name)
    return ds.with_options(options)
