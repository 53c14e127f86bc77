"""The serving signatures of an export, with sample inputs to check them on.

`plan_endpoints` looks at a model's input (pixels, strings or another tensor)
and makes the ``tf.function`` bodies of its signatures, the input specs that
name their inputs, and for each a few sample inputs with the Keras model's
own outputs on them, which the export check compares against. The pieces
every modality shares (`Endpoint`, `ServingPlan`, the outputs) are in
`tltf.export.plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.backbones.kerashub import TextPreprocess
from tltf.errors import ConfigError
from tltf.export.plan import (
    Endpoint,
    ServingPlan,
    class_names_for,
    compare_key,
    keras_outputs,
    outputs_fn,
    rejection_metadata,
    task_of,
)

DEFAULT_TEXT_SAMPLES = (
    "This is a short example sentence.",
    "Another input, longer than the first one, to check the export with.",
    "ok",
)
_SEED = 20240611
# The first bytes of the image files `tf.io.decode_image` reads (WebP aside).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM")
#: What a call of an image export's byte signature with other bytes says.
NOT_AN_IMAGE = (
    "image_bytes holds bytes that are not an image file. Send the bytes of each "
    "image file as they are (JPEG, PNG, GIF, BMP or WebP), not a path, base64 "
    "text or decoded pixels (the pixels signature takes pixels)."
)


def plan_endpoints(
    model: keras.Model,
    class_names: Sequence[str] | None,
    image_size: tuple[int, int] | None,
    sample_inputs: Sequence[Any] | None,
) -> ServingPlan:
    """Chooses the signatures of ``model``'s export.

    Args:
        model: A single-input Keras model.
        class_names: Label names, or None for ``"0", "1", ...``.
        image_size: Size image bytes are resized to; None for the model's.
        sample_inputs: Raw sample inputs for the check, or None.

    Returns:
        The plan, with sample inputs and the Keras model's outputs on them.

    Raises:
        ConfigError: Several inputs, or class names that do not fit.
    """
    if len(model.inputs) != 1:
        raise ConfigError(
            f"export_saved_model needs a model with one input; '{model.name}' "
            f"has {len(model.inputs)}. Received: {model.inputs}"
        )
    task, num_outputs = task_of(model)
    names = class_names_for(class_names, num_outputs, task)
    rejection = rejection_metadata(model)
    threshold = rejection["threshold"] if rejection else None
    outputs = outputs_fn(task, names, threshold)
    spec = model.inputs[0]
    if spec.dtype == "string":
        plan = _text_plan(model, task, names, outputs, sample_inputs)
    elif len(spec.shape) == 4 and spec.shape[-1] in (1, 3):
        plan = _image_plan(model, task, names, outputs, image_size, sample_inputs)
    else:
        plan = _tensor_plan(model, task, names, outputs, sample_inputs)
    plan.rejection = rejection
    return plan


# --- images ---


def _image_plan(model, task, names, outputs, image_size, samples) -> ServingPlan:
    size, channels = _served_size(model, image_size)
    pixel_shape = (*size, channels)
    decode, serve_bytes, serve_pixels = _image_functions(model, outputs, pixel_shape)
    encoded = _image_samples(samples) or _sample_images(size, channels)
    pixels = np.stack([decode(tf.constant(b)).numpy() for b in encoded])
    expected = keras_outputs(model, pixels)
    key = compare_key(task)
    bytes_spec = tf.TensorSpec([None], tf.string, name="image_bytes")
    pixel_spec = tf.TensorSpec([None, *pixel_shape], tf.float32, name="pixels")
    endpoints = [
        Endpoint(
            "serving_default",
            serve_bytes,
            [bytes_spec],
            {"image_bytes": encoded},
            expected,
            key,
            f"Encoded JPEG/PNG/GIF/BMP bytes, decoded and resized to {size}.",
        ),
        Endpoint(
            "pixels",
            serve_pixels,
            [pixel_spec],
            {"pixels": pixels},
            expected,
            key,
            f"Float RGB pixels in [0, 255], shape (batch, {size[0]}, {size[1]}, "
            f"{channels}).",
        ),
    ]
    return ServingPlan("image", task, names, endpoints, image_size=size)


def _image_samples(samples: Any) -> list[bytes]:
    """``sample_inputs`` of an image model as a list of encoded images."""
    if samples is None:
        return []
    items = [samples] if isinstance(samples, bytes) else None
    if items is None and not isinstance(samples, np.ndarray):
        items = list(samples) if hasattr(samples, "__iter__") else None
    if items is None or not all(isinstance(item, bytes) for item in items):
        raise ConfigError(
            "sample_inputs of an image model must be encoded image files (the "
            "bytes of JPEG, PNG, GIF or BMP files, e.g. [Path('cat.jpg')."
            "read_bytes()]), not pixels. Received: "
            f"{type(samples).__name__}{getattr(samples, 'shape', '')}"
        )
    return items


def _text_samples(samples: Any) -> list[str]:
    """``sample_inputs`` of a text model as a list of strings."""
    if samples is None:
        return []
    if isinstance(samples, str):
        return [samples]
    if isinstance(samples, np.ndarray) and samples.dtype.kind not in "USO":
        raise ConfigError(
            "sample_inputs of a text model must be texts (a list of strings). "
            f"Received: an array of {samples.dtype} of shape {samples.shape}"
        )
    return [str(s) for s in samples]


def _served_size(model, image_size) -> tuple[tuple[int, int], int]:
    """The exported image size (the model's unless given) and channel count."""
    height, width, channels = model.inputs[0].shape[1:]
    if image_size is not None:
        image_size = arguments.image_size(image_size)
    size = tuple(image_size or (height, width))
    if None in size:
        raise ConfigError(
            f"Model '{model.name}' takes images of any size; pass image_size="
            "(height, width) so that exported image bytes are resized to it."
        )
    return size, channels


def _image_functions(model, outputs, pixel_shape):
    """``decode`` (bytes -> pixels) and the two serving functions."""
    size, channels = pixel_shape[:2], pixel_shape[2]

    def decode(data):
        with tf.name_scope("image_bytes_must_be_JPEG_PNG_GIF_BMP_or_WebP_files"):
            check = tf.debugging.Assert(_is_image_file(data), [NOT_AN_IMAGE])
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(image, size)
        image.set_shape(pixel_shape)
        return image

    def serve_bytes(image_bytes):
        spec = tf.TensorSpec(pixel_shape, tf.float32)
        pixels = tf.map_fn(decode, image_bytes, fn_output_signature=spec)
        return outputs(model(pixels, training=False))

    def serve_pixels(pixels):
        return outputs(model(tf.cast(pixels, tf.float32), training=False))

    return decode, serve_bytes, serve_pixels


def _is_image_file(data: tf.Tensor) -> tf.Tensor:
    """Whether ``data`` starts as a JPEG, PNG, GIF, BMP or WebP file does."""
    starts = [tf.strings.substr(data, 0, len(magic)) == magic for magic in _MAGIC]
    webp = tf.logical_and(
        tf.strings.substr(data, 0, 4) == b"RIFF",
        tf.strings.substr(data, 8, 4) == b"WEBP",
    )
    return tf.reduce_any(tf.stack([*starts, webp]))


def _sample_images(size: tuple[int, int], channels: int) -> list[bytes]:
    """Two PNGs and a JPEG of random pixels, not of the model's size."""
    rng = np.random.default_rng(_SEED)
    images = [
        rng.integers(0, 256, (size[0] + 7, size[1] + 5, channels), dtype="uint8")
        for _ in range(3)
    ]
    encoded = [tf.io.encode_png(image).numpy() for image in images[:2]]
    jpeg = tf.io.encode_jpeg(images[2]) if channels in (1, 3) else None
    if jpeg is not None:
        encoded.append(jpeg.numpy())
    return encoded


# --- text ---


def _text_plan(model, task, names, outputs, samples) -> ServingPlan:
    rank = len(model.inputs[0].shape)

    def serve_text(text):
        x = tf.reshape(text, (-1, 1)) if rank == 2 else text
        return outputs(model(x, training=False))

    strings = _text_samples(samples) or list(DEFAULT_TEXT_SAMPLES)
    x = np.asarray(strings, dtype=object)
    x = x.reshape(-1, 1) if rank == 2 else x
    expected = keras_outputs(model, tf.constant(x))
    key = compare_key(task)
    text = Endpoint(
        "serving_default",
        serve_text,
        [tf.TensorSpec([None], tf.string, name="text")],
        {"text": strings},
        expected,
        key,
        "Raw UTF-8 strings, tokenized inside the graph.",
    )
    token = _token_endpoint(model, tf.constant(x), outputs, key)
    endpoints = [text] + ([token] if token is not None else [])
    return ServingPlan("text", task, names, endpoints, token_endpoint=token)


def _token_endpoint(model, strings, outputs, key) -> Endpoint | None:
    """The signature that starts after the tokenizer, if the model has one."""
    split = split_at_tokenizer(model, strings)
    if split is None:
        return None
    encoder, names, values = split
    specs = [
        tf.TensorSpec([None, *v.shape[1:]], v.dtype, name=n)
        for n, v in zip(names, values)
    ]
    # Functional models made from inner tensors take a dict keyed by the
    # names Keras gave those tensors, in the order they were passed.
    keys = [t.name for t in encoder.inputs]

    def serve_tokens(*tensors):
        return outputs(encoder(dict(zip(keys, tensors)), training=False))

    sample = {n: keras.ops.convert_to_numpy(v) for n, v in zip(names, values)}
    return Endpoint(
        "token_ids",
        serve_tokens,
        specs,
        sample,
        keras_outputs(model, strings),
        key,
        "The tokenizer's outputs (" + ", ".join(names) + "); needs no custom ops.",
    )


def split_at_tokenizer(
    model: keras.Model, strings: tf.Tensor
) -> tuple[keras.Model, list[str], list[tf.Tensor]] | None:
    """Splits a text model after its tokenizer.

    The tokenizer is the layer named ``"preprocess"`` (as in models built by
    `tltf.build_text_classifier`).

    Args:
        model: A text model.
        strings: Sample strings, tokenized to name and check the outputs.

    Returns:
        ``(model from the token tensors to the outputs, token tensor names,
        the sample's token tensors)``, or None when the model has no such
        layer.
    """
    try:
        layer = model.get_layer("preprocess")
    except ValueError:
        return None
    # A LiteRT file takes token ids of one length: the tokenizer's own, not
    # the sample's longest text (a trimming `TextPreprocess` cuts to that).
    trims = isinstance(layer, TextPreprocess)
    tokens = layer.fixed_length(strings) if trims else layer(strings)
    # Keras flattens a layer's dict output by sorted key.
    names = sorted(tokens) if isinstance(tokens, Mapping) else ["token_ids"]
    values = [tokens[n] for n in names] if isinstance(tokens, Mapping) else [tokens]
    symbolic = keras.tree.flatten(layer.output)
    if [t.dtype for t in symbolic] != [
        keras.backend.standardize_dtype(v.dtype) for v in values
    ]:
        return None
    try:
        encoder = keras.Model(symbolic, model.outputs, name=f"{model.name}_ids")
    except Exception:  # noqa: BLE001 - any failure means "cannot split here".
        return None
    return encoder, names, values


# --- other tensors ---


def _tensor_plan(model, task, names, outputs, samples) -> ServingPlan:
    spec = model.inputs[0]

    def serve(inputs):
        return outputs(model(inputs, training=False))

    shape = [None, *spec.shape[1:]]
    if samples is not None:
        x = np.asarray(samples)
    else:
        rng = np.random.default_rng(_SEED)
        concrete = [3] + [d or 4 for d in spec.shape[1:]]
        x = rng.uniform(0, 1, concrete).astype(spec.dtype)
    endpoint = Endpoint(
        "serving_default",
        serve,
        [tf.TensorSpec(shape, spec.dtype, name="inputs")],
        {"inputs": x},
        keras_outputs(model, x),
        compare_key(task),
        f"The model's input tensor, shape {shape}.",
    )
    return ServingPlan("tensor", task, names, [endpoint])
