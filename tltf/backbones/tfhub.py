"""TF Hub and SavedModel handles as Keras 3 layers (``hub:<url or folder>``).

``hub.KerasLayer`` is a Keras 2 layer and does not work inside Keras 3
models. `HubLayer` loads the SavedModel itself and exposes the module's own
variables as Keras weights (the same ``tf.Variable`` objects, not copies), so
the module can be frozen and fine-tuned, saved in ``.keras`` files, used under
a ``tf.distribute`` strategy and exported again as a SavedModel.

``get_backbone("hub:<handle>")`` gives a spec: image feature vectors plug
into `tltf.build_image_classifier` (inputs scaled to [0, 1], as TF Hub image
modules expect); BERT-style encoders (inputs ``input_word_ids``,
``input_mask``, ``input_type_ids``) plug into `tltf.build_text_classifier`
with their preprocess handle (``preprocess=``).
"""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tltf import _compat
from tltf.backbones.hub_handles import (
    BERT_INPUTS,
    is_text_encoder,
    is_url,
    resolve_handle,
)
from tltf.backbones.registry import register_source
from tltf.backbones.spec import BackboneSpec
from tltf.errors import ConfigError

__all__ = [
    "BERT_INPUTS",
    "HubLayer",
    "HubTextPreprocess",
    "is_text_encoder",
    "is_url",
    "resolve_handle",
    "resolve_hub",
]


# --- variables ---


def _module_variables(obj: Any, fn: Any) -> tuple[list[tf.Variable], list[tf.Variable]]:
    """(trainable, non-trainable) variables of a loaded SavedModel."""
    if hasattr(obj, "variables"):
        trainable = list(getattr(obj, "trainable_variables", []))
        every = list(obj.variables)
    else:
        concrete = getattr(fn, "concrete_functions", None) or [fn]
        trainable = [v for c in concrete for v in c.trainable_variables]
        every = [v for c in concrete for v in c.variables]
    seen = {id(v) for v in trainable}
    trainable = list({id(v): v for v in trainable}.values())
    others = [v for v in {id(v): v for v in every}.values() if id(v) not in seen]
    return trainable, others


def _keras_name(name: str, taken: set[str]) -> str:
    base = name.split(":")[0].replace("/", "_") or "variable"
    unique, k = base, 1
    while unique in taken:
        unique, k = f"{base}_{k}", k + 1
    taken.add(unique)
    return unique


def _absolute(folder: str | os.PathLike) -> str:
    return str(Path(folder).expanduser().absolute())


def _accepts_training(fn: Any) -> bool:
    try:
        spec = inspect.getfullargspec(fn)
    except TypeError:
        return False
    return "training" in spec.args or "training" in spec.kwonlyargs


# --- the layer ---


