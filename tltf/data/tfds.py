"""TensorFlow Datasets by name (``tf_flowers``, ``imdb_reviews``, ...)."""

from __future__ import annotations

import os

import tensorflow as tf

from tltf import arguments
from tltf.data.base import AUTOTUNE, LoadedData, check_class_names, finish
from tltf.data.budget import CachePlan, plan_cache
from tltf.errors import DataError, TltfError, first_line


def tfds_dataset(
    name: str,
    *,
    train_split: str = "train[:80%]",
    validation_split: str | None = "train[80%:]",
    image_size: tuple[int, int] = (224, 224),
    batch_size: int = 32,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    seed: int = 1337,
) -> LoadedData:
    """Loads a supervised TFDS dataset as batched ``(input, label)`` pairs.

    Image datasets are resized to ``image_size`` (pixels stay in [0, 255])
    and cached as ``cache="auto"`` decides (`tltf.data.budget`: in memory
    within the cache budget, else on disk or not at all); text datasets
    yield strings and are cached in memory.

    Args:
        name: TFDS name, e.g. ``"tf_flowers"``.
        train_split: TFDS split expression for training.
        validation_split: Split expression for validation, or None.
        image_size: ``(height, width)`` for image datasets.
        batch_size: Examples per batch.
        data_dir: Where TFDS keeps its data.
        download: Let TFDS download the data when it is not in ``data_dir``.
        seed: Shuffle seed.

    Returns:
        `LoadedData` with the label names from the dataset's metadata.

    Raises:
        DataError: The dataset is unknown, cannot be downloaded, or is not a
            supervised classification dataset.
    """
    image_size = arguments.image_size(image_size)
    batch_size = arguments.count("batch_size", batch_size)
    seed = arguments.seed(seed)
    splits = [train_split] + ([validation_split] if validation_split else [])
    loaded, info = _load(
        name,
        split=splits,
        as_supervised=True,
        with_info=True,
        data_dir=data_dir,
        download=download,
    )
    label = info.supervised_keys[1] if info.supervised_keys else None
    feature = info.features[label] if label else None
    if feature is None or not hasattr(feature, "names"):
        raise DataError(
            f"TFDS dataset {name!r} is not a supervised classification set."
        )
    class_names = list(feature.names)
    check_class_names(class_names, f"TFDS dataset {name!r}")
    is_image = len(info.features[info.supervised_keys[0]].shape) == 3

    sizes = [_num_examples(info, split, ds) for split, ds in zip(splits, loaded)]
    plan = CachePlan("memory")  # Texts and labels: small.
    if is_image:  # Resized float32 images: bounded by the cache budget.
        per_image = image_size[0] * image_size[1] * 3 * 4
        plan = plan_cache("auto", per_image * sum(sizes), f"TFDS dataset {name!r}")

    def prepare(ds, training):
        if is_image:
            ds = ds.map(
                lambda x, y: (_resize(x, image_size), y), num_parallel_calls=AUTOTUNE
            )
        cache = plan.split("train" if training else "val")
        return finish(
            ds, batch_size=batch_size, training=training, cache=cache, seed=seed
        )

    return LoadedData(
        train=prepare(loaded[0], True),
        validation=prepare(loaded[1], False) if validation_split else None,
        class_names=class_names,
        num_train=sizes[0],
        num_validation=sizes[1] if validation_split else 0,
    )


def _load(name: str, **kwargs):
    """``tfds.load(name, **kwargs)``; its failures as one line that says why."""
    try:
        import tensorflow_datasets as tfds

        return tfds.load(name, **kwargs)
    except ModuleNotFoundError as err:
        raise TltfError(
            f"Loading TFDS datasets needs the Python package {err.name!r}, which "
            f"this install lacks (the dataset {name!r} was not looked for yet). "
            f"Install it (pip install {err.name.replace('_', '-')}), or reinstall "
            "tltf (pip install -e .), whose requirements include it."
        ) from err
    except OSError as err:  # No network (requests' errors are OSErrors too).
        raise DataError(
            f"Could not download TFDS dataset {name!r} ({first_line(err)[:160]}). "
            "Prepare it once with network access and pass data_dir= (the folder "
            "it was prepared in), or use download=False with a prepared copy."
        ) from err
    except Exception as err:  # TFDS raises many types; all mean "not available".
        raise DataError(
            f"Could not load TFDS dataset {name!r}: {first_line(err)} "
            "Check the name (tfds.list_builders()), or prepare it with "
            "network access and pass data_dir=."
        ) from err


def _resize(image, image_size):
    image = tf.image.resize(tf.cast(image, tf.float32), image_size)
    image.set_shape((*image_size, 3))
    return image


def _num_examples(info, split: str, ds: tf.data.Dataset) -> int:
    """Size of ``split`` from the metadata, else from the dataset itself."""
    try:
        return int(info.splits[split].num_examples)
    except KeyError:  # Not generated (e.g. under tfds.testing.mock_data).
        count = int(ds.cardinality())
        return count if count >= 0 else 0
