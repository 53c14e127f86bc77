"""tf.data loaders: image folders, TFDS datasets, arrays and text (CSV, lists).

Every loader returns a `LoadedData`: batched ``train`` and ``validation``
datasets of ``(raw input, integer label)`` and the ``class_names``;
`unlabelled_images` returns batches of images alone (a target domain).
"""

from tltf.data.base import LoadedData
from tltf.data.budget import set_cache_budget
from tltf.data.images import from_arrays, image_folder, unlabelled_images
from tltf.data.text import from_texts, text_csv
from tltf.data.tfds import tfds_dataset

__all__ = [
    "LoadedData",
    "from_arrays",
    "from_texts",
    "image_folder",
    "set_cache_budget",
    "text_csv",
    "tfds_dataset",
    "unlabelled_images",
]
