# ruff: noqa: E501 (one row per line)
"""Bad input to the distribution helpers (`get_strategy`, `strategy_scope`,
`global_batch_size`, `distribute_dataset`, `fault_tolerance_callbacks`,
`WorkerBackupAndRestore`): a clear error or a correct result, on one CPU."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.bad_input.rows import Raises, Row, check, equals, params, scratch
from tests.support.helpers import build_tiny_model
from tltf.errors import ConfigError, DataError

X = np.zeros((8, 32, 32, 3), "float32")
Y = np.arange(8) % 3


def _root() -> Path:
    return scratch("distribute")


def _batches(ds) -> list[int]:
    return [int(x.shape[0]) for x, _ in ds]


def _enter(kind):
    with tltf.strategy_scope(kind) as strategy:
        return strategy


def _resumes_and_trains():
    model = build_tiny_model()
    callbacks = tltf.fault_tolerance_callbacks(_root() / "backup")
    return model.fit(X, Y, epochs=2, verbose=0, callbacks=callbacks)


def _two_epochs(history) -> None:
    assert len(history.history["loss"]) == 2


def _one_replica(strategy) -> None:
    assert (
        isinstance(strategy, tf.distribute.Strategy)
        and strategy.num_replicas_in_sync == 1
    )


# fmt: off
ROWS = [
    Row("get_strategy", "an unknown kind", lambda: tltf.get_strategy("gpus"), Raises(ConfigError, "Unknown strategy kind 'gpus'")),
    Row("get_strategy", "not a string", lambda: tltf.get_strategy(3), Raises(ConfigError, "Received: kind=3")),
    Row("get_strategy", "a GPU on a CPU machine", lambda: tltf.get_strategy("gpu"), Raises(ConfigError, "needs a GPU")),
    Row("get_strategy", "auto on a CPU", lambda: tltf.get_strategy("auto"), _one_replica),
    Row("strategy_scope", "an unknown kind", lambda: _enter("nope"), Raises(ConfigError, "Unknown strategy kind 'nope'")),
    Row("strategy_scope", "cpu", lambda: _enter("cpu"), _one_replica),
    Row("global_batch_size", "0", lambda: tltf.global_batch_size(0), Raises(DataError, "per_replica_batch_size must be a positive integer")),
    Row("global_batch_size", "as a string", lambda: tltf.global_batch_size("32"), Raises(DataError, "Received: per_replica_batch_size='32'")),
    Row("global_batch_size", "one replica", lambda: tltf.global_batch_size(32), equals(32)),
    Row("distribute_dataset", "arrays, not a dataset", lambda: tltf.distribute_dataset((X, Y)), Raises(DataError, "tf.data.Dataset")),
    Row("distribute_dataset", "an unknown shard policy", lambda: tltf.distribute_dataset(tf.data.Dataset.from_tensor_slices((X, Y)).batch(4), shard="rows"), Raises(ConfigError, "Unknown shard policy 'rows'")),
    Row("distribute_dataset", "an unbatched dataset", lambda: tltf.distribute_dataset(tf.data.Dataset.from_tensor_slices((X, Y)), per_replica_batch_size=4), Raises(DataError, "batch")),
    Row("distribute_dataset", "rebatched for one replica", lambda: _batches(tltf.distribute_dataset(tf.data.Dataset.from_tensor_slices((X, Y)).batch(4), per_replica_batch_size=4)), equals([4, 4])),
    Row("fault_tolerance_callbacks", "save_freq as a word", lambda: tltf.fault_tolerance_callbacks(_root() / "b1", save_freq="often"), Raises(ConfigError, "save_freq")),
    Row("WorkerBackupAndRestore", "save_freq 0", lambda: tltf.WorkerBackupAndRestore(_root() / "b2", save_freq=0), Raises(ConfigError, "save_freq")),
    Row("WorkerBackupAndRestore", "a backup folder that is a file", lambda: tltf.WorkerBackupAndRestore(_a_file()), Raises(ConfigError, "a_file")),
    Row("fault_tolerance_callbacks", "a fit with them", _resumes_and_trains, _two_epochs),
    Row("fault_tolerance_callbacks", "None as the backup folder", lambda: tltf.fault_tolerance_callbacks(None), Raises(ConfigError, "backup_dir must be a path")),
    Row("WorkerBackupAndRestore", "a number as the backup folder", lambda: tltf.WorkerBackupAndRestore(3), Raises(ConfigError, "Received: backup_dir=3")),
]
# fmt: on


@functools.cache
def _a_file() -> Path:
    path = _root() / "a_file"
    path.write_text("x")
    return path


@pytest.mark.parametrize("row", params(ROWS))
def test_distribute(row: Row) -> None:
    check(row)
