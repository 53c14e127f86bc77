"""LiteRT (TFLite) export: one ``.tflite`` file, checked with the interpreter.

`export_litert` converts the same serving function as the SavedModel's
numeric signature, with TFLite builtin ops only (no Flex delegate needed):

- Image models take float pixels in [0, 255] (``pixels``, shape
  ``(batch, height, width, channels)``); decoding image bytes is left to the
  app (TFLite has no image decoding ops).
- Text models take the tokenizer's outputs (``token_ids``, ``padding_mask``,
  ``segment_ids`` for BERT-style models): the tokenizer's TF Text ops are not
  TFLite builtins, so the app tokenizes (with the same vocabulary and
  sequence length; the sidecar lists the inputs).
- Other models take their input tensor.

Outputs are those of the SavedModel: ``probabilities``, ``class_index`` (-1
below a rejection threshold) and ``class_name``. A JSON sidecar next to the
file (``model.tflite`` -> ``model.json``) holds the class names, inputs,
rejection threshold, quantization and the check's result;
`tltf.read_export_metadata` reads it.

``quantize="int8"`` uses the TFLite converter's dynamic-range quantization:
int8 weights for fully connected, convolution and embedding ops, float
activations. Unlike Keras' ``model.quantize`` it quantizes convolutions.

The file is written atomically, after the check: the converted model is run
with the LiteRT interpreter on sample inputs and compared with the float
Keras model (probabilities within ``atol``, 1e-3 by default; with int8,
within ``quantize_atol``, 0.15 by default, and the same top class where it is
clear).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments, files
from tltf.errors import ConfigError, ExportError, first_line
from tltf.evaluation.calibration import answer
from tltf.export.plan import Endpoint, ServingPlan
from tltf.export.quantize import INT8_ATOL, check_mode, compare_with_float
from tltf.export.signatures import plan_endpoints
from tltf.lora_merge import merge_lora
from tltf.model import require_model

FLOAT_ATOL = 1e-3
_NUMERIC_SIGNATURE = {"image": "pixels", "text": "token_ids"}


def export_litert(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    quantize: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
    sample_inputs: Sequence[Any] | None = None,
    atol: float = FLOAT_ATOL,
    quantize_atol: float = INT8_ATOL,
) -> Path:
    """Exports a tltf model as a LiteRT (``.tflite``) file with a JSON sidecar.

    Args:
        model: A model built by a tltf builder (or any single-input Keras
            classifier).
        path: The ``.tflite`` file to write; the sidecar is the same path
            with ``.json``.
        class_names: Names of the classes, in label order; defaults to
            ``"0", "1", ...``.
        quantize: ``"int8"`` for dynamic-range int8 weights, or None.
        overwrite: Replace an existing file.
        verify: Run the file with the LiteRT interpreter on sample inputs
            and compare with the Keras model before writing it.
        sample_inputs: Raw inputs for the check (encoded image bytes or
            strings, as for `tltf.export_saved_model`).
        atol: Largest difference in probabilities accepted (float).
        quantize_atol: The same with ``quantize``.

    Returns:
        The path of the ``.tflite`` file.

    Raises:
        ExportError: ``path`` exists and ``overwrite`` is False, the
            conversion failed (e.g. an op TFLite has no builtin for), or the
            file disagrees with the Keras model. Nothing is written then.
        ConfigError: A path without ``.tflite``, an unknown ``quantize``, or
            a text model without a tokenizer layer to split at.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3))
        >>> tltf.export_litert(model, "model.tflite", quantize="int8")
        PosixPath('model.tflite')
    """
    require_model(model)
    target = arguments.path("path", path)
    arguments.positive_number("atol", atol, zero=True)
    arguments.positive_number("quantize_atol", quantize_atol, zero=True)
    _check_target(target, overwrite)
    check_mode(quantize)
    model = merge_lora(model)  # LoRA adapters folded in: an ordinary model
    plan = plan_endpoints(model, class_names, None, sample_inputs)
    endpoint = _numeric_endpoint(plan, model)
    content = _convert(endpoint, quantize)
    check = None
    if verify:
        tolerance = atol if quantize is None else quantize_atol
        check = _check(content, endpoint, plan.threshold, tolerance, quantize)
    metadata = _metadata(plan, endpoint, quantize, check, len(content))
    try:
        files.write_json(sidecar_path(target), metadata)
        with files.atomic_path(target) as temp:
            temp.write_bytes(content)
    except OSError as err:
        raise ExportError(
            f"Cannot write the LiteRT file to {str(target)!r}: "
            f"{err.strerror or first_line(err)}. Choose a folder you can write to."
        ) from err
    return target


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a ``.tflite`` file (``model.tflite`` -> ``model.json``)."""
    return Path(path).with_suffix(".json")


