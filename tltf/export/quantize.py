"""Weight quantization for export: an int8 copy of a model, never the model.

`quantized_copy` reloads the model from a temporary ``.keras`` file (so the
user's model is untouched and tokenizer assets come along) and runs Keras'
``model.quantize("int8")`` on every built layer. Keras 3.15 quantizes
``Dense``, ``EinsumDense``, ``Embedding`` and ``ReversibleEmbedding`` (the
layers of BERT-style encoders and every tltf head); it has no int8 mode for
convolutions (``Conv2D``, ``DepthwiseConv2D``) or normalization layers, which
stay float32. The summary says which layer types were quantized and which
were not, so a convolutional model's small gain is no surprise: for those,
`tltf.export_litert` with ``quantize="int8"`` quantizes the convolutions too.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tltf.errors import ConfigError, ExportError, first_line
from tltf.export.plan import ServingPlan
from tltf.export.signatures import plan_endpoints

QUANTIZE_MODES = ("int8",)
#: Largest difference in probabilities between the int8 and float models
#: that an export accepts on its sample inputs. Int8 noise in the logits is
#: amplified by a sharpening temperature: a 150-class MiniLM fine-tuned on
#: CLINC150 and calibrated moved by 0.11 on the made-up sample texts with
#: every top class kept, so 0.05 refused sound exports. A broken quantization
#: moves probabilities far more, and changes clear top classes.
INT8_ATOL = 0.15
#: Where the float model's top two probabilities differ by more than this,
#: the int8 model must give the same top class.
CLEAR_MARGIN = 0.1


def check_mode(quantize: str | None) -> None:
    """Fails clearly for a quantization mode tltf does not export.

    Raises:
        ConfigError: ``quantize`` is neither None nor one of `QUANTIZE_MODES`.
    """
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ConfigError(
            f"quantize must be one of {QUANTIZE_MODES} or None. Received: "
            f"quantize={quantize!r}"
        )


def quantized_copy(
    model: keras.Model, mode: str = "int8"
) -> tuple[keras.Model, dict[str, Any]]:
    """A quantized copy of ``model`` and a summary of what was quantized.

    Args:
        model: A built Keras model.
        mode: ``"int8"``.

    Returns:
        ``(copy, {"mode", "quantized_layers": {type: count},
        "not_quantized": {type: count}})``; the second lists the types of
        built layers with weights that Keras cannot quantize.

    Raises:
        ConfigError: An unknown mode.
        ExportError: The model could not be copied, or nothing in it could be
            quantized.
    """
    check_mode(mode)
    copy = _copy(model)
    seen: list[keras.layers.Layer] = []

    def built(layer: keras.layers.Layer) -> bool:
        seen.append(layer)
        return layer.built  # Tokenizers have no weights and are never built.

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        copy.quantize(mode, filters=built)
    unsupported = {
        str(w.message).split()[1]
        for w in caught
        if "does not have a `quantize` method" in str(w.message)
    }
    quantized = Counter(type(x).__name__ for x in seen if x.quantization_mode)
    if not quantized:
        raise ExportError(
            f"Keras could not quantize any layer of '{model.name}' to {mode} "
            "(it quantizes Dense, EinsumDense and Embedding layers). Export "
            "it without quantize."
        )
    kept = Counter(
        type(x).__name__
        for x in seen
        if type(x).__name__ in unsupported and x.weights and not x.quantization_mode
    )
    summary = {
        "mode": mode,
        "quantized_layers": dict(sorted(quantized.items())),
        "not_quantized": dict(sorted(kept.items())),
    }
    return copy, summary


def compare_with_float(
    quantized: np.ndarray, expected: np.ndarray, atol: float
) -> dict[str, float]:
    """How far quantized probabilities are from the float model's.

    Args:
        quantized: The quantized model's probabilities on sample inputs.
        expected: The float model's, on the same inputs.
        atol: Largest difference accepted.

    Returns:
        ``{"max_abs_difference", "top_class_agreement", "atol"}``.

    Raises:
        ExportError: A difference above ``atol``, or another top class where
            the float model's top two differ by more than `CLEAR_MARGIN`.
    """
    quantized = np.asarray(quantized, "float64")
    expected = np.asarray(expected, "float64")
    diff = float(np.max(np.abs(quantized - expected))) if expected.size else 0.0
    agree = quantized.argmax(-1) == expected.argmax(-1)
    top2 = np.sort(expected, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > CLEAR_MARGIN
    if not diff <= atol or not np.all(agree[clear]):
        raise ExportError(
            f"The int8 model's probabilities differ from the float model's by "
            f"{diff:.3g} (atol={atol}) on the sample inputs, top class agreeing "
            f"on {agree.mean():.0%}. Nothing was written. Export without "
            "quantize, pass sample_inputs of real data, or a larger "
            "quantize_atol if this loss is acceptable."
        )
    return {
        "max_abs_difference": diff,
        "top_class_agreement": float(agree.mean()),
        "atol": atol,
    }


def _copy(model: keras.Model) -> keras.Model:
    with tempfile.TemporaryDirectory(prefix="tltf-quantize-") as tmp:
        file = Path(tmp) / "model.keras"
        try:
            model.save(file)
            return keras.saving.load_model(file, compile=False)
        except Exception as err:
            raise ExportError(
                f"Could not copy '{model.name}' to quantize it (saving and "
                f"reloading it as .keras failed: {first_line(err)}). Check that "
                "model.save() and keras.saving.load_model() work for it."
            ) from err


def quantized_plan(
    model: keras.Model,
    float_plan: ServingPlan,
    mode: str,
    atol: float,
    sample_inputs: Sequence[Any] | None,
) -> ServingPlan:
    """The serving plan of a quantized copy of ``model``.

    Args:
        model: The float model.
        float_plan: Its plan (`tltf.export.signatures.plan_endpoints`).
        mode: ``"int8"``.
        atol: Largest difference from the float model's probabilities.
        sample_inputs: The sample inputs the float plan was made with.

    Returns:
        The quantized copy's plan, with ``quantization`` set to what was
        quantized and how far it is from the float model, and each
        endpoint's ``float_expected`` set to the float model's outputs (the
        reference the reloaded export is checked against).

    Raises:
        ExportError: As `quantized_copy` and `compare_with_float`.
    """
    copy, summary = quantized_copy(model, mode)
    plan = plan_endpoints(
        copy, float_plan.class_names or None, float_plan.image_size, sample_inputs
    )
    worst: dict[str, float] = {}
    for ours, theirs in zip(plan.endpoints, float_plan.endpoints):
        found = compare_with_float(ours.expected, theirs.expected, atol)
        if not worst or found["max_abs_difference"] > worst["max_abs_difference"]:
            worst = found
        ours.float_expected = theirs.expected
    if plan.token_endpoint is not None and float_plan.token_endpoint is not None:
        plan.token_endpoint.float_expected = float_plan.token_endpoint.expected
    plan.quantization = {**summary, "versus_float": worst}
    return plan
