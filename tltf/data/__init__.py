"""tf.data loaders: image folders, TFDS datasets and arrays.

Every loader returns a `LoadedData`: batched ``train`` and ``validation``
datasets of ``(raw input, integer label)`` and the ``class_names``.
"""

from tltf.data.base import LoadedData
from tltf.data.images import from_arrays, image_folder
from tltf.data.tfds import tfds_dataset

__all__ = ["LoadedData", "from_arrays", "image_folder", "tfds_dataset"]
