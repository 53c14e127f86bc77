"""`StagedUnfreezing`: unfreeze a tltf model's base group by group during fit.

Flipping ``trainable`` from a callback is not enough in Keras 3: the traced
train step keeps the old variable list, and an optimizer built for the head
refuses base variables ("Unknown variable"). This callback therefore:

1. when ``fit`` hands it the model (``set_model``, before any callback's
   ``on_train_begin``), checks the schedule against the backbone's groups and
   replaces the optimizer by a per-variable-rate copy of it (see
   `tltf.training.unfreezing.rates`) built on every variable that can ever train;
2. at each stage change, sets the trainable groups, the per-group rates
   (no retrace needed) and retraces the train step, so newly unfrozen
   weights train from the very next step.

Stages depend only on the epoch (or, for ``"plateau"``, on a small state
vector stored in the optimizer), so a run resumed by
``keras.callbacks.BackupAndRestore`` continues in the right stage with the
right rates and the restored optimizer state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tltf import _compat
from tltf.backbones.layers import Backbone
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError
from tltf.model import backbone_of
from tltf.training.freezing import (
    count_trainable_params,
    train_groups,
    variable_groups,
)
from tltf.training.unfreezing import schedule as sched
from tltf.training.unfreezing.rates import (
    grouped_part,
    rebuild_optimizer,
    trainable_superset,
)

_MAX_METRICS = ("acc", "auc", "f1", "precision", "recall")


@keras.saving.register_keras_serializable(package="tltf")
class StagedUnfreezing(keras.callbacks.Callback):
    """Unfreezes the base of a tltf model by named layer group, by stage.

    What is kept and what starts fresh: when ``fit`` starts, the optimizer
    is replaced by a ``Grouped<Class>`` copy (same config) built on the head
    and every group the schedule can unfreeze. The step counter, the
    learning rate and the slots (Adam moments, momentum, ...) of every
    variable the old optimizer knew are copied; slots of base variables
    that never trained start at zero. Nothing is reset at later stage
    changes: weights that were training keep their moments, newly unfrozen
    weights start from zero moments. With Adam the step counter (and so its
    bias correction) is shared, so a newly unfrozen weight's first steps are
    up to ~3x its nominal rate; ``warmup_steps`` softens this.

    Rates: every variable's rate is the optimizer's rate (float or schedule)
    times a multiplier: ``stage_lr_decay ** stage`` for the head, times
    ``unfreeze_lr_factor`` (and ``1 / discriminative ** depth``) for base
    groups; see `tltf.training.unfreezing.schedule.stage_multipliers`. BatchNorm layers
    of the base stay in inference mode with frozen moving statistics unless
    the backbone's ``train_bn`` is set (``train_bn=True`` here sets it).

    Resuming: with ``BackupAndRestore`` a run resumes in the stage of its
    epoch, with the saved optimizer state and the scheduled rates. For
    ``"plateau"`` the stage is saved in the optimizer; a ``val_`` monitor is
    decided when validation ends, so it reaches that epoch's backup in any
    callback order; for other monitors, list this callback before
    ``BackupAndRestore``. No ``stateful=`` registration with
    `tltf.distribute.WorkerBackupAndRestore` is needed.

    Logs: each epoch's logs (History, and a TensorBoard callback listed
    after this one) get ``stage``, ``trainable_params`` and ``lr_<group>``
    (``lr_head`` too; 0 for frozen groups). With ``log_dir`` the stage
    changes are also written as TensorBoard scalars under ``unfreezing/``.

    Args:
        schedule: ``{epoch: spec}`` (specs ``"head"``, ``"all"``,
            ``"top:k"``, a group name or list of names), ``"gradual"``,
            ``"gradual:n"`` or ``"plateau"``. See `tltf.training.unfreezing.schedule`.
        unfreeze_lr_factor: Rate of base groups relative to the head.
        stage_lr_decay: Every rate is multiplied by this at each stage
            (stage k: ``stage_lr_decay ** k``), or a list of per-stage
            multipliers (stage k: ``stage_lr_decay[k]``, the last repeating).
        discriminative: None, a ratio between neighbouring groups (2.6 in
            ULMFiT), or ``(lo, hi)`` as fastai's ``slice(lo, hi)`` relative
            to the optimizer's rate (earliest group ``lo``, head ``hi``).
        warmup_steps: Newly unfrozen groups ramp linearly from 0 to their
            rate over this many steps.
        train_bn: If not None, sets the backbone's ``train_bn``.
        monitor: Metric watched by ``"plateau"``.
        patience: Epochs without improvement before ``"plateau"`` unfreezes
            the next group.
        min_delta: Smallest change that counts as an improvement.
        log_dir: Folder for TensorBoard summaries of stage changes.
        verbose: 1 prints each stage change.

    Raises:
        ConfigError: A malformed schedule or rate argument (here), or a
            schedule that does not fit the model's backbone, or a model
            that is not compiled (when ``fit`` starts).

    Example:
        >>> model.fit(data, epochs=6, callbacks=[
        ...     tltf.StagedUnfreezing({0: "head", 2: "top:1", 4: "all"})])
    """

    def __init__(
        self,
        schedule: sched.Schedule = "gradual",
        *,
        unfreeze_lr_factor: float = 0.1,
        stage_lr_decay: float | Sequence[float] = 1.0,
        discriminative: float | tuple[float, float] | None = None,
        warmup_steps: int = 0,
        train_bn: bool | None = None,
        monitor: str = "val_loss",
        patience: int = 1,
        min_delta: float = 0.0,
        log_dir: str | None = None,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        self._parsed = sched.parse_schedule(schedule)
        self.schedule = schedule if isinstance(schedule, str) else dict(self._parsed)
        self.stage_lr_decay, self.discriminative = sched.check_rates(
            unfreeze_lr_factor, stage_lr_decay, discriminative, warmup_steps
        )
        if not isinstance(patience, int) or patience < 1:
            raise ConfigError(
                f"patience must be an integer >= 1. Received: {patience!r}."
            )
        self.unfreeze_lr_factor = float(unfreeze_lr_factor)
        self.warmup_steps = warmup_steps
        self.train_bn = train_bn
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.verbose = verbose
        self._stages: list[sched.Stage] = []
        self._stage: int | None = None
        self._epoch = 0
        self._decided: int | None = None
        self._writer = None

    # --- preparing the model ---

    def set_model(self, model: keras.Model) -> None:
        """Checks the schedule and prepares the optimizer (see class doc)."""
        super().set_model(model)
        backbone = backbone_of(model)
        self._stages = self.stages_for(backbone)
        self._backbone = backbone
        self._groups = backbone.group_names
        if self.train_bn is not None:
            backbone.train_bn = bool(self.train_bn)
        if getattr(model, "optimizer", None) is None:
            raise ConfigError(
                "StagedUnfreezing needs a compiled model: call "
                "tltf.compile_model(model) or model.compile(...) first."
            )
        self._prepare_optimizer(model)
        self._paths_to_groups = variable_groups(model, backbone)
        self._stage = None

    def check(self, model: keras.Model) -> list[sched.Stage]:
        """The schedule's stages for ``model``'s backbone.

        Raises:
            ConfigError: The model has no tltf Backbone, or the schedule names
                groups it does not have (see `tltf.training.unfreezing.schedule`).
        """
        return self.stages_for(backbone_of(model))

    def stages_for(self, backbone: Backbone) -> list[sched.Stage]:
        """The schedule's stages for ``backbone`` (see `check`)."""
        return sched.resolve_stages(self._parsed, backbone.group_names, backbone.label)

    def _prepare_optimizer(self, model: keras.Model) -> None:
        ever = sorted({g for stage in self._stages for g in stage.groups})
        superset = trainable_superset(model, self._backbone, ever)
        grouped = grouped_part(model.optimizer)
        if grouped is not None and grouped.built_paths == [v.path for v in superset]:
            return
        with strategy_scope(model=model):
            optimizer = rebuild_optimizer(model.optimizer, superset)
        model.optimizer = optimizer
        _compat.set_compiled_optimizer(model, optimizer)  # .keras files save it

    # --- fit hooks ---

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Forces the first epoch to apply its stage (and retrace)."""
        self._stage = None
        self._decided = None
        if self.log_dir and self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Applies the stage of ``epoch`` if it differs from the current one."""
        self._epoch = epoch
        stage = self._stage_for_epoch(epoch)
        if stage == self._stage:
            return
        self._apply_stage(stage, epoch)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Ramps newly unfrozen groups' rates during warm-up."""
        if not self.warmup_steps or self._stage is None:
            return
        step = self._steps_before + batch
        if step <= self.warmup_steps:
            self._set_rates(ramp=min(1.0, (step + 1) / self.warmup_steps))

    def on_test_end(self, logs: dict | None = None) -> None:
        """Advances a plateau schedule on a ``val_`` metric, before epoch end.

        Deciding here, before any ``on_epoch_end``, puts the decision in a
        backup taken at this epoch's end, whatever the callback order.
        """
        name = self.monitor[4:] if self.monitor.startswith("val_") else None
        if (
            self._parsed == "plateau"
            and self._stage is not None
            and name in (logs or {})
        ):
            self._plateau_update(self._epoch, logs[name])
            self._decided = self._epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Adds the stage to the logs; advances a plateau schedule."""
        logs = {} if logs is None else logs
        logs.update(self.stage_logs())
        if self._parsed != "plateau" or self._decided == epoch:
            return
        if self.monitor in logs:
            self._plateau_update(epoch, logs[self.monitor])
        else:
            raise ConfigError(
                f"The 'plateau' schedule monitors {self.monitor!r}, which is not "
                "in the epoch logs. Pass validation data (validated every epoch) "
                "or another monitor=. "
                f"Received logs: {sorted(logs)}."
            )

    def on_train_end(self, logs: dict | None = None) -> None:
        """Closes the TensorBoard writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # --- stages and rates ---

    def stage_logs(self) -> dict[str, float]:
        """Current stage, trainable parameter count and rate of every group."""
        if self._stage is None:
            return {}
        base = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        rates = self._multipliers()
        logs = {
            "stage": float(self._stage),
            "trainable_params": float(count_trainable_params(self.model)),
        }
        for group in ["head", *self._groups]:
            logs[f"lr_{group}"] = base * rates.get(group, 0.0)
        return logs

    def _stage_for_epoch(self, epoch: int) -> int:
        if self._parsed == "plateau":
            state = self._state()
            return int(state[1]) if state[0] else 0
        return max(i for i, s in enumerate(self._stages) if s.epoch <= epoch)

    def _apply_stage(self, stage: int, epoch: int) -> None:
        model = self.model
        train_groups(self._backbone, self._stages[stage].groups)
        model.make_train_function(force=True)
        start = self._stages[stage].epoch
        if start is None:  # plateau: the start is part of the saved state
            state = self._state()
            start = int(state[4]) if state[0] and int(state[1]) == stage else epoch
            self._write_state(stage=stage, start=start)
        steps = self.params.get("steps") if self.params else None
        if epoch == start:
            self._steps_before = 0
        else:
            self._steps_before = (epoch - start) * steps if steps else math.inf
        self._stage = stage
        self._set_rates(ramp=1.0 if self._steps_before >= self.warmup_steps else 0.0)
        self._report(stage, epoch)

    def _multipliers(self) -> dict[str, float]:
        stage = self._stages[self._stage]
        return sched.stage_multipliers(
            self._stage,
            stage.groups,
            self._groups,
            unfreeze_lr_factor=self.unfreeze_lr_factor,
            stage_lr_decay=self.stage_lr_decay,
            discriminative=self.discriminative,
        )

    def _set_rates(self, ramp: float) -> None:
        rates = self._multipliers()
        if ramp < 1.0 and self._stage > 0:
            previous = set(self._stages[self._stage - 1].groups)
            for group in self._stages[self._stage].groups:
                if group not in previous:
                    rates[group] *= ramp
        groups = self._paths_to_groups
        by_path = {p: rates.get(g, 0.0) for p, g in groups.items()}
        grouped_part(self.model.optimizer).set_multipliers(by_path)

    def _report(self, stage: int, epoch: int) -> None:
        logs = self.stage_logs()
        groups = list(self._stages[stage].groups) or ["head only"]
        if self.verbose:
            rates = ", ".join(
                f"{k[3:]}={v:.3g}" for k, v in logs.items() if k.startswith("lr_") and v
            )
            # No epoch number: the progress line that follows gives it, counted
            # as the user counts (fine_tune's frozen epochs not included).
            print(
                f"\nStagedUnfreezing: stage {stage} "
                f"({', '.join(groups)}), {int(logs['trainable_params']):,} "
                f"trainable parameters; rates {rates}"
            )
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default(step=epoch):
                for key, value in logs.items():
                    tf.summary.scalar(f"unfreezing/{key}", value)
                tf.summary.text("unfreezing/groups", ", ".join(groups))
            self._writer.flush()

    # --- plateau state, stored in the optimizer so it is saved with it ---

    def _state(self) -> np.ndarray:
        return np.array(grouped_part(self.model.optimizer).schedule_state)

    def _write_state(self, **values: float) -> None:
        keys = ("initialized", "stage", "best", "wait", "start")
        state = self._state()
        if not state[0]:
            state[:] = (1.0, 0.0, math.inf, 0.0, 0.0)
        for key, value in values.items():
            state[keys.index(key)] = value
        grouped_part(self.model.optimizer).schedule_state.assign(
            state.astype("float32")
        )

    def _plateau_update(self, epoch: int, value: float) -> None:
        sign = -1.0 if any(k in self.monitor for k in _MAX_METRICS) else 1.0
        state = self._state()
        value = sign * float(value)
        if value < state[2] - self.min_delta:
            self._write_state(best=value, wait=0)
            return
        wait = int(state[3]) + 1
        if wait >= self.patience and self._stage < len(self._stages) - 1:
            self._write_state(stage=self._stage + 1, wait=0, start=epoch + 1)
        else:
            self._write_state(wait=wait)

    def get_config(self) -> dict[str, Any]:
        """Arguments to rebuild this callback (schedule epochs as ints)."""
        return {
            "schedule": self.schedule,
            "unfreeze_lr_factor": self.unfreeze_lr_factor,
            "stage_lr_decay": self.stage_lr_decay,
            "discriminative": self.discriminative,
            "warmup_steps": self.warmup_steps,
            "train_bn": self.train_bn,
            "monitor": self.monitor,
            "patience": self.patience,
            "min_delta": self.min_delta,
            "log_dir": self.log_dir,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> StagedUnfreezing:
        """Rebuilds the callback from `get_config`."""
        config = dict(config)
        for key in ("discriminative", "stage_lr_decay"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)
