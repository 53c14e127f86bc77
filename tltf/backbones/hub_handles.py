"""TF Hub handles: URLs and SavedModel folders, resolved to a local folder.

A URL is downloaded once into the TF Hub cache (``TFHUB_CACHE_DIR``) by
``tensorflow_hub``'s resolver. Offline, a URL that is not cached fails within
seconds with a message on how to use a local copy instead.
"""

from __future__ import annotations

import os
from pathlib import Path

from tltf import _compat
from tltf.backbones.loading import can_reach
from tltf.errors import MissingWeightsError

#: The inputs of a TF Hub BERT encoder, the outputs of its preprocess model.
BERT_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")


def is_url(handle: str) -> bool:
    """Whether ``handle`` is a web address (tfhub.dev, Kaggle, any http(s))."""
    return str(handle).startswith(("http://", "https://"))


def resolve_handle(handle: str | os.PathLike) -> str:
    """Turns a TF Hub handle into a local SavedModel folder.

    URLs are downloaded once into the TF Hub cache (``TFHUB_CACHE_DIR``).
    Offline, a URL that is not cached fails within seconds.

    Args:
        handle: A tfhub.dev or Kaggle URL, or a SavedModel folder.

    Returns:
        The folder that holds ``saved_model.pb``.

    Raises:
        MissingWeightsError: The folder does not exist, is not a SavedModel,
            or the URL is neither cached nor reachable.
    """
    handle = str(handle)
    if not is_url(handle):
        return _check_folder(handle)
    cached = _cached_dir(handle)
    if cached is None and not can_reach(handle):
        raise MissingWeightsError(
            f"TF Hub handle {handle!r} is not in the TF Hub cache and this "
            "machine cannot download it. On a machine with internet, download "
            "the model (on tfhub.dev or kaggle.com: 'Download' gives a .tar.gz; "
            "unpack it into a folder that holds saved_model.pb and variables/), "
            "copy the folder here and pass its path: 'hub:/path/to/folder'. "
            f"Received: {handle!r}"
        )
    import tensorflow_hub as hub

    return cached or hub.resolve(handle)


def _check_folder(handle: str) -> str:
    path = Path(handle).expanduser()
    if not (path / "saved_model.pb").is_file():
        what = "does not exist" if not path.exists() else "is not a SavedModel"
        raise MissingWeightsError(
            f"TF Hub folder {handle!r} {what}. Pass a folder that holds "
            "saved_model.pb and variables/ (an unpacked TF Hub download or "
            f"the output of tf.saved_model.save), or a tfhub.dev URL. Received: "
            f"{handle!r}"
        )
    return str(path)


def _cached_dir(handle: str) -> str | None:
    """The TF Hub cache folder of a URL handle, if it was downloaded before."""
    folder = _compat.hub_cache_dir(handle)
    if folder is None:
        return None
    return folder if (Path(folder) / "saved_model.pb").is_file() else None


def is_text_encoder(folder: str) -> bool:
    """Whether a SavedModel folder is a BERT-style encoder (cheap check).

    The SavedModel's graph names its inputs and outputs; a text encoder
    takes ``input_word_ids`` and returns ``sequence_output`` (a preprocess
    model returns ``input_word_ids``). This reads the proto file only.
    """
    data = (Path(folder) / "saved_model.pb").read_bytes()
    return BERT_INPUTS[0].encode() in data and b"sequence_output" in data
