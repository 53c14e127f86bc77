"""What a model's traced Keras functions depend on, so that a change renews them.

Keras traces a model's train, test and predict steps once and reuses the
graphs until ``compile`` runs again. A graph holds what was true when it was
traced: which variables exist (LoRA adapters are new variables), which are
trainable (the train step updates the list it saw), which optimizer updates
them, and Python settings of tltf layers (a head's temperature, a backbone's
``train_bn``). `tltf.TransferModel` compares that state with the current one
whenever Keras asks for a function, and traces again when it changed: every
tltf function that changes a model (`tltf.enable_lora`,
`tltf.set_trainable_groups`, calibration, `tltf.adapt_domain`, ...) and
every change a user makes by hand is seen in one place.

A built optimizer refuses variables it was not built on ("Unknown
variable"). When the trainable variables change, `match_optimizer` gives the
model a copy of its optimizer built on the new ones, with the step count and
the slots of the variables both know carried over.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import keras

from tltf import _compat
from tltf.distribute.scope import strategy_scope

#: The kinds of traced function of a Keras model.
KINDS = ("train", "test", "predict")


def renewed(model: keras.Model, kind: str, make: Callable, force: bool) -> Any:
    """Keras' ``make_<kind>_function``, forced when the traced state changed.

    Args:
        model: The model whose function is asked for.
        kind: ``"train"``, ``"test"`` or ``"predict"``.
        make: The model's Keras ``make_<kind>_function`` (takes ``force``).
        force: Whether the caller forces a new trace anyway.

    Returns:
        What ``make`` returns.
    """
    states = _TracedStates.of(model)
    state = traced_state(model, kind)
    stale = force or states.by_kind.get(kind) != state
    if kind == "train" and stale:
        match_optimizer(model)
        state = traced_state(model, kind)  # The optimizer may be new.
    function = make(force=stale)
    states.by_kind[kind] = state
    return function


@contextlib.contextmanager
def quiet_retracing() -> Iterator[None]:
    """Drops TensorFlow's "triggered tf.function retracing" warnings inside.

    A model traced again on purpose (a new stage, new adapters) is not the
    retracing in a loop that the warning is about. Blocks may nest.
    """
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.addFilter(_RETRACING)
    _RETRACING.depth += 1
    try:
        yield
    finally:
        _RETRACING.depth -= 1
        if not _RETRACING.depth:
            tf_logger.removeFilter(_RETRACING)


class _RetracingFilter(logging.Filter):
    depth = 0

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in str(record.msg)


_RETRACING = _RetracingFilter()


def traced_state(model: keras.Model, kind: str) -> tuple:
    """What the ``kind`` function of ``model`` depends on besides variable values.

    Args:
        model: A Keras model.
        kind: ``"train"``, ``"test"`` or ``"predict"``.

    Returns:
        A tuple that changes when a traced function of that kind would have
        to be traced again: the identity of every variable (and, for the
        train step, its trainability and the optimizer), and every tltf
        layer's `traced_settings`. (A train step replaced for a while,
        `TransferModel.train_step_replaced`, drops the traced function
        itself.)
    """
    variables = tuple(id(v) for v in model.weights)
    settings = tuple(
        layer.traced_settings()
        for layer in model.layers
        if callable(getattr(layer, "traced_settings", None))
    )
    if kind != "train":
        return variables, settings
    trainable = tuple(id(v) for v in model.trainable_weights)
    return variables, settings, trainable, id(model.optimizer)


def match_optimizer(model: keras.Model) -> None:
    """Gives ``model`` an optimizer built on exactly its trainable variables.

    Nothing changes when the optimizer is not built yet and the model is not
    built either, or when it is already built on the trainable variables
    (or, for an optimizer that holds the slots of every variable a schedule
    may unfreeze, `holds_frozen_slots`, on a superset of them). Otherwise
    the optimizer is built now, or replaced by `carried_optimizer`. Keras
    reloads a saved model's optimizer built on the trainable variables, so
    a model saved after this reloads its optimizer state whole.

    Args:
        model: A compiled or uncompiled Keras model.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not model.built:
        return
    trainable = list(model.trainable_variables)
    if not optimizer.built:
        with strategy_scope(model=model):
            optimizer.build(trainable)
        return
    if _fits(optimizer, trainable):
        return
    with strategy_scope(model=model):
        optimizer = carried_optimizer(optimizer, trainable)
    model.optimizer = optimizer
    _compat.set_compiled_optimizer(model, optimizer)  # .keras files save it


def carried_optimizer(
    optimizer: keras.optimizers.Optimizer, variables: list
) -> keras.optimizers.Optimizer:
    """A copy of ``optimizer`` (same class and config) built on ``variables``.

    The step counter, the learning rate and the slots of every variable both
    are built on are copied; slots of new variables start as the optimizer
    starts them.

    Args:
        optimizer: A Keras optimizer (a ``LossScaleOptimizer`` too).
        variables: The variables to build the copy on.

    Returns:
        The new, built optimizer.
    """
    fresh = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    fresh.build(variables)
    copy_by_name(optimizer.variables, fresh.variables)
    return fresh


def copy_by_name(sources: list, targets: list) -> None:
    """Copies values between optimizer variables of equal name and shape.

    An optimizer names a slot after the model variable it belongs to, so
    equal names mean the same model variable's slot.
    """
    old = {v.name: v for v in sources}
    for variable in targets:
        source = old.get(variable.name)
        if source is not None and tuple(source.shape) == tuple(variable.shape):
            variable.assign(source)


def holds_frozen_slots(optimizer: Any) -> bool:
    """Whether ``optimizer`` is built on every variable that may ever train.

    `tltf.StagedUnfreezing`'s per-group-rate optimizers are (their class
    sets ``holds_frozen_slots = True``, and they reload a saved state of any
    size); so is a ``LossScaleOptimizer`` around one.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return bool(getattr(inner, "holds_frozen_slots", False))


class _TracedStates:
    """The state each function of a model was last traced with (untracked by
    Keras: a plain object, not a list or dict)."""

    def __init__(self) -> None:
        self.by_kind: dict[str, tuple] = {}

    @classmethod
    def of(cls, model: keras.Model) -> _TracedStates:
        states = getattr(model, "_tltf_traced_states", None)
        if states is None:
            states = cls()
            model._tltf_traced_states = states
        return states


def _fits(optimizer: keras.optimizers.Optimizer, trainable: list) -> bool:
    if not _compat.optimizer_knows(optimizer, trainable):
        return False
    if holds_frozen_slots(optimizer):
        return True
    return _compat.optimizer_built_count(optimizer) == len(trainable)
