"""Reloads a SavedModel with plain TensorFlow and runs its signatures.

This file is run as a script in a fresh process by `tltf.export_saved_model`
(``python check.py <jobs.json>``, one job per SavedModel of the export). It
must never import tltf, Keras or KerasHub: it proves that a serving system that
has never heard of tltf can load the export. It imports ``tensorflow_text``
only when the request allows it and the SavedModel uses ops that plain
TensorFlow does not register, and reports which ops those were.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's __init__ imports Keras 3 eagerly (and scikit-learn through
# it) to register Keras optimizers, unless TF_USE_LEGACY_KERAS points tf.keras
# at tf_keras, whose import then fails quietly. A serving system loads the
# SavedModel without Keras, and so does this check: 2-3 of its ~7 CPU
# seconds, on every export. It never uses tf.keras.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Run as a script, this file's folder is sys.path[0]: its modules (litert.py,
# quantize.py) would shadow the top-level modules TensorFlow imports.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import tensorflow as tf  # noqa: E402
from tensorflow.core.protobuf import saved_model_pb2  # noqa: E402

# tltf/_compat.py holds every private TensorFlow name tltf uses; it is loaded
# by path (not as tltf._compat) so that tltf and Keras stay unimported.
_spec = importlib.util.spec_from_file_location(
    "tltf_compat", os.path.join(os.path.dirname(__file__), os.pardir, "_compat.py")
)
_compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_compat)


def graph_ops(saved_model_dir: str) -> set[str]:
    """Op types the SavedModel's graphs use (its own functions left out)."""
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops: set[str] = set()
    functions: set[str] = set()
    for meta_graph in proto.meta_graphs:
        ops.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            functions.add(function.signature.name)
            ops.update(node.op for node in function.node_def)
    return ops - functions


def unregistered_ops(saved_model_dir: str) -> list[str]:
    """Op types used by the SavedModel that this process does not know."""
    return sorted(
        op for op in graph_ops(saved_model_dir) if not _compat.op_registered(op)
    )


def decode_tensor(spec: dict) -> tf.Tensor:
    """Turns a JSON tensor (``{"dtype", "values"}``) into a tensor."""
    if spec["dtype"] == "bytes_b64":
        return tf.constant([base64.b64decode(v) for v in spec["values"]])
    return tf.constant(spec["values"], dtype=spec["dtype"])


def encode_tensor(tensor: tf.Tensor) -> dict:
    """Turns a tensor into JSON: strings as UTF-8 text, numbers as lists."""
    value = tensor.numpy()
    if tensor.dtype == tf.string:
        flat = [v.decode("utf-8", "replace") for v in value.reshape(-1).tolist()]
        return {"dtype": "string", "shape": list(value.shape), "values": flat}
    return {"dtype": tensor.dtype.name, "values": value.tolist()}


def describe_signatures(loaded) -> dict:
    """Input and output names, dtypes and shapes of every signature."""
    out = {}
    for name, fn in loaded.signatures.items():
        _, kwargs = fn.structured_input_signature
        out[name] = {
            "inputs": {k: [s.dtype.name, s.shape.as_list()] for k, s in kwargs.items()},
            "outputs": {
                k: [s.dtype.name, s.shape.as_list()]
                for k, s in fn.structured_outputs.items()
            },
        }
    return out


def check(saved_model_dir: str, request: dict, libraries: list[str]) -> dict:
    """Loads one SavedModel and runs the request's calls on it.

    ``libraries`` lists the op libraries this process has loaded so far; TF
    Text is added to it only if the request allows it and the SavedModel
    needs it.
    """
    missing = unregistered_ops(saved_model_dir)
    wanted = missing and request.get("allow_tensorflow_text")
    if wanted and "tensorflow_text" not in libraries:
        import tensorflow_text  # noqa: F401  (registers the TF Text ops)

        libraries.append("tensorflow_text")
    still_missing = unregistered_ops(saved_model_dir) if libraries else missing
    response = {
        "custom_ops": missing,
        "loaded_libraries": list(libraries),
        "unresolved_ops": still_missing,
    }
    if not still_missing:
        loaded = tf.saved_model.load(saved_model_dir)
        response["signatures"] = describe_signatures(loaded)
        response["results"] = []
        for call in request["calls"]:
            fn = loaded.signatures[call["signature"]]
            inputs = {k: decode_tensor(v) for k, v in call["inputs"].items()}
            outputs = fn(**inputs)
            response["results"].append(
                {k: encode_tensor(v) for k, v in sorted(outputs.items())}
            )
    response["keras_imported"] = "keras" in sys.modules
    return response


def main(argv: list[str]) -> int:
    """``check.py <jobs.json>``: ``[{"saved_model", "request", "response"}]``
    (the request itself, the path its response is written to).

    The jobs run in order in this one process (one TensorFlow import, ~5 CPU
    seconds, for all of them); the caller puts the SavedModels that must load
    without TF Text first, so that they are loaded before it is.
    """
    (jobs_path,) = argv
    with open(jobs_path) as f:
        jobs = json.load(f)
    libraries: list[str] = []
    for job in jobs:
        response = check(job["saved_model"], job["request"], libraries)
        with open(job["response"], "w") as f:
            json.dump(response, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
