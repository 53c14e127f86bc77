"""SavedModel export for serving, written atomically and verified.

`export_saved_model` writes a SavedModel that a serving system which has never
heard of tltf can load (TF Serving, ``tf.saved_model.load``):

- Image models: ``serving_default`` takes encoded JPEG/PNG/GIF/BMP bytes
  (``image_bytes``, decoded and resized inside the graph, exactly as the tltf
  image loaders do); ``pixels`` takes float pixels in [0, 255].
- Text models: ``serving_default`` takes strings (``text``); ``token_ids``
  takes the tokenizer's outputs (token ids, padding mask, ...). When the
  tokenizer uses TF Text ops, loading the SavedModel needs
  ``import tensorflow_text`` first; the export's metadata says so and a
  second SavedModel with only the token-ids signature, which needs no custom
  ops, is written to ``<path>/token_ids_model``.
- Other models: ``serving_default`` takes the model's input tensor.

Every classification signature returns ``probabilities``, ``class_index`` (the
top class) and ``class_name``; regression models return ``predictions``. A
model calibrated by `tltf.calibrate_rejection` answers class_index -1 and
class_name ``"unknown"`` below its threshold. The export carries
``assets/tltf_export.json``: signatures, class names, the custom ops it needs,
the rejection threshold, what was quantized and the verification result.

With ``quantize="int8"`` an int8 copy of the model is exported (the model
itself is not changed; see `tltf.export.quantize` for which layers Keras
quantizes). The int8 Keras copy and the reloaded int8 export are both held
to the float model on the same inputs (``quantize_atol``, default 0.15, same
top class where clear). The reloaded export is not held to the int8 Keras
copy itself: int8 kernels round differently with the batch shape and between
eager and graph calls (a CLINC150 MiniLM's int8 copy gave one text
probabilities 0.018 apart in a batch of 64 and alone, 0.032 apart eager and
in ``predict``; float32: 7e-7), so their difference is recorded
(``versus_int8_keras``) and bounded only when ``atol`` is passed. The
int8 export is smaller (a BERT-style encoder ~0.3x) but not faster on CPU:
TensorFlow runs Keras' int8 matmuls slower than float ones; for speed, export
LiteRT int8 (`tltf.export_litert`).

The export is written to a temporary folder next to the target, reloaded in a
fresh Python process with plain TensorFlow (no tltf, no Keras) and compared
with the Keras model on sample inputs, and only then renamed into place.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.errors import ExportError, first_line
from tltf.evaluation.calibration import answer
from tltf.export.plan import Endpoint, ServingPlan
from tltf.export.quantize import CLEAR_MARGIN, INT8_ATOL, check_mode, quantized_plan
from tltf.export.signatures import plan_endpoints
from tltf.files import atomic_path
from tltf.lora_merge import merge_lora
from tltf.model import require_model

METADATA_FILE = "tltf_export.json"
TOKEN_IDS_MODEL = "token_ids_model"
_CHECK_SCRIPT = Path(__file__).with_name("check.py")
_CHECK_TIMEOUT_S = 600
FLOAT_ATOL = 1e-4


def export_saved_model(
    model: keras.Model,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    verify: bool = True,
    sample_inputs: Sequence[Any] | None = None,
    image_size: tuple[int, int] | None = None,
    atol: float | None = None,
    quantize: str | None = None,
    quantize_atol: float = INT8_ATOL,
) -> Path:
    """Exports a tltf model as a SavedModel that takes raw inputs.

    Args:
        model: A model built by a tltf builder (or any single-input Keras
            classifier).
        path: Folder to create. Its parent must exist or be creatable.
        class_names: Names of the classes, in label order; defaults to
            ``"0", "1", ...``.
        overwrite: Replace an existing export at ``path``.
        verify: Reload the export in a fresh process with plain TensorFlow
            and compare its outputs with the Keras model's before committing.
        sample_inputs: Raw inputs for the check (encoded image bytes or
            strings); tltf makes some when None.
        image_size: ``(height, width)`` that image bytes are resized to;
            defaults to the model's input size.
        atol: Largest difference in probabilities the check accepts between
            the reloaded export and the Keras model: 1e-4 by default. With
            ``quantize``, between the reloaded export and the int8 Keras
            copy, unbounded by default (recorded; see above).
        quantize: ``"int8"`` to export an int8 copy of the model (Dense,
            EinsumDense and Embedding weights; ~0.3x the size of a BERT
            export), or None for float.
        quantize_atol: With ``quantize``: largest difference in
            probabilities from the float Keras model accepted on the sample
            inputs, for the int8 Keras copy and for the reloaded export.

    Returns:
        The path of the export.

    Raises:
        ExportError: ``path`` exists and ``overwrite`` is False, the export
            could not be written (e.g. a read-only folder), or it did not
            reload with the same outputs. ``path`` is untouched in every one
            of these cases, and no temporary files are left behind.
        ConfigError: The model's inputs or ``class_names`` do not fit.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 2, weights=None, input_shape=(32, 32, 3))
        >>> tltf.export_saved_model(model, "export/", class_names=["cat", "dog"])
        PosixPath('export')
    """
    require_model(model)
    target = arguments.path("path", path)
    if atol is not None:
        arguments.positive_number("atol", atol, zero=True)
    arguments.positive_number("quantize_atol", quantize_atol, zero=True)
    _check_target(target, overwrite)
    check_mode(quantize)
    model = merge_lora(model)  # LoRA adapters folded in: an ordinary model
    plan = plan_endpoints(model, class_names, image_size, sample_inputs)
    if quantize is not None:
        plan = quantized_plan(model, plan, quantize, quantize_atol, sample_inputs)
    try:
        with atomic_path(
            target, directory=True, exists="replace" if overwrite else "error"
        ) as staging:
            if atol is None and quantize is None:
                atol = FLOAT_ATOL
            metadata = _build(
                model, plan, staging, verify=verify, atol=atol, int8_atol=quantize_atol
            )
            _write_metadata(staging, metadata)
    except FileExistsError as err:
        raise ExportError(
            f"Export path {str(target)!r} appeared during the export; nothing "
            "was replaced. Choose a new path, or pass overwrite=True."
        ) from err
    except OSError as err:
        raise _not_writable(target, err) from err
    return target


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Reads ``assets/tltf_export.json`` of an export.

    Args:
        path: The export folder, or a ``.tflite`` file of `tltf.export_litert`
            (its JSON sidecar is read).

    Returns:
        The metadata: modality, signatures, class names, custom ops, the
        rejection threshold, quantization, checks.

    Raises:
        ExportError: ``path`` holds no tltf export.
    """
    path = arguments.path("path", path)
    if path.suffix == ".tflite":
        file = path.with_suffix(".json")
        if not file.is_file():
            raise ExportError(
                f"{str(path)!r} has no tltf sidecar ({file.name}). Export the "
                f"model with tltf.export_litert. Received: {str(path)!r}"
            )
        return json.loads(file.read_text())
    file = path / "assets" / METADATA_FILE
    if not file.is_file():
        raise ExportError(
            f"{str(path)!r} is not a tltf export (no assets/{METADATA_FILE}). "
            f"Export a model with tltf.export_saved_model. Received: {str(path)!r}"
        )
    return json.loads(file.read_text())


