"""The model class the builders return: a Keras functional model that knows its
parts and takes data the way users have it.

`TransferModel` is an ordinary functional ``keras.Model`` (it saves, reloads,
distributes and exports like one). As keras-hub's ``Task`` holds its
``backbone`` and ``preprocessor``, it holds its parts (`ModelParts`): its
``backbone``, its ``head`` and its ``preprocessing``, located once when the
model is constructed (by a builder, a ``.keras`` load or a strategy's copy).
tltf's functions read them there (`parts_of`), or receive them, and never
search the layers again; only a model from outside tltf (a user's functional
model, a ``.keras`` file of another kind) is searched, once.

Its ``fit``, ``evaluate`` and ``predict`` read inputs as KerasHub tasks do:
text as a Python list, a NumPy unicode or object array, a pandas ``Series``
or one bare string (`tltf.data.inputs`). Before training they also check the
labels against the head's classes (`check_classes`), so a wrong
``num_classes`` fails with one clear line instead of a graph error, or
training that looks fine and is not.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.backbones.layers import Backbone
from tltf.data.base import LoadedData, class_names_of
from tltf.data.inputs import (
    as_batched,
    as_inputs,
    as_labels,
    as_list,
    check_finite,
    is_string_input,
)
from tltf.errors import ConfigError, DataError
from tltf.fit_checks import FitChecks
from tltf.heads import Head
from tltf.parts import ModelParts, require_backbone, require_head
from tltf.progress import resolve_verbose
from tltf.traced import match_optimizer, quiet_retracing, renewed

logger = logging.getLogger(__name__)

__all__ = [
    "TransferModel",
    "backbone_of",
    "check_classes",
    "check_data",
    "check_inputs",
    "describe",
    "head_of",
    "input_signature",
    "label_errors",
    "parts_of",
    "same_inputs",
]

#: Parts of models from outside tltf, located once per model.
_LOCATED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="tltf")
class TransferModel(keras.Model):
    """A functional model built by a tltf builder, which knows its parts.

    Construct it like ``keras.Model(inputs, outputs, name=...)``. Everything
    Keras does with a functional model works the same; ``fit``, ``evaluate``
    and ``predict`` (and their ``*_on_batch`` forms) also accept text as
    Python lists, NumPy unicode arrays and pandas objects, and ``fit`` and
    ``evaluate`` check the labels against the head's number of classes.

    Its parts, located once when it is constructed (built, reloaded or
    copied): ``backbone``, ``head`` and ``preprocessing`` (see `ModelParts`).

    Bad input fails before any step with one line (`tltf.DataError`,
    `tltf.ConfigError`): inputs of another kind, shape or channel count,
    NaN or inf in arrays, empty inputs, texts that are missing (None, NaN),
    counts given as strings. ``fit`` takes a `tltf.data.LoadedData` itself
    (its train split, and its validation split unless other validation data
    is given), and `tltf.fit_checks.FitChecks` stops it on a negative
    learning rate, an epoch without a batch or a loss that is not finite.
    The traced train, test and predict steps follow the model's variables,
    trainable flags and settings (`tltf.traced`). ``verbose="auto"`` prints
    plain lines (``2``) when the output is not a terminal.

    Example:
        >>> model = tltf.build_text_classifier(
        ...     "kerashub:all-minilm-l6-v2", 2, sequence_length=32)
        >>> model.predict(["a fine film", "a dull one"]).shape
        (2, 2)
        >>> model.backbone.group_names[:2]
        ['embeddings', 'encoder_0']
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # *args/**kwargs keep Keras reviving it as a functional model.
        super().__init__(*args, **kwargs)
        self._parts = ModelParts.locate(self)
        self._replaced_step: Callable[[keras.Model, Any], dict] | None = None

    @property
    def parts(self) -> ModelParts:
        """The model's parts (`ModelParts`)."""
        return self._parts

    @property
    def backbone(self) -> Backbone:
        """The `Backbone` layer: the pretrained base and its layer groups.

        Raises:
            ConfigError: The model has no `Backbone` layer.
        """
        return require_backbone(self._parts)

    @property
    def head(self) -> Head:
        """The `Head` layer.

        Raises:
            ConfigError: The model has no `Head` layer.
        """
        return require_head(self._parts)

    @property
    def preprocessing(self) -> tuple[keras.layers.Layer, ...]:
        """The layers before the backbone: augmentation, then preprocessing."""
        return self._parts.preprocessing

    @contextlib.contextmanager
    def train_step_replaced(
        self, step: Callable[[keras.Model, Any], dict]
    ) -> Iterator[None]:
        """Runs ``step(model, data)`` instead of the train step while inside.

        For procedures that train with their own step (`tltf.adapt_domain`);
        the model holds nothing of it afterwards, whatever happens inside.

        Example:
            >>> with model.train_step_replaced(my_step):
            ...     model.fit(data, epochs=1)
        """
        self._replaced_step = step
        self.train_function = None  # Retrace: the step changed.
        try:
            yield
        finally:
            self._replaced_step = None
            self.train_function = None

    # --- traced functions: renewed when what they hold changed (tltf.traced) ---

    def make_train_function(self, force: bool = False):
        return renewed(self, "train", super().make_train_function, force)

    def make_test_function(self, force: bool = False):
        return renewed(self, "test", super().make_test_function, force)

    def make_predict_function(self, force: bool = False):
        return renewed(self, "predict", super().make_predict_function, force)

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        if str(filepath).lower().endswith((".h5", ".hdf5")):
            raise ConfigError(
                f"A tltf model saves as a .keras file: the legacy HDF5 format "
                "cannot reload its layers (Backbone, Head). Use "
                f"model.save({str(Path(str(filepath)).with_suffix('.keras'))!r}) "
                "(or model.save_weights('....weights.h5') for weights only). "
                f"Received: {str(filepath)!r}"
            )
        match_optimizer(self)  # Saved as the reload builds it: no state lost.
        return super().save(filepath, *args, **kwargs)

    def load_weights(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        match_optimizer(self)  # Built as the saved one was: its state loads.
        return super().load_weights(filepath, *args, **kwargs)

    def train_step(self, data: Any) -> dict[str, Any]:
        if self._replaced_step is None:
            return super().train_step(data)
        return self._replaced_step(self, data)

    def fit(self, x=None, y=None, *args: Any, validation_data=None, **kwargs: Any):
        check_counts(kwargs, epochs=1, batch_size=1, steps_per_epoch=1)
        if kwargs.get("validation_split") is not None:
            arguments.fraction("validation_split", kwargs["validation_split"])
        if isinstance(x, LoadedData):  # Its splits, as fit(data.train, ...).
            if validation_data is None and "validation_split" not in kwargs:
                validation_data = x.validation
            x = x.train
        x, y = self._user_data(x, y, "x")
        validation_data = self._user_validation(validation_data)
        if isinstance(x, tf.data.Dataset) and not args:
            kwargs.setdefault("shuffle", False)  # A dataset shuffles itself.
        if len(args) < 4:  # callbacks= is not given by position
            kwargs["callbacks"] = _with_checks(kwargs.get("callbacks"))
        if len(args) < 3:  # verbose= is not given by position
            kwargs["verbose"] = resolve_verbose(kwargs.get("verbose", "auto"))
        with label_errors(self), quiet_fit(kwargs, "steps_per_epoch"):
            return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args: Any, **kwargs: Any):
        check_counts(kwargs, batch_size=1, steps=1)
        if isinstance(x, LoadedData):
            x = as_batched(x, split="validation", what="x")
        x, y = self._user_data(x, y, "x")
        if len(args) < 2:  # verbose= is not given by position
            kwargs["verbose"] = resolve_verbose(kwargs.get("verbose", "auto"))
        with label_errors(self), quiet_fit(kwargs, "steps"):
            return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args: Any, **kwargs: Any):
        check_counts(kwargs, batch_size=1, steps=1)
        if isinstance(x, LoadedData):
            raise DataError(
                "predict takes inputs, not a tltf.data.LoadedData: pass one of "
                "its splits (model.predict(data.validation)), or use "
                "tltf.evaluate(model, data) for labelled data."
            )
        if x is None:
            raise DataError(
                "predict needs inputs: x is None. Pass the examples to run the "
                "model on (an array of images, a list of texts or a dataset)."
            )
        x = numeric_list(as_inputs(x))
        check_inputs(self, x)
        check_finite(x, "x")
        if len(args) < 2:  # verbose= is not given by position
            kwargs["verbose"] = resolve_verbose(kwargs.get("verbose", "auto"))
        with quiet_fit(kwargs, "steps"):
            return super().predict(x, *args, **kwargs)

    def train_on_batch(self, x, y=None, *args: Any, **kwargs: Any):
        x, y = self._user_data(x, y, "x")
        with label_errors(self):
            return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args: Any, **kwargs: Any):
        x, y = self._user_data(x, y, "x")
        with label_errors(self):
            return super().test_on_batch(x, y, *args, **kwargs)

    def predict_on_batch(self, x):
        return super().predict_on_batch(as_inputs(x))

    def _user_data(self, x: Any, y: Any, what: str) -> tuple[Any, Any]:
        x, y = numeric_list(as_inputs(x, what)), as_labels(y)
        check_inputs(self, x, what)
        check_finite(x, what)
        if isinstance(x, tf.data.Dataset):
            check_classes(self, class_names=class_names_of(x), what=what)
        elif isinstance(y, np.ndarray):
            _check_lengths(x, y, what)
            check_classes(self, labels=y, what="y")
            if y.ndim == 2 and y.shape[-1] == 1 and _takes_class_ids(self):
                # Labels (n, 1) as (n,): a step traced for one rank fails on
                # the other ("Cannot take the length of shape with unknown
                # rank") when a later fit passes labels of the other rank.
                y = y.reshape(-1)
        return x, y

    def _user_validation(self, data: Any) -> Any:
        if isinstance(data, LoadedData):
            data = as_batched(data, split="validation", what="validation_data")
        if isinstance(data, (tuple, list)) and len(data) in (2, 3):
            x, y = self._user_data(data[0], data[1], "validation_data")
            return (x, y, *data[2:])
        if isinstance(data, tf.data.Dataset):
            check_inputs(self, data, "validation_data")
            check_classes(self, class_names=class_names_of(data), what="validation")
        return data


