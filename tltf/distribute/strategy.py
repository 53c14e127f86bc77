"""Choosing a tf.distribute strategy, and the one scope everything runs in.

`get_strategy` turns a kind (``"auto"``, ``"cpu"``, ``"gpu"``, ``"mirrored"``,
``"tpu"``, ``"multiworker"``) into a ``tf.distribute.Strategy`` and logs what
it chose (one ``tltf: Using ...`` line on stderr when logging is not
configured). `resolve_strategy` and `strategy_scope` are what builders, training
schedules and the tuner use, so that a model is built, compiled and restored
inside one scope.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tltf import _compat
from tltf.errors import ConfigError, first_line

logger = logging.getLogger(__name__)

KINDS = ("auto", "cpu", "gpu", "mirrored", "tpu", "multiworker")
DEFAULT_TPU_TIMEOUT = 60.0

StrategyLike = tf.distribute.Strategy | str | None

# Strategies that own process-wide state (a TPU system, collective ops) must
# be created once per process; "auto" must give builders and training the
# same object, or compile would run in a foreign scope.
_CACHE: dict[tuple, tf.distribute.Strategy] = {}


def get_strategy(
    kind: str | tf.distribute.Strategy = "auto",
    *,
    tpu: str | None = None,
    devices: Sequence[str] | None = None,
    tpu_timeout: float = DEFAULT_TPU_TIMEOUT,
) -> tf.distribute.Strategy:
    """Returns a distribution strategy and logs what it chose.

    Kinds:

    - ``"auto"``: a multi-worker strategy when ``TF_CONFIG`` describes a
      cluster of several workers; else a TPU when one connects (Colab, Cloud
      TPU, TPU VM); else ``MirroredStrategy`` over all GPUs when there are two
      or more; else TensorFlow's default one-device strategy. A TPU is only
      tried when there is a sign of one (``tpu=``, ``TPU_NAME``,
      ``COLAB_TPU_ADDR``, local TPU devices); a TPU that fails or does not
      answer within ``tpu_timeout`` seconds is skipped with a warning.
    - ``"cpu"``: one CPU. ``"gpu"``: one GPU, or all GPUs mirrored when there
      are several. ``"mirrored"``: ``MirroredStrategy`` over ``devices``
      (default: all GPUs, or the CPU).
    - ``"tpu"``: a TPU; fails with `ConfigError` when none connects.
    - ``"multiworker"``: ``MultiWorkerMirroredStrategy`` configured by the
      ``TF_CONFIG`` environment variable. Create it first thing in the
      program, before any other TensorFlow work.

    The same arguments give the same strategy object within a process.

    Args:
        kind: One of the kinds above, or a ready ``tf.distribute.Strategy``
            (returned as is).
        tpu: TPU name or ``grpc://`` address; ``"local"`` on a TPU VM.
        devices: Devices for ``"mirrored"``, e.g. ``["/gpu:0", "/gpu:1"]``.
        tpu_timeout: Seconds to wait for a TPU to connect.

    Returns:
        The strategy. ``strategy.num_replicas_in_sync`` is the replica count.

    Raises:
        ConfigError: Unknown kind, no such hardware, or a bad ``TF_CONFIG``.

    Example:
        >>> strategy = tltf.get_strategy("auto")
        >>> strategy.num_replicas_in_sync
        1
    """
    if isinstance(kind, tf.distribute.Strategy):
        logger.info("Using %s: given.", describe(kind))
        return kind
    if kind not in KINDS:
        raise ConfigError(
            f"Unknown strategy kind {kind!r}; use one of {KINDS} or pass a "
            f"tf.distribute.Strategy. Received: kind={kind!r}"
        )
    key = (kind, tpu, tuple(devices) if devices else None)
    if key not in _CACHE:
        strategy, reason = _create(kind, tpu, devices, tpu_timeout)
        _log_choice(strategy, reason)
        _CACHE[key] = strategy
    return _CACHE[key]


def _create(kind, tpu, devices, tpu_timeout) -> tuple[tf.distribute.Strategy, str]:
    if kind == "auto":
        return _auto(tpu, devices, tpu_timeout)
    if kind == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0"), "cpu requested"
    if kind == "gpu":
        return _gpu()
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices), "mirrored requested"
    if kind == "tpu":
        try:
            hint = tpu if tpu is not None else _tpu_hint()
            return _connect_tpu(hint or "", tpu_timeout), "tpu requested"
        except (RuntimeError, ValueError, TimeoutError, tf.errors.OpError) as err:
            raise ConfigError(
                f"Could not connect to a TPU: {first_line(err)}. On Colab pick a "
                "TPU runtime; on Cloud TPU pass tpu=<name> or set TPU_NAME; on a "
                f"TPU VM pass tpu='local'. Received: tpu={tpu!r}"
            ) from err
    return _multiworker(), "TF_CONFIG requested"


def _auto(tpu, devices, tpu_timeout) -> tuple[tf.distribute.Strategy, str]:
    config = os.environ.get("TF_CONFIG")
    if config and len(parse_tf_config(config)["cluster"].get("worker", [])) > 1:
        return _multiworker(), "auto: TF_CONFIG describes a multi-worker cluster"
    hint = tpu if tpu is not None else _tpu_hint()
    if hint is not None:
        try:
            return _connect_tpu(hint, tpu_timeout), f"auto: TPU {hint or ''} connected"
        except (RuntimeError, ValueError, TimeoutError, tf.errors.OpError) as err:
            logger.warning(
                "No TPU: connecting to %s failed (%s); falling back to GPUs/CPU.",
                repr(hint) if hint else "the TPU of TPU_NAME / COLAB_TPU_ADDR",
                first_line(err),
            )
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) >= 2:
        return tf.distribute.MirroredStrategy(devices=devices), (
            f"auto: {len(gpus)} GPUs found"
        )
    found = "1 GPU" if gpus else "no TPU and no GPU"
    return default_strategy(), f"auto: {found} found"


def default_strategy() -> tf.distribute.Strategy:
    """TensorFlow's default one-device strategy, even inside another scope."""
    return _compat.default_strategy()


