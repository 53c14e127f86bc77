"""The one scope a tltf model is built, compiled and restored in.

Builders are wrapped by `distributed_build`, which runs them inside
`build_scope`: the strategy's scope plus the mixed-precision policy.
Training schedules, ``fine_tune`` and the tuner use `strategy_scope` with the
model they continue, so compile and restore happen under the strategy that
created the model's variables.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TypeVar

import keras
import tensorflow as tf

from tltf import _compat
from tltf.distribute.precision import MixedPrecision, precision_policy
from tltf.distribute.strategy import StrategyLike, describe, get_strategy
from tltf.errors import ConfigError

Builder = TypeVar("Builder", bound=Callable[..., keras.Model])


def resolve_strategy(
    strategy: StrategyLike = None, model: keras.Model | None = None
) -> tf.distribute.Strategy:
    """The strategy to build, compile, fit or restore under.

    Args:
        strategy: None (the strategy ``model`` was built under, else the
            enclosing ``strategy.scope()``, else TensorFlow's default), a kind
            for `get_strategy` such as ``"auto"``, or a strategy.
        model: A model that already exists; its strategy must match.

    Returns:
        The strategy.

    Raises:
        ConfigError: ``model`` was built under a different strategy.

    Example:
        >>> resolve_strategy(None) is tf.distribute.get_strategy()
        True
    """
    owner = _compat.model_strategy(model) if model is not None else None
    if strategy is None:
        return owner or tf.distribute.get_strategy()
    resolved = get_strategy(strategy) if isinstance(strategy, str) else strategy
    if owner is None and model is not None:
        check_built_in_scope(model, resolved)
    elif owner is not None and owner is not resolved:
        raise ConfigError(
            f"Model '{model.name}' was built under {describe(owner)}, not under "
            f"the requested {describe(resolved)}. Pass the strategy the model was "
            "built with (or strategy=None), or rebuild the model with this one."
        )
    return resolved


@contextlib.contextmanager
def strategy_scope(
    strategy: StrategyLike = None, model: keras.Model | None = None
) -> Iterator[tf.distribute.Strategy]:
    """Enters the scope of `resolve_strategy(strategy, model)`: the one way in.

    Build, compile and restore (``load_weights``, ``keras.models.load_model``)
    a model inside one such block so its variables and optimizer slots are
    created by the strategy. Every tltf module that needs a scope enters it
    here: ``strategy_scope(model=model)`` for the strategy a model was
    created under (else the current one), ``strategy_scope(strategy)`` for
    a given strategy (None: the current one). When the resolved strategy is
    already the current one (including TensorFlow's default outside any
    scope), nothing is entered, so nesting is free.

    Args:
        strategy: See `resolve_strategy`.
        model: See `resolve_strategy`.

    Yields:
        The strategy.

    Raises:
        ConfigError: See `resolve_strategy`.

    Example:
        >>> with strategy_scope("auto") as strategy:
        ...     model = tltf.build_image_classifier(...)
        >>> with strategy_scope(model=model):
        ...     model.compile("adam", "sparse_categorical_crossentropy")
    """
    resolved = resolve_strategy(strategy, model)
    if resolved is tf.distribute.get_strategy():
        yield resolved
        return
    with resolved.scope():
        yield resolved


def check_built_in_scope(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Raises when ``model`` has variables that ``strategy`` did not create.

    A base model built outside the scope cannot be trained by a
    multi-replica strategy; its variables are not mirrored.

    Raises:
        ConfigError: Some variables were created outside the strategy.
    """
    if is_default(strategy):
        return
    outside = [
        v.path
        for v in model.weights
        if not strategy.extended.variable_created_in_scope(_tf_variable(v))
    ]
    if outside:
        raise ConfigError(
            f"Model '{model.name}' has {len(outside)} variables created outside "
            f"{describe(strategy)} (first: {outside[0]}). Build the base model "
            "inside `with tltf.strategy_scope(strategy):`, or pass the path of "
            "a saved .keras base so tltf loads it inside the scope."
        )


@contextlib.contextmanager
def build_scope(
    strategy: StrategyLike = None,
    mixed_precision: MixedPrecision = None,
    model: keras.Model | None = None,
) -> Iterator[tf.distribute.Strategy]:
    """The strategy's scope plus the mixed-precision policy, for building.

    Args:
        strategy: See `resolve_strategy`.
        mixed_precision: See `tltf.distribute.mixed_precision_policy`; None
            keeps the global Keras policy.
        model: See `resolve_strategy`.

    Yields:
        The strategy.

    Example:
        >>> with build_scope("auto", mixed_precision="auto") as strategy:
        ...     model = keras.Sequential([keras.layers.Dense(2)])
    """
    with contextlib.ExitStack() as stack:
        active = stack.enter_context(strategy_scope(strategy, model))
        stack.enter_context(precision_policy(mixed_precision, active))
        yield active


def distributed_build(builder: Builder) -> Builder:
    """Decorates a model builder so it builds and compiles inside `build_scope`.

    The builder must take ``strategy`` and ``mixed_precision`` keyword
    arguments; the decorator reads them (the builder itself can ignore them),
    runs the builder inside the scope, and checks that every variable of the
    returned model belongs to the strategy.

    Args:
        builder: A function returning a ``keras.Model``.

    Returns:
        The wrapped builder, with the same signature and docstring.
    """
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args, **kwargs) -> keras.Model:
        arguments = signature.bind(*args, **kwargs).arguments
        strategy = arguments.get("strategy")
        mixed_precision = arguments.get("mixed_precision")
        with build_scope(strategy, mixed_precision) as active:
            model = builder(*args, **kwargs)
            check_built_in_scope(model, active)
        return model

    return build  # type: ignore[return-value]


def is_default(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` is TensorFlow's default (no-op) strategy."""
    return _compat.is_default_strategy(strategy)


def _tf_variable(variable):
    return getattr(variable, "value", variable)
