"""tf.data loaders: image folders, TFDS datasets, arrays and text (CSV, lists).

Every loader returns a `LoadedData`: batched ``train`` and ``validation``
datasets of ``(raw input, integer label)`` and the ``class_names``.
"""

from tltf.data.base import LoadedData
from tltf.data.images import from_arrays, image_folder
from tltf.data.text import from_texts, text_csv
from tltf.data.tfds import tfds_dataset

__all__ = [
    "LoadedData",
    "from_arrays",
    "from_texts",
    "image_folder",
    "text_csv",
    "tfds_dataset",
]
