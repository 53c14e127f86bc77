"""Builders: join a pretrained base and a new head into one Keras model.

Every builder makes the same shape of functional model::

    raw input -> [augmentation] -> preprocessing -> Backbone -> Head

The base is frozen and runs in inference mode; the head is new. Adding a
backbone means declaring a `BackboneSpec`, never writing another builder.

`compile_model` compiles a tltf model with its head's defaults;
`compile_arguments` and `fresh_optimizer` compile another model (a head, a
merged copy) like a given one without sharing its stateful objects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from tltf import _compat, arguments
from tltf.backbones.keras_apps import MOBILENET_V2
from tltf.backbones.kerashub import (
    MINILM_NAME,
    POOLINGS,
    FirstToken,
    LoadedTextBase,
    load_text_base,
)
from tltf.backbones.layers import Backbone, Preprocess
from tltf.backbones.loading import load_image_base
from tltf.distribute.precision import MixedPrecision
from tltf.distribute.scope import distributed_build
from tltf.distribute.strategy import StrategyLike
from tltf.errors import ConfigError
from tltf.heads import Head, compile_defaults
from tltf.model import TransferModel, head_of

DEFAULT_LEARNING_RATE = 1e-3
#: The bases used when the caller names none (`tltf train`, `tltf tune`, the
#: demo): small and quick to fine-tune; the text one works offline.
DEFAULT_IMAGE_BACKBONE = MOBILENET_V2.name
DEFAULT_TEXT_BACKBONE = MINILM_NAME


@distributed_build
def build_image_classifier(
    backbone: str | keras.Model | os.PathLike,
    num_classes: int,
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    head: Head | None = None,
    task: str = "multiclass",
    pooling: str | None = "avg",
    dropout: float = 0.2,
    hidden_units: Sequence[int] = (),
    augment: str | Sequence[keras.layers.Layer] | None = None,
    preprocessing: str | None = None,
    layer_groups: dict[str, list[str]] | None = None,
    train_bn: bool = False,
    compile: bool = True,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    strategy: StrategyLike = None,
    mixed_precision: MixedPrecision = None,
    name: str | None = None,
) -> keras.Model:
    """Builds an image model on a pretrained base with a frozen base and new head.

    The model takes raw pixels (0-255, uint8 or float, shape
    ``(batch, height, width, 3)``) and applies the base's own preprocessing
    inside the graph.

    Args:
        backbone: A registry name (``"keras:resnet50"``; see
            `tltf.list_backbones`), a ``keras.Model`` mapping images to
            features, or the path of a saved ``.keras`` model.
        num_classes: Number of classes (or regression targets).
        weights: ``"imagenet"``, None (random), or a local weights file.
        input_shape: ``(height, width, 3)``; None for the base's default.
        head: A ready `Head`; overrides task/pooling/dropout/hidden_units.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        pooling: ``"avg"``, ``"max"`` or ``"flatten"``.
        dropout: Dropout rate in the head.
        hidden_units: Hidden dense layers in the head.
        augment: ``"default"`` (flip, rotation, zoom), a list of Keras
            preprocessing layers, or None. Active only in training.
        preprocessing: Overrides the base's preprocessing mode (see
            `tltf.backbones.Preprocess`); needed for user models that expect
            something other than the raw pixels.
        layer_groups: Overrides the base's named layer groups.
        train_bn: Let BatchNorm layers of unfrozen groups update statistics.
        compile: Compile with Adam and the head's default loss and metrics.
        learning_rate: Learning rate of the default optimizer.
        strategy: Build and compile inside this ``tf.distribute`` strategy's
            scope: a strategy, a kind for `tltf.get_strategy` (``"auto"``),
            or None for the enclosing scope (see `tltf.distribute`).
        mixed_precision: ``"auto"`` (float16 on GPU, bfloat16 on TPU, off on
            CPU), True, False, a Keras policy name, or None to keep the
            global Keras policy. Applies to the layers the builder creates
            (a ``keras.Model`` backbone keeps the dtype it was built with).
            The head's output stays float32.
        name: Model name; defaults to ``"<backbone>_classifier"``.

    Returns:
        A functional `tltf.model.TransferModel` (a ``keras.Model``) with
        layers ``backbone`` and ``head``, which it holds as ``model.backbone``
        and ``model.head`` (and ``model.preprocessing``: augmentation and the
        ``preprocess`` layer).

    Raises:
        ConfigError: Unknown backbone, bad num_classes, input size or weights.
        MissingWeightsError: ImageNet weights offline and not cached.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> model.predict(np.zeros((1, 32, 32, 3), "uint8")).shape
        (1, 3)
    """
    _check_arguments(num_classes, compile, learning_rate)
    _check_options(head, name, layer_groups, train_bn=train_bn, compile=compile)
    _check_not_a_classifier(backbone)
    head = head or Head(
        num_classes,
        task=task,
        pooling=pooling,
        dropout=dropout,
        hidden_units=hidden_units,
    )
    base = load_image_base(
        backbone,
        weights=weights,
        input_shape=input_shape,
        preprocessing=preprocessing,
        layer_groups=layer_groups,
    )
    shape = tuple(base.model.input_shape[1:])
    # --- layers ---
    inputs = keras.Input(shape=shape, name="pixels")
    x = inputs
    for layer in augmentation_layers(augment):
        x = layer(x)
    x = Preprocess(base.preprocessing, name="preprocess")(x)
    wrapped = _frozen_backbone(base.model, base.layer_groups, train_bn, base.source)
    outputs = head(wrapped(x))
    return _assemble(
        inputs, outputs, name or f"{base.short_name}_classifier", compile, learning_rate
    )


def augmentation_layers(
    augment: str | Sequence[keras.layers.Layer] | None,
) -> list[keras.layers.Layer]:
    """Training-only augmentation layers for an image model.

    Args:
        augment: ``"default"``, a list of layers, or None.

    Returns:
        The layers, in order. Keras' random preprocessing layers are identity
        at inference, so exported models are unaffected.
    """
    if augment is None:
        return []
    if augment == "default":
        return [
            keras.layers.RandomFlip("horizontal", name="augment_flip"),
            keras.layers.RandomRotation(0.1, name="augment_rotation"),
            keras.layers.RandomZoom(0.1, name="augment_zoom"),
        ]
    if isinstance(augment, str):
        raise ConfigError(
            f"Unknown augment {augment!r}: use 'default', a list of Keras "
            "preprocessing layers, or None."
        )
    layers = list(augment) if hasattr(augment, "__iter__") else [augment]
    wrong = next((a for a in layers if not isinstance(a, keras.layers.Layer)), None)
    if wrong is not None:
        raise ConfigError(
            "augment must be 'default', a list of Keras preprocessing layers "
            "(e.g. [keras.layers.RandomFlip('horizontal')]), or None. "
            f"Received an item {wrong!r:.60}"
        )
    return layers


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    optimizer: keras.optimizers.Optimizer | None = None,
    **overrides: Any,
) -> keras.Model:
    """Compiles a tltf model with the defaults of its head's task.

    Args:
        model: A model built by a tltf builder.
        learning_rate: Learning rate of the default Adam optimizer.
        optimizer: An optimizer to use instead of Adam.
        **overrides: Any other ``model.compile`` argument (loss, metrics, ...).

    Returns:
        The same model, compiled.

    Raises:
        ConfigError: ``learning_rate`` is not a finite number > 0.
    """
    args = compile_defaults(head_of(model))
    args.update(overrides)
    if optimizer is None:
        optimizer = keras.optimizers.Adam(
            arguments.rate("learning_rate", learning_rate)
        )
    elif isinstance(optimizer, str):
        try:
            optimizer = keras.optimizers.get(optimizer)
        except ValueError:
            raise ConfigError(
                f"Unknown optimizer {optimizer!r}: pass a Keras optimizer "
                "(keras.optimizers.AdamW(1e-4)) or a Keras name such as 'adam' "
                f"or 'sgd'. Received: optimizer={optimizer!r}"
            ) from None
    model.compile(optimizer=optimizer, **args)
    return model


def compile_arguments(model: keras.Model) -> dict[str, Any]:
    """The arguments ``model`` was compiled with, as new objects where possible.

    Loss and metrics are rebuilt from the compile config, so a second model
    compiled with them shares no metric state; a custom object that cannot
    be serialized is reused as it is. ``{}`` for a model not compiled.
    """
    try:
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
    except Exception:  # noqa: BLE001 - unserializable custom loss/metric.
        config = _compat.compile_arguments(model) or {}
    return dict(config or {})


def fresh_optimizer(
    optimizer: keras.optimizers.Optimizer,
) -> keras.optimizers.Optimizer:
    """A new optimizer of the same class and configuration, with no state.

    Works for every optimizer Keras can serialize, a ``LossScaleOptimizer``
    around one and tltf's per-group-rate optimizers included.
    """
    return keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))


def _check_arguments(num_classes: Any, compile: bool, learning_rate: Any) -> None:
    """Checks the numbers a builder needs before it loads anything."""
    arguments.count("num_classes", num_classes)
    if compile:
        arguments.rate("learning_rate", learning_rate)


def _check_options(head: Any, name: Any, layer_groups: Any, **flags: Any) -> None:
    """Checks a builder's head, name, layer groups and on/off flags."""
    if head is not None and not isinstance(head, Head):
        raise ConfigError(
            "head must be a tltf.Head (e.g. tltf.Head(3, hidden_units=(64,))) or "
            f"None for the default head. Received: head={head!r:.60}"
        )
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"name must be a string or None. Received: name={name!r}")
    if layer_groups is not None and not isinstance(layer_groups, Mapping):
        raise ConfigError(
            "layer_groups must be a dict of group name to layer names, e.g. "
            "{'top': ['conv5_block3_out']}. Received: "
            f"layer_groups={layer_groups!r:.60}"
        )
    for flag, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(
                f"{flag} must be True or False. Received: {flag}={value!r}"
            )


