"""Per-variable learning rates for any Keras optimizer (discriminative rates).

Keras optimizers have one learning rate. Scaling gradients is no substitute
for a lower rate (Adam divides it out), so tltf scales the rate itself:
`grouped_optimizer_class` derives, from any optimizer class, a subclass whose
``update_step`` multiplies the rate of each variable by its entry in a
non-trainable vector, ``lr_multipliers`` (one entry per variable the
optimizer was built on). Changing a multiplier is a variable assignment: no
retrace, works under a distribution strategy, and is saved with the
optimizer's other variables (``.keras`` files, ``BackupAndRestore``).

Subclasses of the built-in optimizers are registered at import as
``tltf>GroupedAdam``, ``tltf>GroupedSGD``, ... so saved models reload with no
extra code. The config of a grouped optimizer is that of its parent class.

Decoupled weight decay (AdamW, Lion) still uses the base rate; only the
gradient step is scaled.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

from tltf import _compat
from tltf.backbones.layers import Backbone
from tltf.errors import ConfigError
from tltf.traced import copy_by_name
from tltf.training.freezing import freeze_outside_adapters, train_groups

_CLASSES: dict[type, type] = {}
_BUILTIN = (
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "RMSprop",
    "SGD",
)


class GroupLearningRates:
    """Mixin: multiplies each variable's learning rate by its own factor.

    Extra optimizer variables, created at ``build`` after the parent's:
    ``lr_multipliers`` (float32, one per built variable, initially 1) and
    ``schedule_state`` (float32, 5 values that `tltf.StagedUnfreezing` uses to
    persist its progress; unused by the optimizer itself).
    """

    #: Built on every variable a schedule may unfreeze, and reloads a saved
    #: state of another size (`tltf.traced.holds_frozen_slots`).
    holds_frozen_slots = True

    def build(self, variables: list) -> None:
        """Builds the parent's slots, then the multipliers and schedule state."""
        if self.built:
            return
        super().build(variables)
        self._built_paths = [v.path for v in variables]
        self.lr_multipliers = self.add_variable(
            (len(variables),), initializer="ones", name="lr_multipliers"
        )
        self.schedule_state = self.add_variable(
            (5,), initializer="zeros", name="schedule_state"
        )
        self._load_deferred_state()

    @property
    def built_paths(self) -> list[str]:
        """Paths of the variables the optimizer was built on, in order."""
        return list(getattr(self, "_built_paths", []))

    def set_multipliers(self, by_path: dict[str, float]) -> None:
        """Assigns the rate multiplier of each variable, keyed by its path.

        Variables the optimizer knows but ``by_path`` omits get 0.
        """
        values = [float(by_path.get(path, 0.0)) for path in self.built_paths]
        self.lr_multipliers.assign(np.asarray(values, "float32"))

    def update_step(self, gradient, variable, learning_rate):
        """The parent's step with ``learning_rate * multiplier[variable]``."""
        scale = self.lr_multipliers[_compat.variable_index(self, variable)]
        learning_rate = ops.cast(learning_rate, variable.dtype) * ops.cast(
            scale, variable.dtype
        )
        return super().update_step(gradient, variable, learning_rate)

    def load_own_variables(self, store: Any) -> None:
        """Loads saved state; defers it when built on fewer variables.

        A model saved mid-schedule was built on every variable that can
        train; reloading builds it on the currently trainable ones only.
        The saved values are then kept until the optimizer (or a copy made
        by `rebuild_optimizer`) is built on a list of the saved length.
        """
        if len(store.keys()) == len(self.variables):
            super().load_own_variables(store)
            return
        self._deferred_state = [
            np.array(store[str(i)]) for i in range(len(store.keys()))
        ]

    def _load_deferred_state(self) -> None:
        state = getattr(self, "_deferred_state", None)
        if state is None:
            return
        self._deferred_state = None
        shapes = [tuple(v.shape) for v in self.variables]
        if shapes != [tuple(np.shape(value)) for value in state]:
            warnings.warn(
                f"The saved state of optimizer '{self.name}' ({len(state)} "
                f"variables) does not fit its variables now ({len(shapes)}), "
                "e.g. because the unfreezing schedule changed; the optimizer "
                "state starts fresh.",
                stacklevel=2,
            )
            return
        for variable, value in zip(self.variables, state):
            variable.assign(value)