def _check_lengths(x: Any, y: np.ndarray, what: str) -> None:
    """Fails clearly when arrays of inputs and labels differ in length."""
    if y.ndim == 0 or not hasattr(x, "__len__") or isinstance(x, dict):
        return
    if len(x) != len(y):
        raise DataError(
            f"{what} and y need one entry per example. Received lengths "
            f"[{len(x)}, {len(y)}]; pass as many labels as examples."
        )


# --- the parts of any model ---


def parts_of(model: keras.Model) -> ModelParts:
    """The parts of ``model``: its own for a `TransferModel`.

    A model from outside tltf (a user's functional model with a `Backbone`
    or a `Head`, a ``.keras`` file of another kind) is searched once; its
    parts are kept for as long as the model lives.
    """
    if isinstance(model, TransferModel):
        return model.parts
    require_model(model)
    parts = _LOCATED.get(model)
    if parts is None:
        parts = _LOCATED[model] = ModelParts.locate(model)
    return parts


def require_model(model: Any, what: str = "model") -> None:
    """Fails clearly when ``model`` is not a Keras model (None, a path, ...).

    Raises:
        ConfigError: ``model`` is not a ``keras.Model``.
    """
    if not isinstance(model, keras.Model):
        load = (
            " (load it first: keras.saving.load_model(path))"
            if isinstance(model, (str, Path))
            else ""
        )
        raise ConfigError(
            f"{what} must be a Keras model, as tltf.build_image_classifier or "
            f"tltf.build_text_classifier return{load}. Received: "
            f"{what}={model!r:.80}"
        )