def _check_not_a_classifier(backbone: Any) -> None:
    """Refuses a whole tltf classifier as a backbone: a head on its class
    probabilities would learn from a handful of numbers, not from features."""
    if isinstance(backbone, keras.Model) and any(
        isinstance(layer, Head) for layer in backbone.layers
    ):
        raise ConfigError(
            f"The backbone model '{backbone.name}' is a whole classifier (it ends "
            "in a tltf Head), so a new head would see only its class "
            "probabilities. Pass its base instead (model.backbone.model), e.g. "
            "tltf.build_image_classifier(model.backbone.model, num_classes)."
        )


def _frozen_backbone(
    model: keras.layers.Layer,
    layer_groups: dict[str, list[str]],
    train_bn: bool,
    source: str,
) -> Backbone:
    """Wraps a base as the model's ``backbone`` layer, frozen."""
    wrapped = Backbone(
        model, layer_groups=layer_groups, train_bn=train_bn, source=source
    )
    wrapped.trainable = False
    return wrapped


def _assemble(
    inputs: Any, outputs: Any, name: str, compile: bool, learning_rate: float
) -> keras.Model:
    """The functional model of a builder, compiled with its head's defaults."""
    model = TransferModel(inputs, outputs, name=_safe_name(name))
    if compile:
        compile_model(model, learning_rate=learning_rate)
    return model