def interpreter(content: bytes) -> Any:
    """A LiteRT interpreter for a model (``ai_edge_litert`` or ``tf.lite``)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is a dependency.
        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter(model_content=content)


# --- conversion ---


def _check_target(target: Path, overwrite: bool) -> None:
    if target.suffix != ".tflite":
        raise ConfigError(
            "A LiteRT export is one file whose name ends in .tflite. Received: "
            f"{str(target)!r}"
        )
    if target.is_dir():
        raise ExportError(f"{str(target)!r} is a folder; pass a .tflite file path.")
    if target.exists() and not overwrite:
        raise ExportError(
            f"{str(target)!r} already exists. Choose a new path, or pass "
            "overwrite=True (--overwrite) to replace it."
        )


def _numeric_endpoint(plan: ServingPlan, model: keras.Model) -> Endpoint:
    name = _NUMERIC_SIGNATURE.get(plan.modality, "serving_default")
    found = [e for e in plan.endpoints if e.name == name]
    if not found:
        raise ConfigError(
            f"Text model '{model.name}' has no tokenizer layer named "
            "'preprocess' to split at: a LiteRT file cannot tokenize (TF Text "
            "ops are not TFLite builtins), so it takes token ids. Build the "
            "model with tltf.build_text_classifier."
        )
    return found[0]


def _convert(endpoint: Endpoint, quantize: str | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tltf-litert-") as tmp:
        archive = keras.export.ExportArchive()
        archive.add_endpoint("serving_default", endpoint.fn, endpoint.input_signature)
        try:
            archive.write_out(tmp, verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if quantize == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            return converter.convert()
        except Exception as err:
            raise ExportError(
                "Could not convert the model to LiteRT with builtin ops: "
                f"{_conversion_error(err)}. Nothing was written."
            ) from err


def _conversion_error(err: Exception) -> str:
    lines = [x.strip() for x in str(err).splitlines() if "op" in x.lower()]
    return (lines[0] if lines else first_line(err))[:500]


# --- check ---


def _check(
    content: bytes,
    endpoint: Endpoint,
    threshold: float | None,
    atol: float,
    quantize: str | None,
) -> dict[str, Any]:
    """Runs the file on the endpoint's sample and compares with Keras."""
    loaded = interpreter(content)
    runner = loaded.get_signature_runner("serving_default")
    result = runner(**{k: np.asarray(v) for k, v in endpoint.sample.items()})
    key = endpoint.compare_key
    got = np.asarray(result[key], "float64")
    want = np.asarray(endpoint.expected, "float64")
    if got.shape != want.shape:
        raise ExportError(
            f"The LiteRT file returns {key} of shape {got.shape}; the Keras "
            f"model {want.shape}. Nothing was written."
        )
    if quantize is not None:
        summary = compare_with_float(got, want, atol)
    else:
        diff = float(np.max(np.abs(got - want))) if want.size else 0.0
        if not diff <= atol:
            raise ExportError(
                "The LiteRT file disagrees with the Keras model: largest "
                f"difference in {key} {diff:.3g} > atol={atol}. Nothing was "
                "written."
            )
        summary = {"max_abs_difference": diff, "atol": atol}
    if "class_index" in result:
        _check_answers(np.asarray(result["class_index"]), got, threshold, atol)
    return {
        "interpreter": type(loaded).__module__.split(".")[0],
        "num_samples": int(len(want)),
        "compared_with": "float Keras model",
        **summary,
    }


def _check_answers(index, probabilities, threshold, atol) -> None:
    """The file's class_index follows its own probabilities and threshold."""
    top2 = np.sort(probabilities, axis=-1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 10 * atol
    if threshold is not None:
        clear &= np.abs(top2[:, 1] - threshold) > 1e-6
    if np.any(index[clear] != answer(probabilities, threshold)[clear]):
        raise ExportError(
            "The LiteRT file's class_index does not follow its probabilities "
            "and rejection threshold. Nothing was written."
        )


# --- metadata ---


def _metadata(
    plan: ServingPlan,
    endpoint: Endpoint,
    quantize: str | None,
    check: dict[str, Any] | None,
    size: int,
) -> dict[str, Any]:
    from tltf import __version__

    quantization = None
    if quantize is not None:
        quantization = {
            "mode": quantize,
            "method": "TFLite dynamic-range quantization: int8 weights, "
            "float activations.",
        }
    return {
        "format": "tltf-litert/1",
        "tltf_version": __version__,
        "modality": plan.modality,
        "task": plan.task,
        "class_names": plan.class_names,
        "image_size": list(plan.image_size) if plan.image_size else None,
        "signature": "serving_default",
        "inputs": {
            s.name: {"dtype": s.dtype.name, "shape": s.shape.as_list()}
            for s in endpoint.input_signature
        },
        "input_description": endpoint.description,
        "outputs": plan.output_names(),
        "requires": _requires(plan.modality),
        "rejection": plan.rejection,
        "quantization": quantization,
        "size_bytes": size,
        "verification": check,
    }


def _requires(modality: str) -> str | None:
    if modality == "image":
        return "Decode and resize images in the app; pass float RGB in [0, 255]."
    if modality == "text":
        return (
            "Tokenize in the app with the model's tokenizer (same vocabulary "
            "and sequence length): TF Text ops are not TFLite builtins."
        )
    return None
