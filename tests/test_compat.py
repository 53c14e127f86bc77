"""Each hook of `tltf._compat` keeps its meaning on the installed libraries.

`tltf/_compat.py` is the one module that reads private names of Keras,
KerasTuner, TensorFlow and TF Hub. Every test here exercises real behaviour
of one hook, so a release that renames or changes one of those names fails
here with the hook's name in the test's name.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import socket

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

from tltf import _compat


def _dense_model(units: int = 2, compiled: bool = True) -> keras.Model:
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(units)(inputs))
    if compiled:
        model.compile(keras.optimizers.Adam(1e-2), "mse", metrics=["mae"])
    return model


def _arrays(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 3)).astype("float32"), np.zeros((n, 2), "float32")


@pytest.fixture(scope="module")
def one_cpu_mirrored() -> tf.distribute.Strategy:
    return tf.distribute.MirroredStrategy(["/cpu:0"])


# --- TensorFlow ---


def test_default_strategy_is_the_one_outside_any_scope(one_cpu_mirrored):
    outside = tf.distribute.get_strategy()
    with one_cpu_mirrored.scope():
        assert tf.distribute.get_strategy() is one_cpu_mirrored
        assert _compat.default_strategy() is outside
        assert _compat.is_default_strategy(outside)
        assert not _compat.is_default_strategy(one_cpu_mirrored)
    assert not _compat.is_default_strategy(tf.distribute.OneDeviceStrategy("/cpu:0"))


def _graph_ops(ds: tf.data.Dataset) -> set[str]:
    graph = _compat.dataset_graph(ds)
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def test_dataset_graph_names_the_reader_ops(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("a\nb\n")
    ops = _graph_ops(tf.data.TextLineDataset(str(path)).batch(2))
    assert {"TextLineDataset", "BatchDatasetV2"} <= ops
    numbers = _graph_ops(tf.data.Dataset.range(3))
    assert "RangeDataset" in numbers and "TextLineDataset" not in numbers


def test_dataset_shuffles_finds_a_shuffle_upstream():
    numbers = tf.data.Dataset.range(10)
    assert not _compat.dataset_shuffles(numbers.map(lambda x: x + 1).batch(2))
    assert _compat.dataset_shuffles(numbers.shuffle(10).map(lambda x: x).batch(2))
    zipped = tf.data.Dataset.zip((numbers, numbers.shuffle(4))).batch(2).prefetch(1)
    assert _compat.dataset_shuffles(zipped)


def test_op_registered_knows_core_ops_only():
    assert _compat.op_registered("MatMul")
    assert _compat.op_registered("StringSplitV2")
    assert not _compat.op_registered("TltfNoSuchOp")


# --- TF Hub ---


def test_hub_cache_dir_is_where_hub_resolve_looks(tmp_path, monkeypatch):
    hub = pytest.importorskip("tensorflow_hub")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))

    def no_network(*args, **kwargs):
        raise OSError("tests never touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    handle = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_96/feature_vector/5"
    folder = _compat.hub_cache_dir(handle)
    sha1 = hashlib.sha1(handle.encode("utf8")).hexdigest()
    assert folder == os.path.join(str(tmp_path), sha1)
    os.makedirs(folder)
    (tmp_path / sha1 / "saved_model.pb").write_bytes(b"")
    assert hub.resolve(handle) == folder  # A filled folder is used, not fetched.


# --- Keras: models and training ---


def test_model_strategy_is_the_creating_scope(one_cpu_mirrored):
    assert _compat.model_strategy(_dense_model(compiled=False)) is None
    with one_cpu_mirrored.scope():
        inside = _dense_model(compiled=False)
    assert _compat.model_strategy(inside) is one_cpu_mirrored
    assert inside.distribute_strategy is one_cpu_mirrored


def test_set_initial_epoch_in_on_train_begin_skips_epochs():
    model = _dense_model()
    started = []

    class Resume(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            _compat.set_initial_epoch(self.model, 2)

        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

    x, y = _arrays()
    history = model.fit(x, y, epochs=4, callbacks=[Resume()], verbose=0)
    assert started == [2, 3]
    assert len(history.history["loss"]) == 2


def test_symbolic_build_creates_optimizer_and_metric_variables():
    model = _dense_model()
    assert _compat.can_symbolic_build(model)
    assert not model.optimizer.built
    metric_variables = len(model.metrics_variables)  # The loss tracker's.
    x, y = _arrays(4)
    _compat.symbolic_build(model, (x, y))
    assert model.optimizer.built
    assert len(model.optimizer.variables) > 1  # iterations, learning rate, slots.
    assert len(model.metrics_variables) > metric_variables  # "mae" total, count.
    weights = [np.array(v) for v in model.weights]
    _compat.symbolic_build(model, (x, y))  # Building trains nothing.
    for before, after in zip(weights, model.weights):
        np.testing.assert_array_equal(before, np.array(after))


class BuiltFirstModel(_compat.BuiltBeforeTracing, keras.Model):
    pass


class _OptimizerAtTrainBegin(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.built = self.model.optimizer.built


def _fit_two_epochs(mixin: bool) -> tuple[bool, list[np.ndarray]]:
    """Whether the optimizer was built at on_train_begin, and the weights."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    cls = BuiltFirstModel if mixin else keras.Model
    model = cls(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.Adam(1e-2), "mse", metrics=["mae"])
    x, y = _arrays()
    data = tf.data.Dataset.from_tensor_slices((x, y + x[:, :2]))
    data = data.shuffle(8, seed=1).batch(4)  # Reshuffled every epoch.
    seen = _OptimizerAtTrainBegin()
    model.fit(data, epochs=2, callbacks=[seen], shuffle=False, verbose=0)
    assert model.optimizer.iterations.numpy() == 4
    return seen.built, [w.numpy() for w in model.weights]