def backbone_of(model: keras.Model) -> Backbone:
    """The `Backbone` of ``model`` (see `parts_of`).

    Raises:
        ConfigError: The model has no single `Backbone` layer.
    """
    return require_backbone(parts_of(model))


def head_of(model: keras.Model) -> Head:
    """The `Head` of ``model`` (see `parts_of`).

    Raises:
        ConfigError: The model has no single `Head` layer.
    """
    return require_head(parts_of(model))


def numeric_list(x: Any) -> Any:
    """A (nested) list of numbers or of arrays of one shape as one array.

    Keras takes arrays, not lists of them; a tltf model has one input, so a
    list is its examples. Anything else is returned as it is.
    """
    if not isinstance(x, list) or not x:
        return x
    try:
        array = np.asarray(x)
    except ValueError:  # Examples of different shapes.
        return x
    return array if array.dtype.kind in "iufb" else x


def check_counts(kwargs: dict[str, Any], **minimums: int) -> None:
    """Checks the counts among ``kwargs`` (None is Keras' default) clearly."""
    for name, minimum in minimums.items():
        if kwargs.get(name) is not None:
            arguments.count(name, kwargs[name], minimum=minimum)


def _with_checks(callbacks: Any) -> Any:
    """The user's callbacks after a `FitChecks` (first: it fails an epoch
    before a checkpoint saves it)."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks  # Keras' own container: used as it is.
    return [FitChecks(), *as_list(callbacks)]


# --- labels against the head ---


@contextlib.contextmanager
def quiet_fit(kwargs: dict[str, Any], steps: str) -> Iterator[None]:
    """Silences what Keras and TensorFlow say about what tltf does on purpose.

    - Keras' "Your input ran out of data" when no step count is set: Keras
      warns whenever a dataset of unknown length ends in its first pass.
      tltf's image folders have one (files that fail to decode are dropped
      during the pass, so the length is known only after it); without
      ``steps_per_epoch`` or ``steps``, that end is the end of the epoch,
      not a problem. With a step count the warning still shows.
    - TensorFlow's "triggered tf.function retracing": the model traces its
      steps again when its variables or trainable groups change
      (`tltf.traced`), as schedules do stage by stage.
    """
    with warnings.catch_warnings(), quiet_retracing():
        if kwargs.get(steps) is None:
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        yield


def check_classes(
    model: keras.Model,
    *,
    labels: Any = None,
    class_names: list[str] | None = None,
    what: str = "the data",
) -> None:
    """Fails clearly when labels cannot belong to the model's classes.

    A multiclass head with ``n`` outputs takes integer labels ``0..n-1``;
    data that names its classes (a `tltf.data.LoadedData`) must have ``n``
    of them. Labels that use fewer classes than the head has are allowed
    (a small sample may miss some) and logged.

    Args:
        model: A model with a tltf `Head` (others are not checked).
        labels: Integer labels, if known.
        class_names: The data's class names, if known.
        what: How the message names the data.

    Raises:
        DataError: The data has another number of classes, a label is out of
            range, or labels are not integers.
    """
    head = parts_of(model).head
    if head is None or head.task != "multiclass":
        return
    n = head.num_outputs
    if class_names is not None and len(class_names) != n:
        raise DataError(
            f"The model has {n} classes but {what} has {len(class_names)} "
            f"classes ({_preview(class_names)}). Build the model with "
            f"num_classes={len(class_names)} (data.num_classes)."
        )
    if labels is not None and np.size(labels):
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[-1] != 1 and _sparse_loss(model):
            raise DataError(
                f"{what} must be one integer class label per example (0..{n - 1}). "
                f"Received an array of shape {labels.shape} (one-hot?); pass "
                "np.argmax(y, axis=-1)."
            )
        _check_label_values(labels, n, what)


def _takes_class_ids(model: keras.Model) -> bool:
    """Whether ``model`` has a multiclass tltf head and an integer-label loss."""
    head = parts_of(model).head
    return head is not None and head.task == "multiclass" and _sparse_loss(model)


def _sparse_loss(model: keras.Model) -> bool:
    """Whether ``model`` takes integer labels: not compiled with a loss of
    one-hot targets (``"categorical_crossentropy"``)."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, keras.losses.CategoricalCrossentropy):
        return False
    name = loss if isinstance(loss, str) else getattr(loss, "__name__", "")
    return name not in ("categorical_crossentropy", "CategoricalCrossentropy")


