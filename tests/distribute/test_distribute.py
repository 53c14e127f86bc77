"""tltf.distribute: strategies, the one scope, batches, precision, fault tolerance.

Runs that need a fresh TensorFlow (two logical CPUs, multi-worker
collectives) run tests/support/distribute_worker.py in subprocesses, on loopback
ports, each bounded by a hard timeout and killed if it overruns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tltf.distribute import strategy as strategy_module
from tltf.errors import ConfigError, DataError

WORKER = Path(__file__).parents[1] / "support" / "distribute_worker.py"
RUN_TIMEOUT = 300  # seconds; a bound against hangs, never an assertion
TPU_ENV = ("TPU_NAME", "COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE", "TF_CONFIG")


@pytest.fixture(autouse=True)
def _fresh_strategies(monkeypatch):
    """Each test chooses strategies from a clean cache and a TPU-free env."""
    monkeypatch.setattr(strategy_module, "_CACHE", {})
    for name in TPU_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def one_cpu_mirrored():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


def _tiny_model(strategy=None, **kwargs) -> keras.Model:
    with tltf.strategy_scope(strategy):
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
        base = keras.Model(inputs, x, name="tiny_base")
        return tltf.build_image_classifier(
            base,
            2,
            weights=None,
            preprocessing="unit",
            layer_groups={"block1": ["conv1"]},
            strategy=strategy,
            **kwargs,
        )


# --- choosing a strategy ---


def test_auto_without_tpu_or_gpu_picks_default_and_says_so(caplog):
    caplog.set_level(logging.INFO, logger="tltf.distribute")
    strategy = tltf.get_strategy("auto")
    assert tltf.distribute.is_default(strategy)
    assert strategy.num_replicas_in_sync == 1
    assert "default strategy (1 replica)" in caplog.text
    assert "no TPU and no GPU" in caplog.text
    assert tltf.get_strategy("auto") is strategy  # one object per process


def test_auto_choice_is_one_stderr_line_when_logging_is_not_configured(
    monkeypatch, capsys
):
    # pytest's own log capture puts handlers on the root logger; a plain
    # script has none.
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    tltf.get_strategy("auto")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tltf: Using the default strategy (1 replica): auto: no TPU and no GPU found."
    ]
    tltf.get_strategy("auto")  # the same strategy again: said once
    assert capsys.readouterr().err == ""


def test_auto_choice_goes_to_logging_when_it_is_configured(caplog, capsys):
    caplog.set_level(logging.INFO, logger="tltf")
    tltf.get_strategy("auto")
    assert "Using the default strategy" in caplog.text
    assert capsys.readouterr().err == ""


class _FailingResolver:
    def __init__(self, tpu=None):
        raise ValueError("Please provide a TPU Name to connect to.")


def test_failing_tpu_resolver_falls_back_with_a_message(monkeypatch, caplog):
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    monkeypatch.setattr(
        tf.distribute.cluster_resolver, "TPUClusterResolver", _FailingResolver
    )
    strategy = tltf.get_strategy("auto")
    assert tltf.distribute.is_default(strategy)
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "No TPU" in warning[0].getMessage()
    assert "Please provide a TPU Name" in warning[0].getMessage()


def test_hanging_tpu_resolver_times_out_and_falls_back(monkeypatch, caplog):
    release = threading.Event()

    class Hanging:
        def __init__(self, tpu=None):
            release.wait(60)
            raise ValueError("released")

    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", Hanging)
    try:
        strategy = tltf.get_strategy("auto", tpu="grpc://127.0.0.1:1", tpu_timeout=0.2)
    finally:
        release.set()
    assert tltf.distribute.is_default(strategy)
    assert "did not answer within 0.2 s" in caplog.text


def test_tpu_kind_that_cannot_connect_raises(monkeypatch):
    monkeypatch.setattr(
        tf.distribute.cluster_resolver, "TPUClusterResolver", _FailingResolver
    )
    with pytest.raises(ConfigError, match="Could not connect to a TPU"):
        tltf.get_strategy("tpu")


def test_kinds_and_errors(one_cpu_mirrored):
    assert tltf.get_strategy(one_cpu_mirrored) is one_cpu_mirrored
    cpu = tltf.get_strategy("cpu")
    assert isinstance(cpu, tf.distribute.OneDeviceStrategy)
    mirrored = tltf.get_strategy("mirrored", devices=["/cpu:0"])
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    with pytest.raises(ConfigError, match="Unknown strategy kind 'fast'"):
        tltf.get_strategy("fast")
    with pytest.raises(ConfigError, match="needs a GPU"):
        tltf.get_strategy("gpu")
    with one_cpu_mirrored.scope():  # "auto" is the default even inside a scope
        assert tltf.distribute.is_default(tltf.get_strategy("auto"))


@pytest.mark.parametrize(
    "raw, message",
    [
        (None, "TF_CONFIG unset"),
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'cluster'"),
        (
            json.dumps(
                {
                    "cluster": {"worker": ["127.0.0.1:1"]},
                    "task": {"type": "worker", "index": 3},
                }
            ),
            "index is in range",
        ),
    ],
)
def test_bad_tf_config_is_a_clear_error(raw, message):
    with pytest.raises(ConfigError, match=message):
        tltf.distribute.parse_tf_config(raw)


def test_multiworker_without_tf_config_fails_before_creating_anything():
    with pytest.raises(ConfigError, match="needs the TF_CONFIG"):
        tltf.get_strategy("multiworker")


# --- the one scope ---


def test_builder_builds_and_compiles_inside_the_strategy(one_cpu_mirrored):
    model = _tiny_model(one_cpu_mirrored)
    assert model.distribute_strategy is one_cpu_mirrored
    created = one_cpu_mirrored.extended.variable_created_in_scope
    assert all(created(w.value) for w in model.weights)
    assert tltf.distribute.resolve_strategy(None, model) is one_cpu_mirrored
    before = [np.array(w) for w in model.get_layer("head").get_weights()]
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    ds = tltf.distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 2)).batch(4),
        one_cpu_mirrored,
    )
    model.fit(ds, epochs=1, verbose=0)
    after = model.get_layer("head").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    with pytest.raises(ConfigError, match="was built under MirroredStrategy"):
        tltf.distribute.resolve_strategy(tltf.get_strategy("cpu"), model)


def test_cached_frozen_fit_trains_the_head_in_the_models_strategy(
    one_cpu_mirrored, monkeypatch
):
    model = _tiny_model(one_cpu_mirrored)
    before = [np.array(w) for w in model.get_layer("head").get_weights()]
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 2)).batch(4)
    strategies = []
    original = keras.Model.fit

    def fit(self, *args, **kwargs):
        strategies.append(self.distribute_strategy)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    history = tltf.fit_frozen_head(model, ds, epochs=2, verbose=0, cache=False)
    # The head model is built and compiled in the model's strategy, and
    # trained by Keras' fit (the in-memory loop is for the default strategy).
    assert strategies == [one_cpu_mirrored]
    assert len(history.history["loss"]) == 2
    after = model.get_layer("head").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_base_built_outside_the_scope_is_refused(one_cpu_mirrored):
    inputs = keras.Input((16, 16, 3))
    base = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="conv1")(inputs))
    with pytest.raises(ConfigError, match="created outside MirroredStrategy"):
        tltf.build_image_classifier(
            base,
            2,
            weights=None,
            layer_groups={"b": ["conv1"]},
            strategy=one_cpu_mirrored,
        )
    plain = _tiny_model(None)  # built without a strategy: refused by another one
    with pytest.raises(ConfigError, match="variables created outside"):
        tltf.distribute.resolve_strategy(one_cpu_mirrored, plain)


# --- mixed precision ---


def test_mixed_precision_keeps_head_output_float32_and_restores_policy():
    model = _tiny_model(None, mixed_precision="mixed_bfloat16", hidden_units=(4,))
    assert keras.config.dtype_policy().name == "float32"
    assert model.get_layer("preprocess").compute_dtype == "bfloat16"
    head = model.get_layer("head")
    assert head.hidden[0].compute_dtype == "bfloat16"
    assert head.output_layer.compute_dtype == "float32"
    out = model(np.zeros((2, 16, 16, 3), "float32"))
    assert out.dtype == "float32"

    f16 = _tiny_model(None, mixed_precision="mixed_float16")
    assert isinstance(f16.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.config.dtype_policy().name == "float32"


def test_mixed_precision_choice_follows_the_hardware(one_cpu_mirrored):
    policy = tltf.distribute.mixed_precision_policy
    assert policy("auto", tltf.get_strategy("cpu")) == "float32"
    assert policy(True, one_cpu_mirrored) == "float32"
    assert policy(False) == "float32"
    assert policy(None) == keras.config.dtype_policy().name
    assert policy("mixed_float16") == "mixed_float16"
    with pytest.raises(ConfigError, match="Unknown mixed_precision 'half'"):
        policy("half")


# --- batches and sharding ---


class _Replicas:
    """Stands in for a strategy with ``n`` replicas (batch arithmetic only)."""

    def __init__(self, n: int) -> None:
        self.num_replicas_in_sync = n


def test_per_replica_batches_become_global_batches():
    assert tltf.global_batch_size(16, _Replicas(4)) == 64
    ds = tf.data.Dataset.from_tensor_slices(np.arange(10)).batch(2)
    out = tltf.distribute_dataset(ds, _Replicas(2), per_replica_batch_size=2)
    assert [b.numpy().tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert int(out.cardinality()) == 3  # Keras knows the epoch length
    with pytest.raises(DataError, match="per_replica_batch_size"):
        tltf.global_batch_size(0, _Replicas(2))
    with pytest.raises(DataError, match="batched dataset"):
        tltf.distribute.rebatch(tf.data.Dataset.range(4), 2)
    with pytest.raises(DataError, match="hold 4 examples, not the 2"):
        tltf.distribute.rebatch(
            ds.unbatch().batch(4, drop_remainder=True), 8, input_batch_size=2
        )


@pytest.mark.parametrize(
    ("value", "received"),
    [
        ([1, 2, 3], "list [1, 2, 3]"),
        (np.zeros((2, 3)), "ndarray of shape (2, 3) float64"),
    ],
)
def test_distribute_dataset_of_a_non_dataset_is_one_clear_error(value, received):
    with pytest.raises(DataError) as info:
        tltf.distribute_dataset(value)
    message = str(info.value)
    assert "needs a batched tf.data.Dataset" in message
    assert "tf.data.Dataset.from_tensor_slices((x, y)).batch(32)" in message
    assert f"Received: {received}" in message and "\n" not in message


def test_distribute_dataset_of_loaded_data_says_which_dataset_to_pass():
    data = tltf.data.from_arrays(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match=r"pass its \.train \(or \.validation\)"):
        tltf.distribute_dataset(data)


def test_shard_policy_is_data_in_memory_and_file_for_readers(tmp_path):
    policy = tf.data.experimental.AutoShardPolicy
    memory = tltf.distribute_dataset(
        tf.data.Dataset.from_tensor_slices((np.zeros((4, 2)), np.zeros(4))).batch(2)
    )
    assert memory.options().experimental_distribute.auto_shard_policy == policy.DATA
    path = str(tmp_path / "part.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(b"x")
    files = tf.data.Dataset.list_files(path).interleave(tf.data.TFRecordDataset)
    shard = tltf.distribute_dataset(files.batch(2)).options().experimental_distribute
    assert shard.auto_shard_policy == policy.FILE
    off = tltf.distribute_dataset(memory, shard="off").options().experimental_distribute
    assert off.auto_shard_policy == policy.OFF
    with pytest.raises(ConfigError, match="Unknown shard policy"):
        tltf.distribute_dataset(memory, shard="rows")


# --- fault tolerance in one process ---


class _Stage:
    def __init__(self) -> None:
        self.stage, self.restored = 0, None

    def backup_state(self) -> dict:
        return {"stage": self.stage}

    def restore_state(self, state: dict) -> None:
        self.restored = state
        self.stage = state["stage"]


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, stage: _Stage, at_epoch: int) -> None:
        super().__init__()
        self.stage, self.at_epoch = stage, at_epoch

    def on_epoch_end(self, epoch, logs=None):
        self.stage.stage = epoch + 1

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("interrupted")


def test_backup_resumes_at_the_saved_epoch_with_schedule_state(tmp_path):
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 2)).batch(4)
    backup = tmp_path / "backup"
    stage = _Stage()
    model = _tiny_model(None)
    callbacks = tltf.fault_tolerance_callbacks(backup, stateful=[stage])
    with pytest.raises(RuntimeError, match="interrupted"):
        model.fit(ds, epochs=4, verbose=0, callbacks=[_Interrupt(stage, 2), *callbacks])
    state = json.loads((backup / "state.json").read_text())
    assert state["epoch"] == 2 and state["stateful"] == [{"stage": 2}]
    assert sorted(p.name for p in backup.iterdir()) == [state["weights"], "state.json"]
    saved = [np.array(w) for w in model.get_weights()]

    fresh_stage = _Stage()
    fresh = _tiny_model(None)
    callbacks = tltf.fault_tolerance_callbacks(backup, stateful=[fresh_stage])
    probe = _WeightsAtStart()
    history = fresh.fit(ds, epochs=4, verbose=0, callbacks=[*callbacks, probe])
    assert len(history.history["loss"]) == 2  # epochs 2 and 3 only
    assert fresh_stage.restored == {"stage": 2}
    assert all(np.allclose(a, b) for a, b in zip(saved, probe.weights))
    assert not backup.exists()  # deleted once training completed


class _WeightsAtStart(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self, "weights"):
            self.weights = [np.array(w) for w in self.model.get_weights()]


def test_resumed_staged_unfreezing_matches_an_uninterrupted_run(tmp_path):
    x = np.random.default_rng(1).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 2)).batch(4)

    def run(callbacks: list) -> tuple[keras.Model, int]:
        keras.utils.set_random_seed(7)
        model = _tiny_model(None, dropout=0.0)
        unfreezing = tltf.StagedUnfreezing({0: "head", 1: "all"}, verbose=0)
        backup = tltf.fault_tolerance_callbacks(tmp_path / "backup")
        history = keras.callbacks.History()
        with contextlib.suppress(RuntimeError):  # raised by _Interrupt
            model.fit(
                ds,
                epochs=4,
                verbose=0,
                callbacks=[unfreezing, *callbacks, *backup, history],
            )
        return model, len(history.epoch)

    reference = [np.array(w) for w in run([])[0].get_weights()]
    run([_Interrupt(_Stage(), 3)])  # dies in the "all" stage, after 3 epochs
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 3
    resumed, epochs_run = run([])
    assert epochs_run == 1  # only epoch 3: weights, optimizer and stage restored
    assert tltf.trainable_groups(resumed) == ["block1"]
    assert all(
        np.allclose(a, b, atol=1e-5) for a, b in zip(reference, resumed.get_weights())
    )


def test_non_chief_worker_never_writes_and_mismatch_is_clear(tmp_path):
    x = np.zeros((4, 16, 16, 3), "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(4) % 2)).batch(2)
    worker = tltf.WorkerBackupAndRestore(tmp_path / "b", task_type="worker", task_id=1)
    assert not worker.is_chief
    _tiny_model(None).fit(ds, epochs=1, verbose=0, callbacks=[worker])
    assert not (tmp_path / "b").exists()
    config = worker.get_config()
    assert tltf.WorkerBackupAndRestore.from_config(config).get_config() == config

    keep = tltf.WorkerBackupAndRestore(tmp_path / "c", delete_checkpoint=False)
    _tiny_model(None).fit(ds, epochs=1, verbose=0, callbacks=[keep])
    other = _tiny_model(None, hidden_units=(3,))
    with pytest.raises(ConfigError, match="does not fit this model"):
        other.fit(ds, epochs=1, verbose=0, callbacks=[keep])


# --- subprocess runs: two logical CPUs, two workers ---


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        **extra,
    }


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :])


def _run_cluster(tmp_path: Path, args: list[list[str]], tag: str) -> list[tuple]:
    """Runs one worker per entry of ``args``; kills all if any overruns."""
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(len(args))]
    procs, logs = [], []
    try:
        for index, extra in enumerate(args):
            config = {
                "cluster": {"worker": addresses},
                "task": {"type": "worker", "index": index},
            }
            out = (tmp_path / f"{tag}-{index}.out").open("w+")
            err = (tmp_path / f"{tag}-{index}.err").open("w+")
            logs.append((out, err))
            cmd = [sys.executable, str(WORKER), "multiworker", *extra]
            env = _env(TF_CONFIG=json.dumps(config))
            procs.append(subprocess.Popen(cmd, stdout=out, stderr=err, env=env))
        codes = [proc.wait(timeout=RUN_TIMEOUT) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = []
    for code, (out, err) in zip(codes, logs):
        out.seek(0), err.seek(0)
        results.append((code, out.read(), err.read()[-3000:]))
        out.close(), err.close()
    return results


def test_mirrored_over_two_logical_cpus_matches_one_device():
    run = subprocess.run(
        [sys.executable, str(WORKER), "mirrored", "--epochs", "3"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = _result(run.stdout)
    assert result["replicas"] == 2 and result["global_batch"] == 8
    assert result["start_diff"] == 0.0  # same seed, same initial weights
    assert result["moved"] > 1e-2  # training really changed the weights
    assert result["end_diff"] < 1e-5  # ... and both ways ended in the same place


def _worker_args(tmp_path: Path, epochs: int, extra: list[str] = ()) -> list[str]:
    return [
        "--out",
        str(tmp_path),
        "--backup",
        str(tmp_path / "backup"),
        "--epochs",
        str(epochs),
        *extra,
    ]


def _load_weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def test_two_worker_multiworker_run_ends_with_the_same_weights(tmp_path):
    args = _worker_args(tmp_path, epochs=2)
    results = _run_cluster(tmp_path, [args, args], "run")
    for code, _, err in results:
        assert code == 0, err
    reports = [_result(out) for _, out, _ in results]
    assert [r["replicas"] for r in reports] == [2, 2]
    assert [r["epochs_run"] for r in reports] == [2, 2]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"])
    first, second = (_load_weights(tmp_path / f"worker{i}.npz") for i in (0, 1))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(first, second))


@pytest.mark.slow
def test_killed_worker_restarts_and_the_cluster_resumes(tmp_path):
    marker = tmp_path / "died.marker"
    plain = _worker_args(tmp_path, epochs=3)
    dying = _worker_args(tmp_path, 3, ["--die-at", "1", "--marker", str(marker)])
    first = _run_cluster(tmp_path, [plain, dying], "crash")
    assert marker.exists()
    assert first[1][0] == -9  # worker 1 was killed mid-epoch ...
    assert first[0][0] != 0  # ... and worker 0 stopped instead of hanging

    second = _run_cluster(tmp_path, [plain, dying], "resume")  # the cluster restarts
    for code, _, err in second:
        assert code == 0, err
    reports = [_result(out) for _, out, _ in second]
    assert [r["epochs_run"] for r in reports] == [2, 2]  # resumed at epoch 1
    assert [r["restored"] for r in reports] == [{"stage": 1}, {"stage": 1}]
    assert [r["final_stage"] for r in reports] == [3, 3]
    a, b = (_load_weights(tmp_path / f"worker{i}.npz") for i in (0, 1))
    assert all(np.allclose(x, y, atol=1e-6) for x, y in zip(a, b))
    assert not (tmp_path / "backup").exists()