def test_built_before_tracing_builds_first_and_trains_as_keras_does():
    """Keras builds the optimizer in the step's first trace (which then
    traces twice); the mixin builds it in ``fit`` before, from the data's
    shapes: no batch is drawn, so the reshuffled epochs and the weights are
    Keras' own."""
    built, weights = _fit_two_epochs(mixin=True)
    keras_built, keras_weights = _fit_two_epochs(mixin=False)
    assert built and not keras_built
    for ours, theirs in zip(weights, keras_weights):
        np.testing.assert_array_equal(ours, theirs)


def test_compile_arguments_are_the_objects_given():
    model = _dense_model(compiled=False)
    assert _compat.compile_arguments(model) is None
    optimizer = keras.optimizers.SGD(0.1)
    model.compile(optimizer, loss="mse", metrics=["mae"])
    arguments = _compat.compile_arguments(model)
    assert arguments["optimizer"] is optimizer
    assert arguments["loss"] == "mse"
    assert arguments["metrics"] == ["mae"]


def test_set_compiled_optimizer_is_what_keras_files_save(tmp_path):
    model = _dense_model()
    replacement = keras.optimizers.SGD(0.25)
    model.optimizer = replacement
    _compat.set_compiled_optimizer(model, replacement)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.optimizer, keras.optimizers.SGD)
    assert float(reloaded.optimizer.learning_rate) == pytest.approx(0.25)
    _compat.set_compiled_optimizer(_dense_model(compiled=False), replacement)


def test_start_progbar_gives_a_new_bar_for_the_epoch():
    logger = keras.callbacks.ProgbarLogger()
    logger.set_params({"verbose": 2, "epochs": 1, "steps": 3})
    _compat.start_progbar(logger)
    first = logger.progbar
    assert first is not None and first.target == 3
    _compat.start_progbar(logger)
    assert logger.progbar is not first and logger.seen == 0


def test_saving_for_inference_writes_no_optimizer_and_no_compile(tmp_path):
    model = _dense_model()
    x = np.ones((4, 3), "float32")
    model.fit(x, np.ones((4, 2), "float32"), epochs=1, verbose=0)
    optimizer = model.optimizer
    with _compat.saving_for_inference(model):
        model.save(tmp_path / "m.keras")
    assert model.optimizer is optimizer and model.compiled  # restored
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    assert not reloaded.compiled and getattr(reloaded, "optimizer", None) is None
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_keras_mask_carries_padding_through_masking_layers():
    x = np.array([[[1.0], [2.0], [0.0]], [[3.0], [0.0], [0.0]]], "float32")
    masked = keras.layers.Masking(0.0)(x)
    expected = [[True, True, False], [True, False, False]]
    np.testing.assert_array_equal(np.array(_compat.keras_mask(masked)), expected)
    tokens = np.array([[5, 7, 0]])
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    np.testing.assert_array_equal(np.array(_compat.keras_mask(embedded)), [[1, 1, 0]])
    assert _compat.keras_mask(tf.constant(x)) is None


