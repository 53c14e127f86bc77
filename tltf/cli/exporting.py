"""``tltf export``: a verified SavedModel, or one LiteRT file, for serving.

The output was checked before TensorFlow loaded: an existing export is
replaced only with ``--overwrite`` (the library writes the new one beside it
and swaps it in once verified).
"""

from __future__ import annotations

from typing import Any

import tltf
from tltf.cli.loading import load_model, pick


def export(options: dict[str, Any]) -> int:
    """Runs ``tltf export`` with the checked ``options``."""
    model, names = load_model(options["model"])
    kwargs = pick(options, "overwrite", "verify", "quantize")
    if options.get("format") == "litert":
        path = tltf.export_litert(model, options["output"], class_names=names, **kwargs)
        checked = "checked with the LiteRT interpreter"
        if not kwargs.get("verify", True):
            checked = "not checked"
        print(f"LiteRT file ({checked}): {path}, metadata {path.with_suffix('.json')}")
        _print_metadata(tltf.read_export_metadata(path))
        return 0
    path = tltf.export_saved_model(
        model, options["output"], class_names=names, **kwargs
    )
    checked = (
        "reloaded in a fresh process and checked"
        if kwargs.get("verify", True)
        else "not checked"
    )
    print(f"Export ({checked}): {path}")
    _print_metadata(tltf.read_export_metadata(path))
    print(f"Inspect it: saved_model_cli show --dir {path} --all")
    return 0


def _print_metadata(metadata: dict[str, Any]) -> None:
    rejection = metadata.get("rejection")
    if rejection:
        threshold, temperature = rejection["threshold"], rejection["temperature"]
        print(
            f"Answers 'unknown' (class_index -1) below probability "
            f"{threshold:.3f} (temperature {temperature:.3f})."
        )
    if metadata.get("quantization"):
        print(f"Quantized: {metadata['quantization']['mode']}.")