def _groups_for_pooling(
    groups: dict[str, list[str]], pooling: str
) -> dict[str, list[str]]:
    """Leaves out the ``pooler`` group when mean pooling bypasses it.

    With mean pooling the pooler gets no gradient, so a schedule that unfroze
    it ("top:1") would train nothing in the base. It stays frozen instead.
    """
    if pooling == "mean":
        return {name: layers for name, layers in groups.items() if name != "pooler"}
    return groups


def _safe_name(name: str) -> str:
    """Makes ``name`` a valid Keras/TF scope name."""
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
    return cleaned.lstrip("_-") or "model"


@distributed_build
def build_text_classifier(
    backbone: str,
    num_classes: int,
    *,
    sequence_length: int = 128,
    preprocess: str | os.PathLike | None = None,
    pooling: str | None = None,
    head: Head | None = None,
    task: str = "multiclass",
    dropout: float = 0.1,
    hidden_units: Sequence[int] = (),
    layer_groups: dict[str, list[str]] | None = None,
    train_bn: bool = False,
    compile: bool = True,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    strategy: StrategyLike = None,
    mixed_precision: MixedPrecision = None,
    name: str | None = None,
) -> keras.Model:
    """Builds a text model on a pretrained encoder, with a frozen base and new head.

    The model takes raw strings (shape ``(batch,)``): tokenization runs
    inside the graph (layer ``preprocess``), then the encoder (``backbone``,
    groups ``embeddings``, ``encoder_0``..``encoder_<N-1>``, ``pooler`` for
    KerasHub encoders; ``hub`` for TF Hub ones), then the ``head``.

    Args:
        backbone: ``"kerashub:<preset or folder>"`` (KerasHub presets such as
            ``bert_base_en_uncased``, local preset folders, Hugging Face BERT
            folders), ``"kerashub:all-minilm-l6-v2"`` (offline package), or
            ``"hub:<BERT encoder URL or folder>"`` with ``preprocess=``.
        num_classes: Number of classes (or regression targets).
        sequence_length: Tokens per text at most (longer texts are
            truncated); KerasHub encoders cut each batch to its longest
            text, exports take this many tokens.
        preprocess: URL or folder of the TF Hub preprocess model matching a
            ``hub:`` encoder; None for KerasHub encoders.
        pooling: ``"cls"`` (the pooled [CLS] output) or ``"mean"`` (mean over
            the tokens, padding masked out); None for what the encoder was
            trained with ("mean" for all-MiniLM-L6-v2, else "cls").
        head: A ready `Head`; overrides task/dropout/hidden_units.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        dropout: Dropout rate in the head.
        hidden_units: Hidden dense layers in the head.
        layer_groups: Overrides the encoder's named layer groups.
        train_bn: Run the encoder in training mode (dropout) when its groups
            are unfrozen.
        compile: Compile with Adam and the head's default loss and metrics.
        learning_rate: Learning rate of the default optimizer.
        strategy: Build and compile inside this strategy's scope (see
            `build_image_classifier`).
        mixed_precision: Mixed-precision policy (see `build_image_classifier`).
        name: Model name; defaults to ``"<backbone>_classifier"``.

    Returns:
        A functional `tltf.model.TransferModel` (a ``keras.Model`` whose
        ``fit``, ``evaluate`` and ``predict`` take strings as a list, a NumPy
        array or a pandas Series) with layers ``preprocess``, ``backbone``
        and ``head``, which it holds as ``model.preprocessing``,
        ``model.backbone`` and ``model.head``.

    Raises:
        ConfigError: Unknown or non-text backbone, or a bad argument.
        MissingWeightsError: The encoder cannot be found or downloaded.

    Example:
        >>> model = tltf.build_text_classifier(
        ...     "kerashub:all-minilm-l6-v2", 2, sequence_length=32)
        >>> model.predict(tf.constant(["a fine film"])).shape
        (1, 2)
    """
    _check_arguments(num_classes, compile, learning_rate)
    _check_options(head, name, layer_groups, train_bn=train_bn, compile=compile)
    if pooling is not None and pooling not in POOLINGS:
        raise ConfigError(
            f"Unknown text pooling {pooling!r}; use one of {POOLINGS} or None. "
            f"Received: pooling={pooling!r}"
        )
    base = load_text_base(
        backbone, sequence_length=sequence_length, preprocess=preprocess
    )
    pooling = pooling or base.default_pooling
    head = head or Head(
        num_classes,
        task=task,
        pooling="avg" if pooling == "mean" else None,
        dropout=dropout,
        hidden_units=hidden_units,
    )
    # --- layers ---
    inputs = keras.Input(shape=(), dtype="string", name="text")
    encoded = base.preprocessor(inputs)
    groups = layer_groups or _groups_for_pooling(base.layer_groups, pooling)
    wrapped = _frozen_backbone(base.model, groups, train_bn, base.source)
    outputs = _pool_text(base, wrapped(encoded), encoded, pooling, head)
    model_name = name or f"{base.source.split(':')[-1]}_classifier"
    return _assemble(inputs, outputs, model_name, compile, learning_rate)


def _pool_text(
    base: LoadedTextBase, features: dict, encoded: dict, pooling: str, head: Head
) -> Any:
    """Applies ``head`` to the [CLS] features or to the masked tokens."""
    sequence = features[base.sequence_key]
    if pooling == "mean":
        if head.pooling not in ("avg", "max"):
            raise ConfigError(
                "pooling='mean' needs a head that pools over tokens "
                f"(Head(pooling='avg')). Received: head.pooling={head.pooling!r}"
            )
        return head(sequence, mask=encoded[base.mask_key])
    if base.pooled_key is not None:
        return head(features[base.pooled_key])
    return head(FirstToken(name="cls_token")(sequence))