@keras.saving.register_keras_serializable(package="tltf")
class HubLayer(keras.layers.Layer):
    """A TF Hub module or SavedModel as a Keras 3 layer.

    The module's variables become this layer's weights (trainable ones stay
    trainable, e.g. BatchNorm statistics stay non-trainable), so freezing and
    fine-tuning work as for any Keras layer. ``training`` is passed to the
    module when its ``__call__`` accepts it (True only when this layer is
    trainable and called in training). Regularization losses of the module
    (``obj.regularization_losses``) are added while the layer is trainable.

    A ``.keras`` file stores the handle and Keras saves the weights: reloading
    loads the module from the handle again, then restores the trained weights.

    Args:
        handle: A tfhub.dev or Kaggle URL, or a SavedModel folder.
        signature: Call this signature (e.g. ``"serving_default"``) instead
            of the module's ``__call__`` (or the ``serve`` endpoint of a
            ``keras.Model.export`` folder); inputs are passed by name.
        output_key: Return only this entry of a dict output.
        arguments: Extra keyword arguments for every call of the module.
        trainable: Whether the module's weights train (default False, like
            ``hub.KerasLayer``).
        **kwargs: Standard layer arguments.

    Raises:
        MissingWeightsError: The handle cannot be found or downloaded.
        ConfigError: The module is not callable or has no such signature.

    Example:
        >>> layer = HubLayer("/models/mobilenet_feature_vector")
        >>> layer(np.zeros((1, 224, 224, 3), "float32")).shape
        (1, 1280)
    """

    def __init__(
        self,
        handle: str | os.PathLike,
        signature: str | None = None,
        output_key: str | None = None,
        arguments: dict[str, Any] | None = None,
        trainable: bool = False,
        **kwargs: Any,
    ) -> None:
        # A SavedModel computes in the dtypes it was saved with, whatever the
        # global (mixed precision) policy; the head casts its output itself.
        kwargs.setdefault("dtype", "float32")
        super().__init__(trainable=trainable, **kwargs)
        # Folders are kept absolute so a saved model reloads from any cwd.
        self.handle = str(handle) if is_url(handle) else _absolute(handle)
        self.signature = signature
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        self._module = tf.saved_model.load(resolve_handle(self.handle))
        self._fn = self._get_callable()
        self._has_training = not signature and _accepts_training(self._fn)
        self._regularizers = list(getattr(self._module, "regularization_losses", []))
        self._wrap_variables()
        self.built = True

    @property
    def module(self):
        """The loaded SavedModel object."""
        return self._module

    def _get_callable(self) -> Any:
        if self.signature is None:
            if callable(self._module):
                return self._module.__call__
            if callable(getattr(self._module, "serve", None)):
                return self._module.serve  # Written by keras Model.export().
            known = list(getattr(self._module, "signatures", {}))
            raise ConfigError(
                f"TF Hub module {self.handle!r} is not callable. Pass "
                f"signature= with one of {known}. Received: signature=None"
            )
        signatures = getattr(self._module, "signatures", {})
        if self.signature not in signatures:
            raise ConfigError(
                f"TF Hub module {self.handle!r} has no signature "
                f"{self.signature!r}. Known signatures: {list(signatures)}. "
                f"Received: signature={self.signature!r}"
            )
        return signatures[self.signature]

    def _wrap_variables(self) -> None:
        trainable, others = _module_variables(self._module, self._fn)
        taken: set[str] = set()
        with keras.name_scope(self.name):
            # Keras variables that wrap the module's own: the module's
            # functions see every training step, assign and weight load.
            wrap = _compat.keras_variable_around
            wrapped = [wrap(v, _keras_name(v.name, taken), True) for v in trainable]
            wrapped += [wrap(v, _keras_name(v.name, taken), False) for v in others]
        for variable in wrapped:
            _compat.track_variable(self, variable)

    def call(self, inputs, training=None):
        fn = self._fn
        if self._has_training:
            fn = functools.partial(fn, training=bool(training) and self.trainable)
        if self.signature:
            result = fn(**self._signature_inputs(inputs), **self.arguments)
        else:
            result = fn(inputs, **self.arguments)
        if self.trainable:
            for regularizer in self._regularizers:
                self.add_loss(regularizer())
        if self.output_key is None:
            return result
        if not isinstance(result, dict) or self.output_key not in result:
            known = list(result) if isinstance(result, dict) else "a single tensor"
            raise ConfigError(
                f"TF Hub module {self.handle!r} has no output "
                f"{self.output_key!r}; it returns {known}. Received: "
                f"output_key={self.output_key!r}"
            )
        return result[self.output_key]

    def _signature_inputs(self, inputs: Any) -> dict[str, Any]:
        if isinstance(inputs, dict):
            return dict(inputs)
        names = list(self._fn.structured_input_signature[1])
        if len(names) != 1:
            raise ConfigError(
                f"Signature {self.signature!r} of {self.handle!r} takes inputs "
                f"{names}; pass a dict with these keys."
            )
        return {names[0]: inputs}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "handle": self.handle,
            "signature": self.signature,
            "output_key": self.output_key,
            "arguments": self.arguments,
        }