def check_data(model: keras.Model, data: Any, what: str = "data") -> None:
    """Checks user data against the model without reading it all.

    Checks that the inputs are text for a text model and not text for an
    image model (`check_inputs`), that arrays hold no NaN or inf, the class
    names of a `tltf.data.LoadedData`
    (or of one of its splits) and the labels of an ``(x, y[, w])`` tuple;
    other datasets' labels are checked as they are read (`label_errors`).

    Args:
        model: A model with a tltf `Head`.
        data: Anything `tltf.data.inputs.as_batched` accepts.
        what: How the message names the data.

    Raises:
        DataError: As `check_classes`.
    """
    if isinstance(data, LoadedData):
        check_inputs(model, data.train, what)
        check_classes(model, class_names=data.class_names, what=what)
    elif isinstance(data, tf.data.Dataset):
        check_inputs(model, data, what)
        check_classes(model, class_names=class_names_of(data), what=what)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        check_inputs(model, data[0], what)
        check_finite(data[0], what)
        labels = as_labels(data[1])
        if isinstance(labels, np.ndarray):
            check_classes(model, labels=labels, what=f"{what} labels")


def check_inputs(model: keras.Model, x: Any, what: str = "x") -> None:
    """Fails clearly when a text model gets no text, or an image model text.

    Args:
        model: A functional model (its first input's dtype tells its kind).
        x: Inputs: arrays, tensors, lists or a dataset of ``(inputs, ...)``.
        what: How the message names the data.

    Raises:
        DataError: Text for a model of numeric inputs, or the reverse.
    """
    expects_text = _takes_text(model)
    is_text = _holds_text(x)
    if expects_text is None or is_text is None or expects_text == is_text:
        if is_text is False:
            _check_shape(model, x, what)
        return
    if expects_text:
        raise DataError(
            f"Model '{model.name}' takes text, but {what} holds numbers (e.g. "
            "images). Pass strings: a list, an array or a dataset of them, or "
            "build an image model (tltf.build_image_classifier) for this data."
        )
    raise DataError(
        f"Model '{model.name}' takes numeric inputs (e.g. pixels), but {what} "
        "holds text. Build a text model (tltf.build_text_classifier) for this "
        "data, or pass the images."
    )


