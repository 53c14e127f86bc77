"""Every private name of Keras, KerasTuner, TensorFlow and TF Hub that tltf uses.

No other tltf module reads an attribute, calls a method, overrides a method
or imports a module that another library keeps private (a leading ``_``,
``keras.src``, ``tensorflow.python``). Each hook below says which private name
it relies on, what tltf takes it to mean, and what happens when it is
missing. ``tests/test_compat.py`` checks each meaning on the installed
versions, so a release that changes one fails there first.

This module imports only the standard library and TensorFlow at load time
(Keras, KerasTuner and TF Hub inside the hooks that need them):
``tltf/export/check.py`` loads it by path in a process that must not import
Keras.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import tensorflow as tf

if TYPE_CHECKING:
    import keras
    import keras_tuner as kt

T = TypeVar("T", bound=type)

# --- TensorFlow: strategies ---


def default_strategy() -> tf.distribute.Strategy:
    """TensorFlow's default one-device strategy, even inside another scope.

    Relies on ``tensorflow.python.distribute.distribute_lib._get_default_strategy``
    (the process-wide default strategy object that ``tf.distribute.get_strategy()``
    returns outside any scope). Outside a scope the public call is used; inside
    one there is no public way, so a missing name raises ImportError/AttributeError.
    """
    if not tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    from tensorflow.python.distribute import distribute_lib

    return distribute_lib._get_default_strategy()


def is_default_strategy(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is TensorFlow's default (no-op) strategy.

    Relies on `default_strategy` (a singleton). Fallback when the private
    name is missing: the class name ``_DefaultDistributionStrategy``.
    """
    try:
        return strategy is default_strategy()
    except (ImportError, AttributeError):
        return type(strategy).__name__ == "_DefaultDistributionStrategy"


# --- TensorFlow: tf.data and ops ---


def dataset_graph(ds: tf.data.Dataset) -> tf.compat.v1.GraphDef:
    """The GraphDef of a dataset's pipeline (its ops and functions).

    Relies on ``tf.data.Dataset._as_serialized_graph()`` (a scalar string
    tensor holding the serialized GraphDef). No fallback.
    """
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(ds._as_serialized_graph().numpy())
    return graph


def dataset_shuffles(ds: tf.data.Dataset) -> bool:
    """Whether ``ds`` or any dataset it reads from shuffles its elements.

    Relies on ``tf.data.Dataset._inputs()`` (the datasets a transformation
    reads) and on TF naming its shuffle dataset class ``_ShuffleDataset``.
    Fallback: a dataset without ``_inputs`` counts as having no inputs.
    """
    pending = [ds]
    while pending:
        current = pending.pop()
        if "Shuffle" in type(current).__name__:
            return True
        pending.extend(getattr(current, "_inputs", list)())
    return False


def op_registered(op_type: str) -> bool:
    """Whether this TensorFlow process can run graph op ``op_type``.

    Relies on ``tensorflow.python.framework.op_def_registry.get`` (the OpDef
    of a registered op, None for an unknown one). No fallback.
    """
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


# --- TF Hub ---


def hub_cache_dir(handle: str) -> str | None:
    """The folder TF Hub caches a URL handle's download in.

    Relies on ``tensorflow_hub.compressed_module_resolver._module_dir``.
    Fallback: None (treated as not cached) when it is missing or fails.
    """
    try:
        from tensorflow_hub import compressed_module_resolver as cmr

        return str(cmr._module_dir(handle))
    except Exception:  # noqa: BLE001 - private API: treat as not cached.
        return None


# --- Keras: models and training ---


def model_strategy(model: keras.Model) -> tf.distribute.Strategy | None:
    """The strategy whose scope ``model`` was created in; None if none.

    Relies on ``Model._distribute_strategy`` (Keras' TF trainer sets it at
    construction: the current strategy, or None outside any scope; the
    public ``distribute_strategy`` falls back to the current one). Fallback:
    None.
    """
    return getattr(model, "_distribute_strategy", None)