# --- Keras: layers and variables ---


def test_sublayers_walks_nested_models_from_the_top():
    inner = keras.Sequential([keras.layers.Dense(2, name="d1")], name="inner")
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, keras.layers.Dense(1, name="d2")(inner(inputs)))
    names = [layer.name for layer in _compat.sublayers(outer)]
    assert names[0] == outer.name
    assert {"inner", "d1", "d2"} <= set(names)
    assert len(names) == len(set(names))
    dense = keras.layers.Dense(1)
    assert _compat.sublayers(dense) == [dense]


def test_symbolic_calls_counts_functional_calls():
    shared = keras.layers.Dense(2)
    a, b = keras.Input((3,)), keras.Input((3,))
    shared(a)
    assert _compat.symbolic_calls(shared) == 1
    shared(b)
    assert _compat.symbolic_calls(shared) == 2
    assert _compat.symbolic_calls(keras.layers.Dense(2)) == 0


def test_track_variable_adds_to_the_layers_weights():
    layer = keras.layers.Layer()
    kernel = keras.Variable(np.ones((2,)), trainable=True, name="kernel")
    count = keras.Variable(0, trainable=False, name="count")
    _compat.track_variable(layer, kernel)
    _compat.track_variable(layer, count)
    assert layer.trainable_weights == [kernel]
    assert layer.non_trainable_weights == [count]


def test_keras_variable_around_shares_the_tf_variable():
    original = tf.Variable([1.0, 2.0], name="module_kernel")
    wrapped = _compat.keras_variable_around(original, "kernel", True)
    assert isinstance(wrapped, keras.Variable) and wrapped.trainable
    assert wrapped.name == "kernel" and tuple(wrapped.shape) == (2,)
    wrapped.assign([3.0, 4.0])
    np.testing.assert_array_equal(original.numpy(), [3.0, 4.0])
    original.assign([5.0, 6.0])
    np.testing.assert_array_equal(np.array(wrapped), [5.0, 6.0])

    @tf.function
    def read():
        return original * 1.0

    layer = keras.layers.Layer()
    _compat.track_variable(layer, wrapped)
    layer.set_weights([np.array([7.0, 8.0])])
    np.testing.assert_array_equal(read().numpy(), [7.0, 8.0])
    frozen = _compat.keras_variable_around(tf.Variable(1.0), "frozen", False)
    assert not frozen.trainable


# --- Keras: optimizers ---


def test_configured_learning_rate_is_a_variable_or_the_schedule():
    rate = _compat.configured_learning_rate(keras.optimizers.Adam(1e-3))
    assert isinstance(rate, keras.Variable)
    assert float(rate) == pytest.approx(1e-3)
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-2, 10, 0.5)
    rate = _compat.configured_learning_rate(keras.optimizers.Adam(schedule))
    assert rate is schedule


def test_variable_index_is_the_build_order():
    a, b = keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build([a, b])
    assert _compat.variable_index(optimizer, a) == 0
    assert _compat.variable_index(optimizer, b) == 1


def test_optimizer_knows_the_variables_it_was_built_on():
    a, b = keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build([a, b])
    assert _compat.optimizer_knows(optimizer, [b])
    assert _compat.optimizer_knows(optimizer, [a, b])
    assert not _compat.optimizer_knows(optimizer, [a, keras.Variable(np.zeros(2))])
    optimizer.apply_gradients([(np.ones(3), b)])  # Known variables apply.


def test_optimizer_built_count_is_the_length_of_its_build_list():
    a, b = keras.Variable(np.zeros(2)), keras.Variable(np.zeros(3))
    optimizer = keras.optimizers.Adam(0.1)
    assert _compat.optimizer_built_count(optimizer) == 0
    optimizer.build([a, b])
    assert _compat.optimizer_built_count(optimizer) == 2


# --- Keras: callbacks ---


def test_backup_hooks_route_save_and_restore(tmp_path):
    events = []

    @_compat.backup_hooks
    class Recorder(keras.callbacks.BackupAndRestore):
        def restore_backup(self):
            events.append(("restore",))

        def write_backup(self):
            events.append(("write", *_compat.backup_position(self)))

    x, y = _arrays(8)
    model = _dense_model()
    model.fit(x, y, epochs=2, batch_size=4, callbacks=[Recorder(tmp_path)], verbose=0)
    assert events == [("restore",), ("write", 1, 0), ("write", 2, 0)]
    events.clear()
    batches = Recorder(tmp_path, save_freq=1)
    model.fit(x, y, epochs=1, batch_size=4, callbacks=[batches], verbose=0)
    assert events == [("restore",), ("write", 0, 0), ("write", 0, 1)]