def _check_shape(model: keras.Model, x: Any, what: str) -> None:
    """Fails clearly when numeric inputs do not fit the model's input shape."""
    expected = tuple(tf.nest.flatten(model.inputs)[0].shape[1:])
    shape = _shape_of(x)
    if shape is None:
        return
    if isinstance(x, tf.data.Dataset) and _fits(shape, expected):
        raise DataError(
            f"{what} is a dataset of single examples (shape {shape}); the model "
            "takes batches. Batch it first: dataset.batch(32)."
        )
    if shape[0] == 0:
        raise DataError(
            f"{what} is empty (shape {shape}): there is nothing to run the model "
            "on. Pass at least one example."
        )
    if not _fits(shape[1:], expected):
        raise DataError(_shape_message(model.name, expected, shape[1:], what))


def _fits(got: tuple, expected: tuple) -> bool:
    return len(got) == len(expected) and all(
        e is None or g is None or e == g for e, g in zip(expected, got)
    )


def _shape_of(x: Any) -> tuple | None:
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        shape = getattr(spec, "shape", None)
        return tuple(shape) if shape is not None and shape.rank else None
    if isinstance(x, (np.ndarray, tf.Tensor)) and len(x.shape):
        return tuple(x.shape)
    return None


def _shape_message(name: str, expected: tuple, got: tuple, what: str) -> str:
    head = (
        f"Model '{name}' takes inputs of shape (batch, {', '.join(map(str, expected))})"
        f" but {what} has examples of shape {got}."
    )
    if len(expected) != 3 or expected[-1] != 3:
        return f"{head} Pass inputs of the shape the model was built for."
    h, w = expected[:2]
    if len(got) == 2 or (len(got) == 3 and got[-1] != 3):
        return (
            f"{head} The model takes RGB images (3 channels): convert greyscale "
            "or RGBA images to RGB (e.g. np.repeat(x, 3, axis=-1) for one channel;"
            " tltf.data.image_folder reads every image as RGB)."
        )
    return (
        f"{head} Load the images at the model's size (tltf.data.image_folder("
        f"..., image_size=({h}, {w}))), or build the model for yours "
        f"(input_shape=({got[0]}, {got[1]}, 3))."
    )