class BuiltBeforeTracing:
    """Mixin for ``keras.Model`` subclasses: ``fit`` builds before it traces.

    Outside a distribution strategy, Keras' TF trainer defers building the
    optimizer's and the compiled metrics' variables to the first trace of the
    train step (``TensorFlowTrainer._maybe_symbolic_build`` returns early).
    Variables created inside a ``tf.function``'s first trace can make it
    trace a second time: `tltf.distill`'s distiller traced its step twice
    (MiniLM student: 8.1 CPU s of tracing, 3.3 with this). ``fit`` here
    builds them first from the data's shapes, as Keras does under a strategy
    (``Trainer._symbolic_build``). It costs a symbolic pass of the model, so
    it is for models whose first trace is known to repeat: a builder's
    `TransferModel` measured no second trace and ~2 CPU s more with it
    (MiniLM), so it does not use it.
    Only ``fit``: ``evaluate`` keeps Keras' order, so that it never builds an
    optimizer on the weights that train today (a built optimizer refuses the
    weights unfrozen later). Relies on ``_maybe_symbolic_build(iterator=...)``
    and ``_symbolic_build(data_batch=...)``; the batch's shapes come from
    `_symbolic_batch`. Fallback: Keras' own order when they are unknown.
    """

    _build_in_fit = False

    def fit(self, *args: Any, **kwargs: Any):
        self._build_in_fit = True
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._build_in_fit = False

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        building, self._build_in_fit = self._build_in_fit, False
        if not building or model_strategy(self) is not None:
            return super()._maybe_symbolic_build(
                iterator=iterator, data_batch=data_batch
            )
        if data_batch is None and iterator is not None:
            data_batch = _symbolic_batch(iterator)
        if data_batch is not None:
            self._symbolic_build(data_batch=data_batch)


def _symbolic_batch(epoch_iterator: Any) -> Any:
    """KerasTensors shaped like an epoch iterator's batches; None if unknown.

    Read from the dataset's ``element_spec``, without making an iterator: a
    batch drawn here would change the order of a reshuffling dataset's
    epochs. Relies on ``TFEpochIterator._distributed_dataset`` (the dataset
    itself outside a strategy). Fallback: None (Keras builds in the trace).
    """
    import keras

    spec = getattr(
        getattr(epoch_iterator, "_distributed_dataset", None), "element_spec", None
    )
    flat = tf.nest.flatten(spec) if spec is not None else []
    if not flat or not all(
        isinstance(s, tf.TensorSpec) and s.shape.rank is not None for s in flat
    ):
        return None
    return tf.nest.map_structure(
        lambda s: keras.KerasTensor(tuple(s.shape.as_list()), s.dtype.name), spec
    )


def set_initial_epoch(model: keras.Model, epoch: int) -> None:
    """Makes the coming (or current) ``fit`` of ``model`` start at ``epoch``.

    Relies on ``Model._initial_epoch`` (read by ``fit`` after
    ``on_train_begin``, overriding its ``initial_epoch`` argument; Keras'
    ``BackupAndRestore`` sets it the same way). No fallback.
    """
    model._initial_epoch = epoch


def can_symbolic_build(model: keras.Model) -> bool:
    """Whether `symbolic_build` is available in this Keras."""
    return hasattr(model, "_symbolic_build")


def symbolic_build(model: keras.Model, data_batch: Any) -> None:
    """Builds a compiled model's optimizer and metric variables from a batch.

    Relies on ``Trainer._symbolic_build(data_batch=...)`` (what ``fit``
    runs before its first step). Check `can_symbolic_build` first.
    """
    model._symbolic_build(data_batch=data_batch)


def compile_arguments(model: keras.Model) -> dict[str, Any] | None:
    """The arguments ``model.compile`` got, as objects; None if not compiled.

    Relies on ``Model._compile_config.config`` (a dict of the ``compile``
    arguments, kept even when they cannot be serialized). Fallback: None.
    """
    config = getattr(model, "_compile_config", None)
    return dict(config.config) if config is not None else None


def set_compiled_optimizer(model: keras.Model, optimizer: Any) -> None:
    """Records ``optimizer`` as the one ``model`` was compiled with.

    ``model.save("x.keras")`` writes the optimizer of the compile config;
    after replacing ``model.optimizer``, this makes the file hold the new one.
    Relies on ``Model._compile_config.config["optimizer"]``. Fallback:
    nothing (no compile config, nothing to update).
    """
    config = getattr(model, "_compile_config", None)
    if config is not None:
        config.config["optimizer"] = optimizer


@contextlib.contextmanager
def saving_for_inference(model: keras.Model) -> Iterator[None]:
    """Within the block, ``model.save`` writes no optimizer and no compile settings.

    The file holds the architecture and the weights (a model loaded from it
    is not compiled), not the optimizer's slots, which for Adam are twice the
    trainable weights. Keras 3's ``save`` has no ``include_optimizer``: it
    writes the optimizer it finds on ``model.optimizer`` and the compile
    config while ``model.compiled`` is true. Relies on both attributes;
    they are restored on exit, so ``model`` trains on as before.
    """
    optimizer = getattr(model, "optimizer", None)
    compiled = getattr(model, "compiled", False)
    model.optimizer = None
    model.compiled = False
    try:
        yield
    finally:
        model.optimizer = optimizer
        model.compiled = compiled