def grouped_optimizer_class(cls: type) -> type:
    """Returns the per-variable-rate subclass of an optimizer class.

    Args:
        cls: A ``keras.optimizers.Optimizer`` subclass (or a grouped one).

    Returns:
        A subclass named ``Grouped<Name>``, registered as
        ``tltf>Grouped<Name>``. Call this before loading a model saved with
        a grouped custom optimizer.

    Raises:
        ConfigError: ``cls`` is not a single Keras optimizer (e.g. a
            LossScaleOptimizer wrapper).
    """
    if issubclass(cls, GroupLearningRates):
        return cls
    if cls in _CLASSES:
        return _CLASSES[cls]
    wrappers = (keras.optimizers.LossScaleOptimizer, keras.optimizers.MultiOptimizer)
    if not issubclass(cls, keras.optimizers.Optimizer) or issubclass(cls, wrappers):
        raise ConfigError(
            "Per-group learning rates need a single Keras optimizer (Adam, SGD, "
            "...), not a wrapper such as LossScaleOptimizer (mixed_float16) or "
            f"MultiOptimizer. Received: {cls.__name__}."
        )
    name = f"Grouped{cls.__name__}"
    grouped = type(
        name,
        (GroupLearningRates, cls),
        {"__doc__": f"`{cls.__name__}` with per-variable learning rates."},
    )
    grouped = keras.saving.register_keras_serializable(package="tltf", name=name)(
        grouped
    )
    _CLASSES[cls] = grouped
    return grouped


def rebuild_optimizer(
    optimizer: keras.optimizers.Optimizer, variables: list
) -> keras.optimizers.Optimizer:
    """A grouped copy of ``optimizer`` built on ``variables``, state carried.

    Kept from ``optimizer`` (matched by optimizer-variable name, i.e. by the
    model variable they belong to): the step counter, the learning rate and
    every slot (Adam moments, momentum, ...) of variables it was built on;
    a deferred saved state whose shapes match (see `load_own_variables`).
    Starting fresh (zeros, the optimizer's own initial values): slots of
    variables it did not know, i.e. newly unfrozen weights.

    A ``LossScaleOptimizer`` (mixed_float16) is rebuilt around a grouped
    copy of its inner optimizer, keeping its loss scale and step counter.

    Args:
        optimizer: The model's current optimizer (built or not).
        variables: Every variable that may ever train, in a stable order.

    Returns:
        A new, built optimizer of class ``Grouped<Name>`` (or a
        ``LossScaleOptimizer`` around one).
    """
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        config = optimizer.get_config()
        config.pop("inner_optimizer")
        inner = rebuild_optimizer(optimizer.inner_optimizer, variables)
        wrapper = keras.optimizers.LossScaleOptimizer(inner, **config)
        wrapper.build(variables)
        copy_by_name(optimizer.variables, wrapper.variables)
        return wrapper
    cls = grouped_optimizer_class(type(optimizer))
    fresh = cls.from_config(optimizer.get_config())
    deferred = getattr(optimizer, "_deferred_state", None)
    if deferred is not None:
        fresh._deferred_state = deferred
    fresh.build(variables)
    if getattr(fresh, "_deferred_state", None) is None and deferred is not None:
        return fresh
    copy_by_name(optimizer.variables, fresh.variables)
    return fresh


def grouped_part(optimizer: keras.optimizers.Optimizer) -> GroupLearningRates | None:
    """The per-variable-rate optimizer inside ``optimizer``, or None."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer if isinstance(optimizer, GroupLearningRates) else None


def trainable_superset(
    model: keras.Model, backbone: Backbone, groups: list[str]
) -> list:
    """Variables of ``model`` that are trainable once ``groups`` of its
    ``backbone`` are unfrozen.

    Trainable flags are restored afterwards, layer by layer.
    """
    layers = _compat.sublayers(backbone)
    flags = [layer.trainable for layer in layers]
    try:
        train_groups(backbone, groups)
        return list(model.trainable_variables)
    finally:
        for layer, flag in zip(layers, flags):
            layer.trainable = flag
        freeze_outside_adapters(backbone)  # the flags above reset LoRA kernels


for _name in _BUILTIN:
    if hasattr(keras.optimizers, _name):
        grouped_optimizer_class(getattr(keras.optimizers, _name))