def input_signature(model: keras.Model) -> tuple[str, tuple] | None:
    """``(dtype, shape without the batch axis)`` of a one-input model, else None."""
    inputs = tf.nest.flatten(getattr(model, "inputs", None) or [])
    if len(inputs) != 1:
        return None
    return str(inputs[0].dtype), tuple(inputs[0].shape[1:])


def same_inputs(a: tuple[str, tuple], b: tuple[str, tuple]) -> bool:
    """Whether two `input_signature`s take the same data (None sides match)."""
    if (a[0] == "string") != (b[0] == "string"):
        return False
    return _fits(a[1], b[1])


def describe(signature: tuple[str, tuple]) -> str:
    """An `input_signature` in words: ``"text"``, ``"inputs of shape (32, 32, 3)"``."""
    if signature[0] == "string":
        return "text"
    return f"inputs of shape {signature[1]}"


def _takes_text(model: keras.Model) -> bool | None:
    inputs = tf.nest.flatten(getattr(model, "inputs", None) or [])
    if len(inputs) != 1:
        return None
    return str(inputs[0].dtype) == "string"


def _holds_text(x: Any) -> bool | None:
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        leaves = tf.nest.flatten(spec)
        return leaves[0].dtype == tf.string if len(leaves) == 1 else None
    if is_string_input(x):
        return True
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return None
    return tf.as_dtype(dtype) == tf.string if isinstance(x, tf.Tensor) else False


def _check_label_values(labels: np.ndarray, n: int, what: str) -> None:
    if labels.ndim == 2 and labels.shape[-1] != 1:
        return  # One-hot or soft targets: Keras checks their width.
    if labels.dtype.kind not in "iub" and not (
        labels.dtype.kind == "f" and np.all(np.mod(labels, 1) == 0)
    ):
        raise DataError(
            f"{what} must hold integer class labels 0..{n - 1}. Received "
            f"values of dtype {labels.dtype} (e.g. {labels.flat[0]!r}); map "
            "class names to integers, or load the data with tltf.data."
        )
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= n:
        raise DataError(
            f"{what} has label {high if high >= n else low}, but the model has "
            f"{n} classes (labels 0..{n - 1}). Build the model with "
            f"num_classes={high + 1} or fix the labels."
        )
    seen = len(np.unique(labels))
    if seen < n:
        logger.info("%s uses %d of the model's %d classes.", what, seen, n)


@contextlib.contextmanager
def label_errors(model: keras.Model) -> Iterator[None]:
    """Turns the loss's out-of-range label error into a one-line `DataError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as err:
        if "valid range" not in str(err):
            raise
        head = parts_of(model).head
        n = head.num_outputs if head is not None else "its"
        raise DataError(
            f"A label is out of range for a model with {n} classes ("
            f"{_label_message(err)}). Build the model with num_classes equal to "
            "the data's number of classes (data.num_classes) or fix the labels."
        ) from None


def _label_message(err: Exception) -> str:
    for line in str(err).splitlines():
        if "valid range" in line:
            return line.split("Label values")[0].strip().rstrip(".")
    return "label out of range"


def _preview(names: list[str]) -> str:
    shown = ", ".join(map(str, names[:5]))
    return shown + (", ..." if len(names) > 5 else "")