# --- writing ---


def _check_target(target: Path, overwrite: bool) -> None:
    if target.exists() and not overwrite:
        raise ExportError(
            f"Export path {str(target)!r} already exists. Choose a new path, or "
            f"pass overwrite=True (--overwrite) to replace it. Received: "
            f"{str(target)!r}"
        )
    if target.exists() and not target.is_dir():
        raise ExportError(
            f"Export path {str(target)!r} is a file; a SavedModel is a folder. "
            "Choose another path."
        )


def _not_writable(target: Path, err: OSError) -> ExportError:
    reason = err.strerror or first_line(err)
    where = err.filename or target.parent
    return ExportError(
        f"Cannot write the export to {str(target)!r}: {reason} ({str(where)!r}). "
        "Choose a folder you can write to (--output). Nothing was left behind."
    )


def _build(
    model: keras.Model,
    plan: ServingPlan,
    staging: Path,
    *,
    verify: bool,
    atol: float | None,
    int8_atol: float,
) -> dict[str, Any]:
    main = staging  # The SavedModel is the export folder itself.
    _write_archive(model, plan.endpoints, main)
    custom_ops = _custom_ops(main)
    models = [("saved_model", main, plan.endpoints, custom_ops)]
    if plan.modality == "text" and custom_ops and plan.token_endpoint is not None:
        token_only = [dataclasses.replace(plan.token_endpoint, name="serving_default")]
        _write_archive(model, token_only, main / TOKEN_IDS_MODEL)
        models.append((TOKEN_IDS_MODEL, main / TOKEN_IDS_MODEL, token_only, []))
    checks = _verify(models, atol, int8_atol, plan.threshold) if verify else {}
    if verify:
        custom_ops = checks["saved_model"]["custom_ops"]
    return plan.metadata(custom_ops, checks, len(models) > 1)