@keras.saving.register_keras_serializable(package="tltf")
class HubTextPreprocess(HubLayer):
    """A TF Hub BERT preprocess model: raw strings to encoder inputs.

    With ``sequence_length`` set and a module that has ``tokenize`` and
    ``bert_pack_inputs`` (as TF Hub's BERT preprocess models do), texts are
    packed to that length; otherwise the module's own ``__call__`` decides
    (128 tokens for TF Hub's models).

    Args:
        handle: URL or folder of the preprocess model.
        sequence_length: Tokens per example, or None for the module default.
        **kwargs: `HubLayer` arguments.
    """

    def __init__(
        self,
        handle: str | os.PathLike,
        sequence_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(handle, **kwargs)
        self.sequence_length = sequence_length
        module = self.module
        self._packs = sequence_length is not None and all(
            hasattr(module, attr) for attr in ("tokenize", "bert_pack_inputs")
        )

    def call(self, inputs, training=None):
        if self._packs:
            tokens = self.module.tokenize(inputs)
            result = self.module.bert_pack_inputs(
                [tokens], seq_length=self.sequence_length
            )
        else:
            result = self.module(inputs)
        return {key: tf.cast(result[key], tf.int32) for key in BERT_INPUTS}

    def compute_output_spec(self, inputs, training=None):
        length = self.sequence_length if self._packs else None
        return {
            key: keras.KerasTensor((inputs.shape[0], length), dtype="int32")
            for key in BERT_INPUTS
        }

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sequence_length": self.sequence_length}


# --- backbones ---


def _image_base(
    handle: str, input_shape: tuple[int, ...], weights: str | None
) -> keras.Model:
    """A functional base around a feature-vector module (group ``hub``)."""
    inputs = keras.Input(shape=input_shape, name="images")
    outputs = HubLayer(handle, name="hub")(inputs)
    model = keras.Model(inputs, outputs, name="hub_base")
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model


def _text_base(
    handle: str,
    source: str,
    *,
    sequence_length: int,
    preprocess: str | os.PathLike | None = None,
):
    """An encoder module with its preprocess module, for the text builder."""
    from tltf.backbones.kerashub import LoadedTextBase

    if preprocess is None:
        raise ConfigError(
            f"TF Hub text encoder '{source}' needs its matching preprocess "
            "model: pass preprocess='<URL or folder of the BERT preprocess "
            "model>' (the model page names it). Received: preprocess=None"
        )
    preprocessor = HubTextPreprocess(
        str(preprocess), sequence_length=sequence_length, name="preprocess"
    )
    inputs = {
        key: keras.Input(shape=(sequence_length,), dtype="int32", name=key)
        for key in BERT_INPUTS
    }
    encoded = HubLayer(handle, name="hub")(inputs)
    if not isinstance(encoded, dict) or "sequence_output" not in encoded:
        raise ConfigError(
            f"'{source}' does not return a dict with 'sequence_output' and "
            "'pooled_output'; it is not a BERT-style encoder."
        )
    outputs = {key: encoded[key] for key in ("sequence_output", "pooled_output")}
    model = keras.Model(inputs, outputs, name="hub_encoder")
    return LoadedTextBase(
        model=model,
        preprocessor=preprocessor,
        layer_groups={"hub": ["hub"]},
        source=source,
        mask_key="input_mask",
    )


def resolve_hub(handle: str) -> BackboneSpec:
    """Spec for ``hub:<URL or SavedModel folder>``.

    URLs are resolved (downloaded into the TF Hub cache) so the module kind
    can be read: BERT-style encoders are text backbones, other modules are
    image feature vectors taking [0, 1] pixels (224x224 unless the caller
    passes ``input_shape``).

    Raises:
        MissingWeightsError: The folder is missing or the URL unreachable.
    """
    name = f"hub:{handle}"
    folder = resolve_handle(handle)
    if is_text_encoder(folder):
        return BackboneSpec(
            name=name,
            modality="text",
            constructor=functools.partial(HubLayer, handle),
            description=f"TF Hub text encoder {handle}",
            extra={
                "handle": handle,
                "load_text": functools.partial(_text_base, handle, name),
            },
        )
    return BackboneSpec(
        name=name,
        modality="image",
        constructor=functools.partial(_image_base, handle),
        default_input_shape=(224, 224, 3),
        min_size=1,
        preprocessing="unit",
        group_patterns=(("hub", r".*"),),
        description=f"TF Hub image feature vector {handle}",
        extra={"handle": handle},
    )


register_source("hub", resolve_hub, "hub:<tfhub.dev URL or SavedModel folder>")