def keras_mask(tensor: Any) -> Any | None:
    """The padding mask Keras attached to ``tensor``; None without one.

    Relies on the ``_keras_mask`` attribute that Keras' masking sets on a
    layer's outputs (``Masking``, ``Embedding(mask_zero=True)``). Fallback:
    None.
    """
    return getattr(tensor, "_keras_mask", None)


# --- Keras: layers and variables ---


def sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer`` and every layer nested in it, at any depth (``layer`` first).

    Relies on ``Layer._flatten_layers(include_self=True, recursive=True)``.
    Fallback: a walk over the public ``.layers`` of nested models.
    """
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=True, recursive=True))
    found, pending, seen = [], [layer], set()
    while pending:
        current = pending.pop(0)
        if id(current) not in seen:
            seen.add(id(current))
            found.append(current)
            pending.extend(getattr(current, "layers", []))
    return found


def symbolic_calls(layer: keras.layers.Layer) -> int:
    """How many times ``layer`` was called on symbolic (functional) inputs.

    Relies on ``Layer._inbound_nodes`` (one node per functional call).
    Fallback: 0 (unknown).
    """
    return len(getattr(layer, "_inbound_nodes", ()))


def track_variable(layer: keras.layers.Layer, variable: keras.Variable) -> None:
    """Adds an existing variable to ``layer``'s (non-)trainable weights.

    Relies on ``Layer._track_variable`` (what ``add_weight`` does with the
    variable it creates). No fallback.
    """
    layer._track_variable(variable)


def keras_variable_around(
    variable: tf.Variable, name: str, trainable: bool
) -> keras.Variable:
    """A Keras variable that wraps ``variable`` in place (no copy).

    Functions that read ``variable`` (a loaded SavedModel's) see every
    assign, training step or weight load of the Keras variable. Relies on
    the TF backend's ``KerasVariable._initialize_with_initializer`` (called
    by ``__init__`` to create the value) and ``._value`` (the ``tf.Variable``
    behind it). No fallback.
    """
    return _module_variable_class()(variable, name, trainable)


@functools.cache
def _module_variable_class() -> type:
    import keras

    def unused(shape: Any, dtype: Any = None) -> None:
        raise RuntimeError("A module variable is never initialized by Keras.")

    class ModuleVariable(keras.Variable):
        def __init__(self, variable: tf.Variable, name: str, trainable: bool) -> None:
            self._module_variable = variable
            super().__init__(
                initializer=unused,
                shape=tuple(variable.shape),
                dtype=variable.dtype.name,
                trainable=trainable,
                name=name,
            )

        def _initialize_with_initializer(self, initializer: Any) -> None:
            self._value = self._module_variable

    return ModuleVariable


# --- Keras: optimizers ---


def configured_learning_rate(optimizer: keras.optimizers.Optimizer) -> Any:
    """The learning rate as configured: a ``keras.Variable`` for a float,
    else the schedule or callable given.

    Relies on ``Optimizer._learning_rate``. Fallback: the public
    ``learning_rate`` (a schedule then shows as its current value).
    """
    configured = getattr(optimizer, "_learning_rate", None)
    return optimizer.learning_rate if configured is None else configured


def variable_index(optimizer: keras.optimizers.Optimizer, variable: Any) -> int:
    """The position of ``variable`` in the list the optimizer was built on.

    Relies on ``Optimizer._get_variable_index``. No fallback.
    """
    return optimizer._get_variable_index(variable)


def optimizer_knows(optimizer: keras.optimizers.Optimizer, variables: list) -> bool:
    """Whether a built optimizer was built on (at least) all of ``variables``.

    Relies on ``Optimizer._trainable_variables_indices`` keyed by
    ``Optimizer._var_key(variable)``. Fallback: False (unknown).
    """
    try:
        known = optimizer._trainable_variables_indices
        return all(optimizer._var_key(v) in known for v in variables)
    except AttributeError:
        return False


def optimizer_built_count(optimizer: keras.optimizers.Optimizer) -> int:
    """How many variables a built optimizer was built on.

    Relies on ``Optimizer._trainable_variables`` (the list ``build`` got, empty
    before). Fallback: -1 (unknown).
    """
    built_on = getattr(optimizer, "_trainable_variables", None)
    return -1 if built_on is None else len(built_on)


# --- Keras: callbacks ---


def start_progbar(logger: keras.callbacks.ProgbarLogger) -> None:
    """Starts a new progress bar in ``logger``, as its ``on_epoch_begin`` does.

    For a subclass that prints its own epoch line. Relies on
    ``ProgbarLogger._reset_progbar`` and ``_maybe_init_progbar``. Fallback:
    none (an ``AttributeError`` names the missing method).
    """
    logger._reset_progbar()
    logger._maybe_init_progbar()


def backup_hooks(cls: T) -> T:
    """Class decorator for a ``keras.callbacks.BackupAndRestore`` subclass.

    Routes the base class's private steps to public methods of ``cls``:
    ``_load_model()`` (run by ``on_train_begin``) to ``cls.restore_backup()``
    and ``_save_model()`` (run by ``on_epoch_end`` / ``on_train_batch_end``
    as ``save_freq`` says) to ``cls.write_backup()``. No fallback.
    """
    cls._load_model = cls.restore_backup
    cls._save_model = cls.write_backup
    return cls


def backup_position(callback: keras.callbacks.BackupAndRestore) -> tuple[int, int]:
    """``(epoch, batch)``: where a ``BackupAndRestore`` backup resumes.

    Relies on ``BackupAndRestore._current_epoch`` (epochs completed) and
    ``._last_batch_seen`` (index of the last batch seen in the current
    epoch, 0 after an epoch ends). No fallback.
    """
    return callback._current_epoch, callback._last_batch_seen


# --- Keras: the TF trainer under MultiWorkerMirroredStrategy ---


def patch_multiworker_fit() -> None:
    """Lets Keras 3 ``fit`` run under MultiWorkerMirroredStrategy (idempotent).

    Before the first step, Keras' TF trainer averages the first batch across
    replicas with ``strategy.reduce`` only to learn its shapes; the
    multi-worker strategy cannot reduce a nested batch, so ``fit`` fails
    (keras-team/keras#20585). Shapes are the same on every replica, so the
    patched ``TensorFlowTrainer._maybe_symbolic_build`` reads them from this
    worker's first replica instead. Keras also averages per-replica metric
    results with a reduction the multi-worker strategy rejects for scalars
    (``keras.src.backend.tensorflow.trainer.reduce_per_replica``); metric
    variables are already summed across all replicas, so the first local
    replica's result is the global one (reduction ``"first"``). Other
    strategies keep Keras' own code path. Relies on those two names and on
    ``_distribute_strategy``/``_symbolic_build``. No fallback.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    cls = tf_trainer.TensorFlowTrainer
    if getattr(cls, "_tltf_multiworker_patch", False):
        return
    original = cls._maybe_symbolic_build
    multiworker = tf.distribute.MultiWorkerMirroredStrategy

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = model_strategy(self)
        if iterator is None or not isinstance(strategy, multiworker):
            return original(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(_first_replica, next(batches))
            break
        with strategy.scope():
            symbolic_build(self, data_batch)

    original_reduce = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction == "auto" and isinstance(strategy, multiworker):
            reduction = "first"
        return original_reduce(values, strategy, reduction)

    cls._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    cls._tltf_multiworker_patch = True


def _first_replica(value: Any) -> Any:
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


# --- KerasTuner ---


def tuner_checkpoint_path(tuner: kt.Tuner, trial_id: str) -> str:
    """The weights file ``tuner.save_model(trial_id, model)`` writes.

    Relies on ``kt.Tuner._get_checkpoint_fname``. No fallback.
    """
    return tuner._get_checkpoint_fname(trial_id)


def tuner_build(tuner: kt.Tuner, hp: kt.HyperParameters) -> keras.Model:
    """KerasTuner's own build of a trial's model (in the tuner's strategy,
    with its compile overrides).

    Relies on ``kt.Tuner._build_hypermodel``. No fallback.
    """
    import keras_tuner as kt

    return kt.Tuner._build_hypermodel(tuner, hp)


def tuner_build_hook(cls: T) -> T:
    """Class decorator for a ``kt.Tuner`` subclass: its method
    ``build_trial_model(hp)`` replaces KerasTuner's private build step.

    ``kt.Tuner._build_hypermodel(hp)`` builds the model of every trial and of
    ``load_model``; ``build_trial_model`` gets KerasTuner's own result from
    `tuner_build` and may change it (``kt.Hyperband`` overrides the same
    method to warm-start from an earlier bracket). No fallback.
    """
    cls._build_hypermodel = cls.build_trial_model
    return cls