def _write_archive(
    model: keras.Model, endpoints: Sequence[Endpoint], path: Path
) -> None:
    archive = keras.export.ExportArchive()
    # Not archive.track(model): the endpoints already capture every variable
    # they use, and tracking the model as well stores each variable twice.
    for endpoint in endpoints:
        archive.add_endpoint(endpoint.name, endpoint.fn, endpoint.input_signature)
    try:
        archive.write_out(str(path), verbose=False)
    except Exception as err:
        raise ExportError(
            f"Could not write the SavedModel to {str(path)!r}: {first_line(err)}"
        ) from err


def _custom_ops(saved_model_dir: Path) -> list[str]:
    """Ops of the SavedModel that core TensorFlow does not define (TF Text's)."""
    from tltf.export.check import graph_ops

    return sorted(
        op for op in graph_ops(str(saved_model_dir)) if not hasattr(tf.raw_ops, op)
    )


def _write_metadata(staging: Path, metadata: dict[str, Any]) -> None:
    assets = staging / "assets"
    assets.mkdir(exist_ok=True)
    (assets / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


# --- verification in a fresh process ---


def _verify(
    models: Sequence[tuple[str, Path, Sequence[Endpoint], list[str]]],
    atol: float | None,
    int8_atol: float,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Reloads SavedModels in plain TensorFlow and compares their outputs.

    Args:
        models: ``(key, folder, endpoints, custom ops)`` per SavedModel, all
            checked in one fresh process; TF Text is imported only for
            SavedModels with custom ops, after the others are loaded.
        atol: Largest difference in probabilities from the Keras model
            accepted (None: recorded, not bounded; int8 endpoints only).
        int8_atol: Largest difference from the float model accepted, for
            endpoints of an int8 copy (``float_expected``).
        threshold: The rejection threshold the signatures apply, or None.

    Returns:
        ``{key: check summary}``.
    """
    requests = [
        (
            folder,
            {
                "allow_tensorflow_text": bool(custom_ops),
                "calls": [
                    {"signature": e.name, "inputs": _encode_inputs(e.sample)}
                    for e in endpoints
                ],
            },
        )
        for _, folder, endpoints, custom_ops in models
    ]
    responses = _run_checks(requests)
    return {
        key: _summarize(response, endpoints, atol, int8_atol, threshold)
        for (key, _, endpoints, _), response in zip(models, responses)
    }


def _summarize(
    response: dict[str, Any],
    endpoints: Sequence[Endpoint],
    atol: float | None,
    int8_atol: float,
    threshold: float | None,
) -> dict[str, Any]:
    if response["unresolved_ops"]:
        raise ExportError(
            "The export uses ops that plain TensorFlow (and TF Text) cannot "
            f"load: {response['unresolved_ops']}. Export a model without them."
        )
    summary = {
        "reloaded_in_fresh_process": True,
        "custom_ops": response["custom_ops"],
        "loaded_libraries": response["loaded_libraries"],
        "keras_imported": response["keras_imported"],
        "signatures": response["signatures"],
        "num_samples": {e.name: len(e.expected) for e in endpoints},
    }
    worst: dict[str, float] = {}
    for endpoint, result in zip(endpoints, response["results"]):
        for key, diff in _compare(endpoint, result, atol, int8_atol, threshold).items():
            worst[key] = max(worst.get(key, 0.0), diff)
    return {**summary, **worst}


def _run_checks(requests: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Runs `check.py` on every SavedModel of the export, in one fresh process.

    One process, not one per SavedModel: importing TensorFlow is most of a
    check's cost (~5 CPU seconds). Those that must load without TF Text go
    first, so they are loaded before it is.
    """
    order = sorted(
        range(len(requests)), key=lambda i: requests[i][1]["allow_tensorflow_text"]
    )
    with tempfile.TemporaryDirectory(prefix="tltf-check-") as tmp:
        jobs = [
            {
                "saved_model": str(requests[i][0]),
                "request": requests[i][1],
                "response": str(Path(tmp, f"response{i}.json")),
            }
            for i in order
        ]
        jobs_file = Path(tmp, "jobs.json")
        jobs_file.write_text(json.dumps(jobs))
        cmd = [sys.executable, str(_CHECK_SCRIPT), str(jobs_file)]
        try:  # run() kills the process if it times out or is interrupted.
            done = subprocess.run(
                cmd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                timeout=_CHECK_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as err:
            raise ExportError("Reloading the export took too long.") from err
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(
                "The export did not reload in a fresh TensorFlow process: "
                f"{tail}. Nothing was written to the target."
            )
        return [_response(Path(tmp, f"response{i}.json")) for i in range(len(requests))]


def _response(response_file: Path) -> dict[str, Any]:
    if not response_file.is_file():
        raise ExportError(
            "The export did not reload in a fresh TensorFlow process: no "
            "response. Nothing was written to the target."
        )
    return json.loads(response_file.read_text())


def _encode_inputs(sample: dict[str, Any]) -> dict[str, Any]:
    encoded = {}
    for name, value in sample.items():
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            values = [base64.b64encode(v).decode("ascii") for v in value]
            encoded[name] = {"dtype": "bytes_b64", "values": values}
        elif isinstance(value, list):
            encoded[name] = {"dtype": "string", "values": value}
        else:
            array = np.asarray(value)
            encoded[name] = {"dtype": array.dtype.name, "values": array.tolist()}
    return encoded


def _compare(
    endpoint: Endpoint,
    result: dict[str, Any],
    atol: float | None,
    int8_atol: float,
    threshold: float | None = None,
) -> dict[str, float]:
    """Checks one signature's outputs; returns its largest differences.

    A float endpoint is held to the Keras model within ``atol``; an endpoint
    of an int8 copy to the float model within ``int8_atol`` (its difference
    from the int8 Keras copy is returned as ``versus_int8_keras`` and bounded
    only by a given ``atol``).
    """
    key = endpoint.compare_key
    got = np.asarray(result[key]["values"], dtype="float64")
    if endpoint.float_expected is None:
        diff = _held_to(
            endpoint,
            result,
            got,
            endpoint.expected,
            atol,
            10 * atol,
            threshold,
            "the Keras model",
        )
        return {"max_abs_difference": diff}
    diff = _held_to(
        endpoint,
        result,
        got,
        endpoint.float_expected,
        int8_atol,
        CLEAR_MARGIN,
        threshold,
        "the float Keras model",
    )
    own = _held_to(
        endpoint, {}, got, endpoint.expected, atol, 0.0, None, "the int8 Keras copy"
    )
    return {"max_abs_difference": diff, "versus_int8_keras": own}


def _held_to(
    endpoint: Endpoint,
    result: dict[str, Any],
    got: np.ndarray,
    expected: np.ndarray,
    atol: float | None,
    margin: float,
    threshold: float | None,
    what: str,
) -> float:
    """The largest difference of ``got`` from ``expected``, within ``atol``.

    Where ``result`` has class indices, they must match ``expected``'s answers
    on rows whose top two probabilities (and top and ``threshold``) are more
    than ``margin`` apart: closer ties may break either way.
    """
    key = endpoint.compare_key
    want = np.asarray(expected, dtype="float64")
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    if got.shape != want.shape or (atol is not None and not diff <= atol):
        raise ExportError(
            f"The reloaded export's '{endpoint.name}' signature disagrees with "
            f"{what}: largest difference in {key} {diff:.3g} > "
            f"atol={atol}. Nothing was written to the target."
        )
    if "class_index" in result and want.ndim == 2 and want.shape[-1] > 1:
        top2 = np.sort(want, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > margin
        if threshold is not None:
            clear &= np.abs(top2[:, 1] - threshold) > margin
        got_index = np.asarray(result["class_index"]["values"])
        if np.any(got_index[clear] != answer(want, threshold)[clear]):
            raise ExportError(
                f"The reloaded export's '{endpoint.name}' signature picks other "
                f"top classes than {what}. Nothing was written."
            )
    return diff