def _gpu() -> tuple[tf.distribute.Strategy, str]:
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        raise ConfigError(
            "strategy 'gpu' needs a GPU, but TensorFlow sees none. Check the "
            "CUDA install (tf.config.list_physical_devices('GPU')) or use "
            "kind='auto'. Received: kind='gpu'"
        )
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name), "gpu requested"
    return tf.distribute.MirroredStrategy(), f"gpu requested: {len(gpus)} GPUs"


def _tpu_hint() -> str | None:
    """The ``tpu`` argument to try when there is a sign of a TPU, else None.

    ``""`` lets the resolver find the TPU itself (Colab, ``TPU_NAME``).
    """
    if os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR"):
        return ""
    if os.environ.get("TPU_ACCELERATOR_TYPE") or tf.config.list_physical_devices("TPU"):
        return "local"
    return None


def _connect_tpu(tpu: str, timeout: float) -> tf.distribute.Strategy:
    """Resolves, connects and initializes a TPU in a thread bounded by ``timeout``.

    The resolver may query a metadata server and connecting may wait on the
    network; a thread keeps a dead TPU from hanging the program.
    """
    result: dict[str, Any] = {}

    def connect() -> None:
        try:
            resolvers = tf.distribute.cluster_resolver
            resolver = resolvers.TPUClusterResolver(tpu=tpu or None)
            if tpu != "local":
                tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            result["strategy"] = tf.distribute.TPUStrategy(resolver)
        except Exception as err:  # noqa: BLE001 - reported to the caller below
            result["error"] = err

    thread = threading.Thread(target=connect, name="tltf-tpu-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the TPU did not answer within {timeout:g} s")
    if "error" in result:
        err = result["error"]
        if isinstance(err, (RuntimeError, ValueError, tf.errors.OpError)):
            raise err
        raise RuntimeError(f"{type(err).__name__}: {err}") from err
    return result["strategy"]


def _multiworker() -> tf.distribute.Strategy:
    parse_tf_config(os.environ.get("TF_CONFIG"))
    _compat.patch_multiworker_fit()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        raise ConfigError(
            "MultiWorkerMirroredStrategy must be created before TensorFlow runs "
            "anything else: call tltf.get_strategy('multiworker') at the start "
            f"of the program. Received: {first_line(err)}"
        ) from err


def parse_tf_config(raw: str | None) -> dict[str, Any]:
    """Parses and checks a ``TF_CONFIG`` value for multi-worker training.

    Args:
        raw: The JSON text, e.g. ``os.environ["TF_CONFIG"]``.

    Returns:
        The parsed dict with ``cluster`` and ``task``.

    Raises:
        ConfigError: Missing, not JSON, or without a valid cluster and task.

    Example:
        >>> parse_tf_config('{"cluster": {"worker": ["localhost:1234"]}, '
        ...                 '"task": {"type": "worker", "index": 0}}')["task"]
        {'type': 'worker', 'index': 0}
    """
    example = (
        '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    if not raw:
        raise ConfigError(
            "Multi-worker training needs the TF_CONFIG environment variable, "
            f"set on every worker, e.g. {example}. Received: TF_CONFIG unset"
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({err}); expected e.g. {example}. "
            f"Received: TF_CONFIG={raw!r}"
        ) from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    ok = isinstance(cluster, dict) and isinstance(task, dict)
    members = cluster.get(task.get("type"), []) if ok else []
    index = task.get("index") if ok else None
    if not (isinstance(members, list) and isinstance(index, int)) or not (
        0 <= index < len(members)
    ):
        raise ConfigError(
            "TF_CONFIG needs a 'cluster' of address lists and a 'task' whose "
            f"type is in the cluster and whose index is in range, e.g. {example}. "
            f"Received: TF_CONFIG={raw!r}"
        )
    return config


def describe(strategy: tf.distribute.Strategy) -> str:
    """``"MirroredStrategy (2 replicas)"``: a strategy's name and replica count."""
    replicas = strategy.num_replicas_in_sync
    name = type(strategy).__name__
    if _compat.is_default_strategy(strategy):
        name = "the default strategy"
    return f"{name} ({replicas} replica{'s' if replicas != 1 else ''})"


def _log_choice(strategy: tf.distribute.Strategy, reason: str) -> None:
    """Logs the choice at INFO; says it on stderr when logging is not set up.

    A library's log records stay silent until the application configures
    logging, and Python then shows only warnings. Which hardware training
    runs on is worth one line by default, so when no handler would receive
    the record (``logger.hasHandlers()`` is False: nothing configured) it is
    written to stderr like Python's own last-resort handler would; once
    logging is configured, the record goes there and nothing is printed.
    """
    message = f"Using {describe(strategy)}: {reason}."
    logger.info(message)
    if not logger.hasHandlers():
        print(f"tltf: {message}", file=sys.stderr)
