"""Distribution: one argument takes a tltf model from one CPU to GPUs, TPUs
and several workers, on TensorFlow's own tf.distribute.

- `get_strategy` chooses a strategy (``"auto"`` and friends) and logs it.
- `strategy_scope` / `resolve_strategy` / `build_scope` /
  `distributed_build`: the one scope a model is built, compiled and restored
  in.
- `distribute_dataset`, `global_batch_size`, `rebatch`: per-replica batch
  sizes and the right auto-shard policy.
- `precision_policy`, `mixed_precision_policy`: mixed precision per device.
- `fault_tolerance_callbacks`, `WorkerBackupAndRestore`: resumable
  multi-worker training.
"""

from tltf.distribute.backup import WorkerBackupAndRestore, fault_tolerance_callbacks
from tltf.distribute.data import (
    distribute_dataset,
    global_batch_size,
    rebatch,
    shard_policy,
)
from tltf.distribute.precision import mixed_precision_policy, precision_policy
from tltf.distribute.scope import (
    build_scope,
    check_built_in_scope,
    distributed_build,
    is_default,
    resolve_strategy,
    strategy_scope,
)
from tltf.distribute.strategy import KINDS, describe, get_strategy, parse_tf_config

__all__ = [
    "KINDS",
    "WorkerBackupAndRestore",
    "build_scope",
    "check_built_in_scope",
    "describe",
    "distribute_dataset",
    "distributed_build",
    "fault_tolerance_callbacks",
    "get_strategy",
    "global_batch_size",
    "is_default",
    "mixed_precision_policy",
    "parse_tf_config",
    "precision_policy",
    "rebatch",
    "resolve_strategy",
    "shard_policy",
    "strategy_scope",
]
