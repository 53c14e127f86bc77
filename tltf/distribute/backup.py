"""Fault tolerance: back up training state so restarted workers resume together.

`WorkerBackupAndRestore` is Keras' ``BackupAndRestore`` made safe for several
workers sharing one backup folder:

- only the chief writes the checkpoint (the weights are the same on every
  worker after each synchronous step), so no two processes write one file;
- a checkpoint is committed by atomically replacing ``state.json`` after the
  weights file is complete, so a worker killed while saving leaves the
  previous checkpoint intact;
- every worker restores from the chief's checkpoint, so all workers resume
  at the same epoch with the same weights (the folder must be visible to all
  workers: the same machine, a shared disk, or a ``gs://`` bucket);
- objects passed as ``stateful`` (e.g. a staged-unfreezing callback) save
  their state with the checkpoint and get it back *before* the weights load,
  so a schedule can rebuild the optimizer its saved state belongs to.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import tensorflow as tf

from tltf import _compat, arguments
from tltf.distribute.scope import resolve_strategy
from tltf.distribute.strategy import StrategyLike
from tltf.errors import ConfigError

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"


class Stateful(Protocol):
    """What `WorkerBackupAndRestore` asks of objects whose state it keeps."""

    def backup_state(self) -> dict[str, Any]:
        """JSON-serializable state to save with each checkpoint."""

    def restore_state(self, state: dict[str, Any]) -> None:
        """Puts back state saved by `backup_state`, before weights load."""


@keras.saving.register_keras_serializable(package="tltf")
@_compat.backup_hooks
class WorkerBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Backs up weights, optimizer, epoch and schedule state; resumes after a crash.

    Put it in ``model.fit(callbacks=...)``; re-run the same ``fit`` after an
    interruption and training resumes at the last saved epoch. When training
    finishes the checkpoint is deleted (unless ``delete_checkpoint=False``).

    Args:
        backup_dir: Folder for the checkpoint, used by this run only.
        save_freq: ``"epoch"`` or a number of batches between saves.
        delete_checkpoint: Delete the checkpoint when training completes.
        task_type: This process's task type (``"worker"``, ``"chief"``);
            None for a single process. `fault_tolerance_callbacks` fills
            this in from the strategy.
        task_id: This process's index within its task type.
        is_chief: Whether this process writes the backup; None for the usual
            rule (no task type, the ``"chief"``, or worker 0).
        stateful: Objects with ``backup_state()`` / ``restore_state(state)``.

    Example:
        >>> callbacks = [WorkerBackupAndRestore("/tmp/backup")]
        >>> model.fit(ds, epochs=3, callbacks=callbacks)
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int = "epoch",
        delete_checkpoint: bool = True,
        task_type: str | None = None,
        task_id: int = 0,
        is_chief: bool | None = None,
        stateful: Sequence[Stateful] = (),
    ) -> None:
        _check_backup(backup_dir, save_freq)
        super().__init__(
            str(backup_dir), save_freq=save_freq, delete_checkpoint=delete_checkpoint
        )
        self.task_type = task_type
        self.task_id = int(task_id)
        self.stateful = list(stateful)
        if is_chief is None:
            is_chief = task_type in (None, "chief") or (
                task_type == "worker" and task_id == 0
            )
        self.is_chief = bool(is_chief)
        self.restored_epoch: int | None = None
        self._saves = 0

    # --- restore ---

    def restore_backup(self) -> None:
        """Restores the chief's last checkpoint, if any (at ``on_train_begin``)."""
        state = _read_state(self.backup_dir)
        if state is None:
            return
        for obj, saved in zip(self.stateful, state.get("stateful", [])):
            obj.restore_state(saved)
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        path = posixpath.join(self.backup_dir, state["weights"])
        try:
            self.model.load_weights(path)
        except ValueError as err:
            raise ConfigError(
                f"The backup in {self.backup_dir!r} does not fit this model "
                f"({str(err).splitlines()[0]}). A backup folder belongs to one "
                "training run: use a new folder, or delete this one to start over."
            ) from err
        self._saves = state["saves"]
        self.restored_epoch = state["epoch"]
        _compat.set_initial_epoch(self.model, state["epoch"])
        logger.info("Resuming from the backup at epoch %d.", state["epoch"])

    # --- save ---

    def write_backup(self) -> None:
        """Writes a checkpoint (chief only), at the times ``save_freq`` says."""
        self._saves += 1
        if not self.is_chief:
            return
        tf.io.gfile.makedirs(self.backup_dir)
        name = f"ckpt-{self._saves:06d}.weights.h5"
        partial = posixpath.join(self.backup_dir, f"partial-{name}")
        self.model.save_weights(partial, overwrite=True)
        tf.io.gfile.rename(partial, posixpath.join(self.backup_dir, name), True)
        epoch, batch = _compat.backup_position(self)
        state = {
            "epoch": epoch,
            "batch": batch,
            "saves": self._saves,
            "weights": name,
            "stateful": [obj.backup_state() for obj in self.stateful],
        }
        partial_state = posixpath.join(self.backup_dir, f"partial-{STATE_FILE}")
        with tf.io.gfile.GFile(partial_state, "w") as f:
            f.write(json.dumps(state))
        final_state = posixpath.join(self.backup_dir, STATE_FILE)
        tf.io.gfile.rename(partial_state, final_state, True)
        pattern = posixpath.join(self.backup_dir, "ckpt-*.weights.h5")
        for old in tf.io.gfile.glob(pattern):
            if posixpath.basename(old) != name:
                tf.io.gfile.remove(old)

    def on_train_end(self, logs: dict | None = None) -> None:
        done = self.delete_checkpoint and self.is_chief
        if done and tf.io.gfile.exists(self.backup_dir):
            tf.io.gfile.rmtree(self.backup_dir)

    def get_config(self) -> dict[str, Any]:
        return {
            "backup_dir": self.backup_dir,
            "save_freq": self.save_freq,
            "delete_checkpoint": self.delete_checkpoint,
            "task_type": self.task_type,
            "task_id": self.task_id,
            "is_chief": self.is_chief,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WorkerBackupAndRestore:
        return cls(**config)


def _read_state(backup_dir: str) -> dict[str, Any] | None:
    path = posixpath.join(backup_dir, STATE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def _check_backup(backup_dir: str | os.PathLike, save_freq: Any) -> None:
    if save_freq != "epoch":
        arguments.count("save_freq (batches between backups, or 'epoch')", save_freq)
    arguments.path("backup_dir", backup_dir)  # Checked only: gs:// stays a str.
    if Path(backup_dir).is_file():
        raise ConfigError(
            f"backup_dir {str(backup_dir)!r} is a file; a backup is a folder. Pass "
            "a folder path (it is created if needed)."
        )


def fault_tolerance_callbacks(
    backup_dir: str | os.PathLike,
    strategy: StrategyLike = None,
    *,
    save_freq: str | int = "epoch",
    stateful: Sequence[Stateful] = (),
    delete_checkpoint: bool = True,
) -> list[keras.callbacks.Callback]:
    """The callbacks that make a (multi-worker) ``fit`` resumable.

    Add them to ``model.fit(callbacks=...)`` on every worker, with the same
    ``backup_dir``, after the callbacks in ``stateful`` (Keras calls
    callbacks in list order, so their end-of-epoch state is then saved).
    When a worker dies, restart the workers with the same program: each one
    resumes from the last saved epoch, and objects in ``stateful`` get their
    saved state back before the weights load. `tltf.StagedUnfreezing` needs
    no registration: it derives its stage from the resumed epoch and keeps
    its schedule state in the optimizer (list it before these callbacks).

    Args:
        backup_dir: Folder for the backup, visible to every worker.
        strategy: The training strategy (for this worker's role); None for
            the current one.
        save_freq: ``"epoch"`` or a number of batches between backups.
        stateful: Objects with ``backup_state()`` and ``restore_state(state)``.
        delete_checkpoint: Delete the backup when training completes.

    Returns:
        ``[WorkerBackupAndRestore(...)]``.

    Example:
        >>> callbacks = fault_tolerance_callbacks("/shared/backup", strategy)
        >>> model.fit(ds, epochs=10, callbacks=callbacks)
    """
    strategy = resolve_strategy(strategy)
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    is_chief = getattr(strategy.extended, "should_checkpoint", True)
    return [
        WorkerBackupAndRestore(
            backup_dir,
            save_freq=save_freq,
            delete_checkpoint=delete_checkpoint,
            task_type=task_type,
            task_id=task_id,
            is_chief=is_chief,
            stateful=stateful,
        )
    ]