# --- Keras: the TF trainer ---


def test_multiworker_patch_targets_exist_and_keep_other_strategies(one_cpu_mirrored):
    from keras.src.backend.tensorflow import trainer as tf_trainer

    build = inspect.signature(tf_trainer.TensorFlowTrainer._maybe_symbolic_build)
    assert {"iterator", "data_batch"} <= set(build.parameters)
    reduce = inspect.signature(tf_trainer.reduce_per_replica)
    assert list(reduce.parameters) == ["values", "strategy", "reduction"]
    _compat.patch_multiworker_fit()
    _compat.patch_multiworker_fit()  # Idempotent.
    x, y = _arrays(8)
    with one_cpu_mirrored.scope():
        model = _dense_model()
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# --- KerasTuner ---


class _HyperDense(kt.HyperModel):
    def build(self, hp: kt.HyperParameters) -> keras.Model:
        model = _dense_model(units=hp.Choice("units", [2]))
        model.built_by_hypermodel = True
        return model


def _tuner(cls, tmp_path, **kwargs) -> kt.Tuner:
    oracle = kt.oracles.RandomSearchOracle("loss", max_trials=1, seed=1)
    return cls(
        oracle=oracle,
        hypermodel=_HyperDense(),
        directory=str(tmp_path),
        project_name="p",
        **kwargs,
    )


def test_tuner_checkpoint_path_is_what_the_search_writes(tmp_path):
    tuner = _tuner(kt.Tuner, tmp_path)
    x, y = _arrays(8)
    tuner.search(x, y, epochs=1, verbose=0)
    trial = tuner.oracle.get_best_trials(1)[0]
    path = _compat.tuner_checkpoint_path(tuner, trial.trial_id)
    assert os.path.isfile(path)
    best = tuner.load_model(trial)
    model = tuner.hypermodel.build(trial.hyperparameters)
    model.load_weights(path)
    for a, b in zip(best.weights, model.weights):
        np.testing.assert_array_equal(np.array(a), np.array(b))


def test_tuner_build_hook_builds_every_trial_and_load_model(tmp_path, one_cpu_mirrored):
    built = []

    @_compat.tuner_build_hook
    class Hooked(kt.Tuner):
        def build_trial_model(self, hp):
            model = _compat.tuner_build(self, hp)
            built.append(model)
            return model

    tuner = _tuner(Hooked, tmp_path, distribution_strategy=one_cpu_mirrored, loss="mae")
    x, y = _arrays(8)
    tuner.search(x, y, epochs=1, verbose=0)
    assert len(built) == 1
    first = built[0]
    assert first.built_by_hypermodel
    assert _compat.model_strategy(first) is one_cpu_mirrored  # Built in its scope.
    assert _compat.compile_arguments(first)["loss"] == "mae"  # Tuner's override.
    tuner.load_model(tuner.oracle.get_best_trials(1)[0])
    assert len(built) == 2


# --- nothing else touches another library's private names ---

PRIVATE_MODULES = ("keras.src", "tensorflow.python", "keras_tuner.src")


def _own_private_names(trees) -> set[str]:
    """Private names tltf defines itself (methods, attributes, module names)."""
    import ast

    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {name for name in names if name.startswith("_")}


def test_no_module_but_compat_reads_a_private_name_of_another_library():
    """Private imports, attribute reads and getattr strings outside _compat.py."""
    import ast
    from pathlib import Path

    import tltf

    package = Path(tltf.__file__).parent
    trees = {p: ast.parse(p.read_text()) for p in sorted(package.rglob("*.py"))}
    own = _own_private_names(trees)
    found = []
    for path, tree in trees.items():
        if path.name == "_compat.py":
            continue
        for node in ast.walk(tree):
            where = f"{path.relative_to(package.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                PRIVATE_MODULES
            ):
                found.append(f"{where} imports {node.module}")
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and node.attr not in own
            ):
                found.append(f"{where} reads .{node.attr}")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and _private(str(node.args[1].value))
                and node.args[1].value not in own
            ):
                found.append(f"{where} {node.func.id}(..., {node.args[1].value!r})")
    assert found == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
