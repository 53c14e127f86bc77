"""What an export serves, before it is written: endpoints and their outputs.

- `Endpoint`: one serving signature, with sample inputs and the Keras
  model's outputs on them (what the export check compares against).
- `ServingPlan`: every endpoint of an export and its metadata file.
- The outputs every signature returns (`outputs_fn`: class index, name and
  probabilities, with the rejection threshold of a calibrated model) and
  what they are compared on.

`tltf.export.signatures` makes the plan of a model (pixels, strings or
another tensor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf.data.inputs import as_list
from tltf.data.labels import check_distinct
from tltf.errors import ConfigError
from tltf.evaluation.calibration import UNKNOWN_INDEX, UNKNOWN_NAME
from tltf.evaluation.predictions import calibration_of
from tltf.model import parts_of


@dataclasses.dataclass
class Endpoint:
    """One serving signature and what the check compares it on.

    Attributes:
        name: Signature name (``serving_default``, ``pixels``, ``token_ids``).
        fn: Traceable function from input tensors to a dict of outputs.
        input_signature: Named ``tf.TensorSpec`` per positional input.
        sample: Sample inputs by input name.
        expected: The Keras model's outputs on the sample.
        compare_key: Output compared with ``expected``.
        description: One line for the metadata.
        float_expected: For an endpoint of an int8 copy: the float model's
            outputs on the same sample, which the reloaded export is held to
            (see `tltf.export.quantize.quantized_plan`); None otherwise.
    """

    name: str
    fn: Callable[..., dict[str, tf.Tensor]]
    input_signature: list[tf.TensorSpec]
    sample: dict[str, Any]
    expected: np.ndarray
    compare_key: str
    description: str
    float_expected: np.ndarray | None = None


@dataclasses.dataclass
class ServingPlan:
    """Everything the export writes, before it is written."""

    modality: str
    task: str
    class_names: list[str]
    endpoints: list[Endpoint]
    token_endpoint: Endpoint | None = None
    image_size: tuple[int, int] | None = None
    #: ``{"threshold", "temperature", ...}`` of a calibrated model, else None.
    rejection: dict[str, Any] | None = None
    #: What `tltf.export.quantize.quantized_copy` quantized, else None.
    quantization: dict[str, Any] | None = None

    @property
    def threshold(self) -> float | None:
        """The rejection threshold the signatures apply, or None."""
        return self.rejection["threshold"] if self.rejection else None

    def metadata(
        self, custom_ops: list[str], checks: dict[str, Any], token_model: bool
    ) -> dict[str, Any]:
        """The content of ``assets/tltf_export.json``."""
        from tltf import __version__

        signatures = {
            e.name: {
                "description": e.description,
                "inputs": {s.name: spec_json(s) for s in e.input_signature},
                "outputs": self.output_names(),
            }
            for e in self.endpoints
        }
        return {
            "format": "tltf-saved-model/1",
            "tltf_version": __version__,
            "modality": self.modality,
            "task": self.task,
            "class_names": self.class_names,
            "image_size": list(self.image_size) if self.image_size else None,
            "signatures": signatures,
            "custom_ops": custom_ops,
            "requires": requirements(custom_ops),
            "token_ids_model": "token_ids_model" if token_model else None,
            "rejection": self.rejection,
            "quantization": self.quantization,
            "verification": checks or None,
        }

    def output_names(self) -> list[str]:
        """Names of the outputs every signature returns."""
        if self.task == "regression":
            return ["predictions"]
        return ["class_index", "class_name", "probabilities"]


def rejection_metadata(model: keras.Model) -> dict[str, Any] | None:
    """The rejection threshold and temperature of a calibrated tltf model.

    Returns:
        ``{"threshold", "temperature", "unknown_class_index",
        "unknown_class_name"}``, or None when the model has no threshold
        (a temperature alone is in the graph and needs no metadata to use).
    """
    temperature, threshold = calibration_of(model)
    if threshold is None:
        return None
    return {
        "threshold": threshold,
        "temperature": temperature,
        "unknown_class_index": UNKNOWN_INDEX,
        "unknown_class_name": UNKNOWN_NAME,
        "rule": "class_index is -1 and class_name is 'unknown' where the "
        "largest probability is below threshold.",
    }


# --- outputs ---


def task_of(model: keras.Model) -> tuple[str, int]:
    head = parts_of(model).head
    num_outputs = int(model.outputs[0].shape[-1])
    if head is not None:
        return head.task, num_outputs
    return ("multiclass" if num_outputs > 1 else "regression"), num_outputs


def class_names_for(class_names, num_outputs: int, task: str) -> list[str]:
    if task == "regression":
        return []
    if class_names is None:
        return [str(i) for i in range(num_outputs)]
    names = [str(n) for n in as_list(class_names)]
    check_distinct(names, "export")
    if len(names) != num_outputs:
        raise ConfigError(
            f"The model has {num_outputs} outputs but {len(names)} class names "
            f"were given. Pass one name per class, in label order. Received: "
            f"class_names={names}"
        )
    return names


def outputs_fn(task: str, names: list[str], threshold: float | None) -> Callable:
    def outputs(y):
        y = tf.cast(y, tf.float32)
        if task == "regression":
            return {"predictions": y}
        index = tf.argmax(y, axis=-1)
        if threshold is not None:
            accepted = tf.reduce_max(y, axis=-1) >= tf.constant(threshold, tf.float32)
            index = tf.where(accepted, index, tf.constant(UNKNOWN_INDEX, tf.int64))
        # "unknown" is the last name; index -1 picks it.
        known = tf.where(index < 0, tf.constant(len(names), tf.int64), index)
        return {
            "probabilities": y,
            "class_index": index,
            "class_name": tf.gather(tf.constant([*names, UNKNOWN_NAME]), known),
        }

    return outputs


def keras_outputs(model: keras.Model, x) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(x, training=False)).astype("float32")


def compare_key(task: str) -> str:
    return "predictions" if task == "regression" else "probabilities"


def spec_json(spec: tf.TensorSpec) -> dict[str, Any]:
    return {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}


def requirements(custom_ops: list[str]) -> str | None:
    if not custom_ops:
        return None
    return (
        "The text signature uses TF Text ops (" + ", ".join(custom_ops) + "): "
        "run `import tensorflow_text` before tf.saved_model.load, and use a "
        "TensorFlow Serving build with TF Text ops. Without them, serve "
        "token_ids_model/ (signature serving_default takes token ids)."
    )
