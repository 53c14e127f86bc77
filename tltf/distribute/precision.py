"""Mixed precision as one option: float16 on GPU, bfloat16 on TPU, off on CPU.

Keras reads the global dtype policy when a layer is created, so tltf sets it
only while a model is built (`precision_policy`) and puts the previous policy
back afterwards. The head's output layer is always float32, so losses and
predictions stay in full precision; Keras wraps the optimizer in a
``LossScaleOptimizer`` when it compiles a ``mixed_float16`` model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import keras
import tensorflow as tf

from tltf.errors import ConfigError

logger = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
MixedPrecision = bool | str | None


def mixed_precision_policy(
    mixed_precision: MixedPrecision = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> str:
    """The Keras dtype policy name for a mixed-precision setting.

    Args:
        mixed_precision: ``"auto"`` or True (``mixed_bfloat16`` on a TPU,
            ``mixed_float16`` on GPUs, ``float32`` on CPU), False
            (``float32``), a policy name from ``POLICIES``, or None (the
            current global Keras policy, left as the user set it).
        strategy: The strategy that will run the model; None for the current
            one.

    Returns:
        A policy name: ``"float32"``, ``"mixed_float16"`` or
        ``"mixed_bfloat16"`` (or the user's own global policy for None).

    Raises:
        ConfigError: An unknown setting.

    Example:
        >>> mixed_precision_policy("auto", tltf.get_strategy("cpu"))
        'float32'
    """
    if mixed_precision is None:
        return keras.config.dtype_policy().name
    if mixed_precision is False:
        return "float32"
    if mixed_precision is True or mixed_precision == "auto":
        return _hardware_policy(strategy or tf.distribute.get_strategy())
    if mixed_precision in POLICIES:
        return mixed_precision
    raise ConfigError(
        f"Unknown mixed_precision {mixed_precision!r}: use 'auto', True, False "
        f"or one of {POLICIES}. Received: mixed_precision={mixed_precision!r}"
    )


def _hardware_policy(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "mixed_bfloat16"
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy runs on whatever is visible
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    if any("GPU" in device.upper() for device in devices):
        return "mixed_float16"
    return "float32"


@contextlib.contextmanager
def precision_policy(
    mixed_precision: MixedPrecision = None,
    strategy: tf.distribute.Strategy | None = None,
) -> Iterator[str]:
    """Sets the global Keras dtype policy inside the block, then restores it.

    Layers created inside the block compute in the chosen precision; layers
    with an explicit dtype (the head's float32 output) keep theirs.

    Args:
        mixed_precision: See `mixed_precision_policy`.
        strategy: See `mixed_precision_policy`.

    Yields:
        The policy name in effect.

    Example:
        >>> with precision_policy("mixed_bfloat16"):
        ...     layer = keras.layers.Dense(2)
        >>> layer.compute_dtype
        'bfloat16'
    """
    if mixed_precision is None:
        yield keras.config.dtype_policy().name
        return
    name = mixed_precision_policy(mixed_precision, strategy)
    previous = keras.config.dtype_policy()
    if name != "float32":
        logger.info("Mixed precision: building with the %r policy.", name)
    keras.config.set_dtype_policy(name)
    try:
        yield name
    finally:
        keras.config.set_dtype_policy(previous)
